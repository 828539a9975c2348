"""The canonical form of a snapshot, and the schema hash over it.

Two captures of one unchanged schema must hash the same, on any server and under any name,
and any real change must hash differently. So the canonical form drops what is volatile
(AUTO_INCREMENT counters, statistics, capture time, the database's own name, the server's
spelling in SHOW CREATE texts) and folds what is mere spelling:

- a charset or collation that only repeats the inherited default;
- MariaDB's JSON alias (``longtext`` plus an implicit ``json_valid`` CHECK) is ``json``;
- integer display widths, which MySQL 8 no longer reports (``tinyint(1)`` is kept: it
  still means boolean to clients; so is the width of a ZEROFILL column, which pads to it);
- ``CURRENT_TIMESTAMP`` / ``now()`` / ``current_timestamp()`` in defaults and ON UPDATE;
- PAGE_CHECKSUM and TRANSACTIONAL, which MariaDB's information_schema and SHOW CREATE TABLE
  report differently: they are taken as SHOW CREATE prints them, the text a restore replays.

Every other attribute of every object goes into the hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from schemasync_backup.model.memo import IdentityMemo
from schemasync_backup.model.snapshot import Column, Event, Index, Routine, Snapshot, Table, Trigger, View
from schemasync_backup.sql.quoting import quote_identifier

#: 2: PAGE_CHECKSUM, TRANSACTIONAL and ROW_FORMAT as SHOW CREATE TABLE prints them, not CREATE_OPTIONS
#: (an Aria table asked for ROW_FORMAT=FIXED with a TEXT column is PAGE, and SHOW CREATE says so).
CANONICAL_VERSION = 2
_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)", re.IGNORECASE)
_YEAR_WIDTH = re.compile(r"^year\(4\)", re.IGNORECASE)
_QUOTED_OR_NOT = re.compile(r"'(?:[^']|'')*'|[^']+")
_NOW = re.compile(r"^(?:current_timestamp|now|localtime|localtimestamp)(?:\(\s*(\d*)\s*\))?$", re.IGNORECASE)
#: PAGE_CHECKSUM or TRANSACTIONAL in SHOW CREATE TABLE (the server puts a TRANSACTIONAL the engine
#: lacks in a comment); quoted strings and names are matched first, so the words inside never count.
_SHOWN_OPTION = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`]|``)*`|\b(PAGE_CHECKSUM|TRANSACTIONAL|ROW_FORMAT)=(\w+)\b")
_SHOWN_OPTION_NAMES = frozenset({"page_checksum", "transactional", "row_format"})
_ALWAYS_SHOWN = frozenset({"page_checksum", "transactional"})


def schema_hash(snapshot: Snapshot) -> str:
    """sha256 of the canonical form as JSON (sorted keys, no spaces), built from each object's text.

    The text of an object is kept for as long as the object lives: an incremental capture hands
    unchanged objects on, so hashing the live schema again costs what changed.
    """
    collation = snapshot.collation
    sections = {
        "canonical_version": _dumps(CANONICAL_VERSION),
        "charset": _dumps(snapshot.charset.lower()),
        "collation": _dumps(collation.lower()),
        "tables": _section({table.name: _text(table, collation, functools.partial(_table, table, collation))
                            for table in snapshot.tables}),
        "views": _section({view.name: _text(view, "", functools.partial(_view, view)) for view in snapshot.views}),
        "triggers": _section({trigger.name: _text(trigger, "", functools.partial(_trigger, trigger))
                              for trigger in snapshot.triggers}),
        "routines": _section({f"{routine.kind} {routine.name}": _text(routine, "", functools.partial(
            _routine, routine)) for routine in snapshot.routines}),
        "events": _section({event.name: _text(event, "", functools.partial(_event, event))
                            for event in snapshot.events}),
    }
    return hashlib.sha256(_section(sections).encode("utf-8")).hexdigest()


def _text(item: object, context: str, build: Callable[[], Any]) -> str:
    return _MEMO.value(item, context, lambda: _dumps(build()))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _section(texts: dict[str, str]) -> str:
    """A JSON object of already encoded values, as ``_dumps`` of the decoded object would write it."""
    return "{" + ",".join(f"{_dumps(key)}:{texts[key]}" for key in sorted(texts)) + "}"


#: Canonical texts by object (with the database collation a table's text depends on).
_MEMO: IdentityMemo[str] = IdentityMemo()


def canonical_form(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "canonical_version": CANONICAL_VERSION,
        "charset": snapshot.charset.lower(),
        "collation": snapshot.collation.lower(),
        "tables": {table.name: _table(table, snapshot.collation) for table in snapshot.tables},
        "views": {view.name: _view(view) for view in snapshot.views},
        "triggers": {trigger.name: _trigger(trigger) for trigger in snapshot.triggers},
        "routines": {f"{routine.kind} {routine.name}": _routine(routine) for routine in snapshot.routines},
        "events": {event.name: _event(event) for event in snapshot.events},
    }


def json_columns(table: Table) -> set[str]:
    """Columns that are JSON, whether the server says ``json`` or MariaDB's longtext + json_valid."""
    implicit = {check.column for check in table.checks if check.column and _is_json_check(check.column, check.clause)}
    return {column.name for column in table.columns if column.type.lower() == "json" or column.name in implicit}


def _is_json_check(column: str, clause: str) -> bool:
    # Only the spaces around the name may vary: the name itself may contain spaces.
    pattern = rf"json_valid\(\s*{re.escape(quote_identifier(column))}\s*\)"
    return re.fullmatch(pattern, clause.strip(), re.IGNORECASE) is not None


@functools.lru_cache(maxsize=4096)
def canonical_type(column_type: str) -> str:
    lowered = _lower_outside_quotes(column_type.strip())
    # tinyint(1) still means boolean to clients, and with ZEROFILL the width is the padding:
    # MySQL 8 keeps reporting both.
    if lowered.startswith("tinyint(1)") or "zerofill" in lowered:
        return lowered
    return _YEAR_WIDTH.sub("year", _DISPLAY_WIDTH.sub(r"\1", lowered))


def _lower_outside_quotes(text: str) -> str:
    # ENUM and SET values keep their case: 'A' and 'a' are different values.
    return _QUOTED_OR_NOT.sub(lambda m: m[0] if m[0].startswith("'") else m[0].lower(), text)


@functools.lru_cache(maxsize=4096)
def canonical_default(value: str | None) -> str | None:
    if value is None:
        return None
    match = _NOW.match(value.strip())
    if match:
        return f"current_timestamp({match.group(1) or ''})"
    return value


def _table(table: Table, database_collation: str) -> dict[str, Any]:
    table_collation = (table.collation or database_collation).lower()
    jsons = json_columns(table)
    return {
        "kind": table.kind,
        "engine": (table.engine or "").lower(),
        "collation": None if table_collation == database_collation.lower() else table_collation,
        "comment": table.comment,
        "options": _options(table),
        "partitioning": table.partitioning,
        "sequence": _sequence_options(table),
        "columns": [_column(column, table_collation, column.name in jsons) for column in table.columns],
        "indexes": {index.name: _index(index) for index in table.indexes},
        "foreign_keys": {
            fk.name: [list(fk.columns), fk.referenced_schema, fk.referenced_table, list(fk.referenced_columns),
                      fk.on_update, fk.on_delete]
            for fk in table.foreign_keys
        },
        "checks": {
            check.name: [check.column, check.clause]
            for check in table.checks
            if not (check.column in jsons and _is_json_check(check.column, check.clause))
        },
    }


def _options(table: Table) -> str:
    """The create options, with PAGE_CHECKSUM, TRANSACTIONAL and ROW_FORMAT as SHOW CREATE TABLE shows them.

    information_schema lists a PAGE_CHECKSUM only where it was given, and an Aria table's
    TRANSACTIONAL even where it was not; SHOW CREATE prints an Aria table's PAGE_CHECKSUM always
    and a TRANSACTIONAL only where it was given. A restore replays SHOW CREATE, so only its
    reading is the same again afterwards (and it is the one the diff compares).
    """
    # They are table options, on the line that closes the definitions: no need to scan the columns.
    text = table.create_sql
    shown = [f"{name.lower()}={value.lower()}"
             for name, value in _SHOWN_OPTION.findall(text, max(text.rfind("\n) ENGINE="), 0)) if name]
    # ROW_FORMAT only where the text prints one: the format the server chose over the one asked for.
    replaced = _SHOWN_OPTION_NAMES if any(o.startswith("row_format=") for o in shown) else _ALWAYS_SHOWN
    reported = [option for option in table.create_options.lower().split()
                if option.partition("=")[0] not in replaced]
    return " ".join(sorted(reported + shown))


def _sequence_options(table: Table) -> str | None:
    """START, INCREMENT, ... of a sequence: SHOW CREATE SEQUENCE is their only source."""
    if table.kind != "SEQUENCE":
        return None
    prefix = f"CREATE SEQUENCE {quote_identifier(table.name)} "
    return table.create_sql.removeprefix(prefix)


def _column(column: Column, table_collation: str, is_json: bool) -> list[Any]:
    collation = None if is_json or column.collation is None else column.collation.lower()
    return [
        column.name,
        "json" if is_json else canonical_type(column.type),
        column.nullable,
        canonical_default(column.default),
        column.auto_increment,
        canonical_default(column.on_update),
        column.generated,
        column.stored,
        None if collation == table_collation else collation,
        column.comment,
        column.invisible,
    ]


def _index(index: Index) -> list[Any]:
    return [
        index.kind,
        [[part.column, part.expression, part.prefix_length, part.descending] for part in index.parts],
        None if index.kind in ("FULLTEXT", "SPATIAL") else (index.algorithm or "BTREE").upper(),
        index.comment,
        index.visible,
    ]


def _lower(name: str | None) -> str | None:
    return None if name is None else name.lower()


def _view(view: View) -> list[Any]:
    return [view.definition, view.algorithm.upper(), view.security.upper(), view.check_option.upper(), view.definer]


def _trigger(trigger: Trigger) -> list[Any]:
    return [
        trigger.table, trigger.timing, trigger.event, trigger.order, trigger.body, trigger.sql_mode, trigger.definer
    ]


def _routine(routine: Routine) -> list[Any]:
    return [
        [[p.mode, p.name, p.type, _lower(p.collation)] for p in routine.parameters],
        routine.returns,
        _lower(routine.returns_collation),
        routine.body,
        routine.deterministic,
        routine.data_access,
        routine.security,
        routine.comment,
        routine.sql_mode,
        routine.definer,
    ]


def _event(event: Event) -> list[Any]:
    return [event.schedule, event.body, event.status, event.on_completion, event.comment, event.sql_mode,
            event.time_zone, event.definer]
