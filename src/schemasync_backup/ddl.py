"""Render a Snapshot as DDL that recreates it, in dependency order.

Order: tables (without foreign keys), foreign keys, routines, views (each after the views it
reads), triggers, events. Routines come before views, not after, because MariaDB refuses a
view that calls a stored function that does not exist yet, while routine bodies are only
resolved when they run.

The CREATE texts are the server's own ``SHOW CREATE`` output, so a restore reproduces the
original byte for byte; each object is created under its own sql_mode and character set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .snapshot import Snapshot, Table, View
from .sql import quote_identifier, quote_string

#: The sql_mode for tables and views: lenient enough for the zero dates old schemas carry
#: as defaults, strict about engines so nothing is silently created as MyISAM.
TABLE_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
_FK_LINE = re.compile(r"^\s*CONSTRAINT `(?:[^`]|``)*` FOREIGN KEY ")
_DELIMITERS = (";;", "$$", "//", "@@@")


def split_foreign_keys(table: Table) -> tuple[str, str | None]:
    """Split SHOW CREATE TABLE into the CREATE without foreign keys, and an ALTER adding them."""
    if not table.foreign_keys:
        return table.create_sql, None
    lines = table.create_sql.split("\n")
    header, body, footer = lines[0], lines[1:-1], lines[-1]
    # Partitioned tables carry their PARTITION clause after the closing line.
    closing = next((i for i, line in enumerate(lines) if line.startswith(")")), None)
    if closing is not None:
        body, footer = lines[1:closing], "\n".join(lines[closing:])
    kept = [line.rstrip(",") for line in body if not _FK_LINE.match(line)]
    added = [line.strip().rstrip(",") for line in body if _FK_LINE.match(line)]
    if len(added) != len(table.foreign_keys) or closing is None:
        # A layout we do not recognise: keep the text whole; the script disables FK checks.
        return table.create_sql, None
    create = "\n".join([header, ",\n".join(kept), footer])
    alter = f"ALTER TABLE {quote_identifier(table.name)}\n  " + ",\n  ".join("ADD " + line for line in added)
    return create, alter


def view_order(views: Iterable[View]) -> list[View]:
    """Views sorted so each comes after the views its definition names (stable by name)."""
    pending = {view.name: view for view in sorted(views, key=lambda v: v.name)}
    needs = {
        name: {other for other in pending if other != name and quote_identifier(other) in view.definition}
        for name, view in pending.items()
    }
    ordered: list[View] = []
    while pending:
        ready = [name for name in pending if not needs[name] & pending.keys()]
        # A cycle can only be a false match in a definition; break it in name order.
        for name in ready or [next(iter(pending))]:
            ordered.append(pending.pop(name))
    return ordered


def restore_statements(snapshot: Snapshot, *, database: str | None = None, create_database: bool = False) -> list[str]:
    """Statements that recreate the snapshot's schema in ``database`` (default: its own name)."""
    target = database or snapshot.database
    statements = ["SET NAMES utf8mb4", "SET FOREIGN_KEY_CHECKS = 0", f"SET SESSION sql_mode = {quote_string(TABLE_SQL_MODE)}"]
    if create_database:
        statements.append(
            f"CREATE DATABASE {quote_identifier(target)} CHARACTER SET {snapshot.charset} COLLATE {snapshot.collation}"
        )
        statements.append(f"USE {quote_identifier(target)}")
    alters = []
    for table in snapshot.tables:
        create, alter = split_foreign_keys(table)
        statements.append(create)
        if alter:
            alters.append(alter)
    statements += alters
    session = _Session()
    for routine in snapshot.routines:
        statements += session.switch(routine.sql_mode, routine.charset_client, routine.collation_connection)
        statements.append(routine.create_sql)
    for view in view_order(snapshot.views):
        statements += session.switch(TABLE_SQL_MODE, view.charset_client, view.collation_connection)
        statements.append(view.create_sql)
    for trigger in sorted(snapshot.triggers, key=lambda t: (t.table, t.timing, t.event, t.order)):
        statements += session.switch(trigger.sql_mode, trigger.charset_client, trigger.collation_connection)
        statements.append(trigger.create_sql)
    for event in snapshot.events:
        statements += session.switch(event.sql_mode, event.charset_client, event.collation_connection)
        statements.append(event.create_sql)
    statements += ["SET NAMES utf8mb4", "SET FOREIGN_KEY_CHECKS = 1"]
    return statements


class _Session:
    """Emits SET statements only when the session settings an object needs change."""

    def __init__(self) -> None:
        self.sql_mode = TABLE_SQL_MODE
        self.names = ("utf8mb4", "")

    def switch(self, sql_mode: str, charset: str, collation: str) -> list[str]:
        emitted = []
        if (charset, collation) != self.names:
            self.names = (charset, collation)
            emitted.append(f"SET NAMES {charset} COLLATE {collation}" if collation else f"SET NAMES {charset}")
        if sql_mode != self.sql_mode:
            self.sql_mode = sql_mode
            emitted.append(f"SET SESSION sql_mode = {quote_string(sql_mode)}")
        return emitted


def restore_script(snapshot: Snapshot, *, database: str | None = None, create_database: bool = True) -> str:
    """The statements as a script for the mysql client, with DELIMITER around compound bodies."""
    target = database or snapshot.database
    lines = [
        f"-- schemasync_backup: schema of {quote_identifier(snapshot.database)}",
        f"-- captured {snapshot.captured_at} from {snapshot.server.flavor} {snapshot.server.version}",
        f"-- schema hash {snapshot.schema_hash}",
        "",
    ]
    if not create_database:
        lines.append(f"USE {quote_identifier(target)};")
    for statement in restore_statements(snapshot, database=database, create_database=create_database):
        if ";" in statement:
            delimiter = next(d for d in _DELIMITERS if d not in statement)
            lines += [f"DELIMITER {delimiter}", statement + delimiter, "DELIMITER ;"]
        else:
            lines.append(statement + ";")
    return "\n".join(lines) + "\n"
