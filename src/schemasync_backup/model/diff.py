"""diff(a, b): what differs between two Snapshots, as a pure function.

An object differs when its server-written definition differs (for tables: ignoring the
AUTO_INCREMENT counter). Comparing the server's own text, not a model of it, means a
rollback that makes the texts equal has provably restored every attribute.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

from schemasync_backup.converter import report, unstructure
from schemasync_backup.display import Card, Rows, Shown, brief_repr
from schemasync_backup.model.snapshot import Snapshot, Table
from schemasync_backup.sql import create_table
from schemasync_backup.sql.quoting import quote_identifier


class ChangeKind(enum.StrEnum):
    """How an object differs, read from ``a`` to ``b``."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@attrs.frozen
class ObjectChange:
    """One object that differs. ``change`` reads from ``a`` to ``b``: added means only in ``b``."""

    kind: str  # database, table, view, routine, trigger, event
    name: str
    change: ChangeKind = attrs.field(converter=ChangeKind)
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        sign = {ChangeKind.ADDED: "+", ChangeKind.REMOVED: "-", ChangeKind.CHANGED: "~"}[self.change]
        head = f"{sign} {self.kind} {quote_identifier(self.name)}"
        return "\n".join([head, *(f"    {detail}" for detail in self.details)])


def changes_table(changes: Iterable[ObjectChange]) -> Rows:
    """Changes as a report's table: one row each, its details on one line."""
    return Rows("changes", ("change", "kind", "name", "details"),
                [(change.change, change.kind, change.name, "; ".join(change.details)) for change in changes])


@report("a_hash", "b_hash", "identical", "changes", identical=lambda difference: difference.is_empty)
@attrs.frozen(repr=False)
class SchemaDiff(Shown):
    a: Snapshot = attrs.field(repr=False)
    b: Snapshot = attrs.field(repr=False)
    changes: tuple[ObjectChange, ...]

    @property
    def a_hash(self) -> str:
        return self.a.schema_hash

    @property
    def b_hash(self) -> str:
        return self.b.schema_hash

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def only_in_a(self) -> list[ObjectChange]:
        return [change for change in self.changes if change.change == ChangeKind.REMOVED]

    def only_in_b(self) -> list[ObjectChange]:
        return [change for change in self.changes if change.change == ChangeKind.ADDED]

    def changed(self) -> list[ObjectChange]:
        return [change for change in self.changes if change.change == ChangeKind.CHANGED]

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def counts(self) -> dict[ChangeKind, int]:
        """How many objects were added, removed and changed (from ``a`` to ``b``)."""
        return {kind: sum(change.change == kind for change in self.changes) for kind in ChangeKind}

    def listing(self) -> str:
        """Every change with its details, one object to a paragraph (``str`` shows only the first few)."""
        if self.is_empty:
            return "schemas are identical"
        return "\n".join(str(change) for change in self.changes)

    def __repr__(self) -> str:
        return brief_repr(self, a=self.a.database, b=self.b.database, changes=len(self.changes),
                          **{str(kind): count for kind, count in self.counts().items()})

    def _card(self) -> Card:
        if self.is_empty:
            title = f"`{self.a.database}` and `{self.b.database}`: schemas are identical"
        else:
            title = (f"`{self.a.database}` (a) to `{self.b.database}` (b): {len(self.changes)} object(s) differ, "
                     + ", ".join(f"{count} {kind}" for kind, count in self.counts().items()))
        return Card(title, (("a", f"`{self.a.database}` {self.a_hash}"), ("b", f"`{self.b.database}` {self.b_hash}")),
                    tables=(changes_table(self.changes),), kind="diff")


def routine_key(kind: str, name: str) -> str:
    return f"{kind} {name}"


def _objects(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    return {
        "table": {t.name: t for t in snapshot.tables},
        "routine": {routine_key(r.kind, r.name): r for r in snapshot.routines},
        "view": {v.name: v for v in snapshot.views},
        "trigger": {t.name: t for t in snapshot.triggers},
        "event": {e.name: e for e in snapshot.events},
    }


def definition(kind: str, item: Any) -> str:
    """The text that decides whether an object changed."""
    if kind == "table":
        return create_table.without_auto_increment(item.create_sql)
    mode = getattr(item, "sql_mode", None)
    return f"{item.create_sql}\n-- sql_mode={mode}" if mode is not None else str(item.create_sql)


def diff(a: Snapshot, b: Snapshot) -> SchemaDiff:
    """What turns ``a`` into ``b``, object by object."""
    changes: list[ObjectChange] = []
    if (a.charset, a.collation) != (b.charset, b.collation):
        changes.append(ObjectChange("database", b.database, ChangeKind.CHANGED,
                                    (f"default {a.charset}/{a.collation} -> {b.charset}/{b.collation}",)))
    mine, theirs = _objects(a), _objects(b)
    for kind in ("table", "routine", "view", "trigger", "event"):
        before, after = mine[kind], theirs[kind]
        for name in sorted(before.keys() - after.keys()):
            changes.append(ObjectChange(kind, name, ChangeKind.REMOVED))
        for name in sorted(after.keys() - before.keys()):
            changes.append(ObjectChange(kind, name, ChangeKind.ADDED))
        for name in sorted(before.keys() & after.keys()):
            if definition(kind, before[name]) != definition(kind, after[name]):
                details = _table_details(before[name], after[name]) if kind == "table" else ("definition changed",)
                changes.append(ObjectChange(kind, name, ChangeKind.CHANGED, details))
    return SchemaDiff(a, b, tuple(changes))


def _table_details(old: Table, new: Table) -> tuple[str, ...]:
    try:
        before, after = create_table.parse(old.create_sql), create_table.parse(new.create_sql)
    except create_table.UnrecognisedDefinitionError:
        return ("definition changed",)
    details: list[str] = []
    details += _named_details("column", before.columns, after.columns)
    if [n for n, _ in before.columns if n in dict(after.columns)] != [n for n, _ in after.columns if
                                                                       n in dict(before.columns)]:
        details.append("column order changed")
    details += _named_details("index", before.keys, after.keys)
    details += _named_details("check", before.checks, after.checks)
    details += _named_details("foreign key", before.foreign_keys, after.foreign_keys)
    if before.options != after.options:
        details.append(f"options: {before.options} -> {after.options}")
    if before.versioned != after.versioned:
        details.append("system versioning " + ("added" if after.versioned else "removed"))
    if before.partitioning != after.partitioning:
        details.append("partitioning changed")
    return tuple(details) or ("definition changed",)


def _named_details(label: str, before: Iterable[tuple[str, str]], after: Iterable[tuple[str, str]]) -> list[str]:
    old, new = dict(before), dict(after)
    found = [f"{label} {quote_identifier(name)} removed: {old[name]}" for name in old if name not in new]
    found += [f"{label} {quote_identifier(name)} added: {new[name]}" for name in new if name not in old]
    found += [f"{label} {quote_identifier(name)}: {old[name]} -> {new[name]}" for name in old if name in new and
              old[name] != new[name]]
    return found
