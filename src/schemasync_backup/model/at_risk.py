"""The data a migration would destroy, so that a backup can carry it: whole tables and single columns.

Exactly that data and nothing else: a migration that destroys nothing gives an empty AtRisk.
Given SQL, the statements are replayed over the current schema (``model.replay``); given the
target schema, tables and columns it lacks and columns whose type or character set loses
values are at risk (renames are not guessed). Column values can only be put back by a key
the migration leaves alone, so a table without one is at risk whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence

import attrs

from schemasync_backup.model.replay import Destroyed, Note, changes, name_fold, replay
from schemasync_backup.model.snapshot import Snapshot, Table
from schemasync_backup.sql.create_table import partition_names
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.sql.script import split


@attrs.frozen
class AtRisk:
    #: Tables whose rows the migration destroys: all their data columns are backed up.
    tables: tuple[str, ...]
    #: (table, columns) whose values it destroys: backed up with the table's :func:`row_key`.
    columns: tuple[tuple[str, tuple[str, ...]], ...]
    #: One line per item, for people ("DROP TABLE `t`", "column `t`.`c` narrows from ...").
    reasons: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not self.tables and not self.columns


def at_risk(current: Snapshot, migration: Sequence[str] | str | Snapshot) -> AtRisk:
    """What of ``current`` the migration destroys: SQL statements (a list, or one script), or the target schema."""
    if isinstance(migration, Snapshot):
        found: Iterable[Destroyed | Note] = _against_target(current, migration)
    else:
        scripts = [migration] if isinstance(migration, str) else list(migration)
        found = replay(current, (statement for script in scripts for statement in split(script)))
    return _collect(current, found)


def row_key(table: Table, avoiding: Collection[str] = ()) -> tuple[str, ...] | None:
    """The columns that tell the rows of ``table`` apart: its PRIMARY KEY, else its first UNIQUE key of NOT NULL
    columns, leaving out keys with a column in ``avoiding``; None when there is no such key."""
    avoided = {name.lower() for name in avoiding}
    nullable = {column.name.lower() for column in table.columns if column.nullable}
    for index in sorted(table.indexes, key=lambda index: index.kind != "PRIMARY"):
        columns = [part.column for part in index.parts]
        if index.kind not in ("PRIMARY", "UNIQUE") or None in columns:
            continue  # not a key, or one over an expression
        names = [str(column) for column in columns]
        if not {name.lower() for name in names} & (avoided | nullable):
            return tuple(table.column(name).name for name in names)
    return None


def _against_target(current: Snapshot, target: Snapshot) -> Iterator[Destroyed]:
    fold = name_fold(current)
    targets = {fold(table.name): table for table in target.tables}
    for table in current.tables:
        other = targets.get(fold(table.name))
        if other is None:
            yield Destroyed(table.name, None, f"table {quote_identifier(table.name)} is not in the target")
            continue
        if other is table:
            continue  # one object (an incremental capture's unchanged table): nothing changes
        # Partitions the target lists no more lose their rows; a target without partitioning keeps them all.
        kept = {name.lower() for name in partition_names(other.partitioning or "")}
        dropped = [name for name in partition_names(table.partitioning or "") if name.lower() not in kept]
        if dropped and other.partitioning:
            partitions = f"partition{'s' if len(dropped) > 1 else ''} {', '.join(map(quote_identifier, dropped))}"
            are = "are" if len(dropped) > 1 else "is"
            yield Destroyed(table.name, None, f"{partitions} of table {quote_identifier(table.name)} {are} not in "
                                              "the target")
            continue
        columns = {column.name.lower(): column for column in other.columns}
        for column in table.columns:
            if column.generated is not None:
                continue  # its values are computed from the others
            where = f"column {quote_identifier(table.name)}.{quote_identifier(column.name)}"
            new = columns.get(column.name.lower())
            how = "is not in the target" if new is None else changes(
                column, new, becomes_generated=new.generated is not None)
            if how:
                yield Destroyed(table.name, column.name, f"{where} {how}")


def _collect(current: Snapshot, found: Iterable[Destroyed | Note]) -> AtRisk:
    whole: set[str] = set()
    columns: dict[str, set[str]] = {}
    reasons: list[str] = []
    for item in found:
        reasons.append(item.reason)
        if isinstance(item, Note):
            continue
        if item.column is None:
            whole.add(item.table)
        else:
            columns.setdefault(item.table, set()).add(item.column.lower())
    for table in current.tables:
        if table.name in columns and table.name not in whole and row_key(table, columns[table.name]) is None:
            whole.add(table.name)
            reasons.append(f"table {quote_identifier(table.name)} has no PRIMARY KEY or UNIQUE key of NOT NULL "
                           "columns outside the columns at risk to put their values back by: backing up the whole "
                           "table")
    return AtRisk(
        tables=tuple(table.name for table in current.tables if table.name in whole),
        columns=tuple((table.name, tuple(c.name for c in table.columns if c.name.lower() in columns[table.name]))
                      for table in current.tables if table.name in columns and table.name not in whole),
        reasons=tuple(dict.fromkeys(reasons)),
    )
