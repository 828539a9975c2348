"""Render a Snapshot as DDL that recreates it, in dependency order.

Order: tables (without foreign keys), foreign keys, routines, views (each after the views it
reads), triggers, events. Routines come before views, not after, because MariaDB refuses a
view that calls a stored function that does not exist yet, while routine bodies are only
resolved when they run.

The CREATE texts are the server's own ``SHOW CREATE`` output, so a restore reproduces the
original byte for byte; each object is created under its own sql_mode, connection collation
and (events) time zone.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

import attrs

from . import create_table
from .snapshot import Snapshot, Table, View
from .sql import quote_identifier, quote_string

#: The sql_mode for tables and views: lenient enough for the zero dates old schemas carry
#: as defaults, strict about engines so nothing is silently created as MyISAM.
TABLE_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
#: Our texts are Unicode, so the client character set is always utf8mb4. Switching it to an
#: object's own character_set_client (SET NAMES latin1) would make the server read the
#: utf8mb4 bytes as latin1 and garble every non-ASCII character.
CLIENT_CHARSET = "utf8mb4"
#: Names quoted in a view definition that are not table references: column qualifiers
#: (`t`.`c`, `db`.`t`) and aliases (AS `x`).
_NOT_A_TABLE = re.compile(r"(?:\.|\bAS )$", re.IGNORECASE)
#: Comment markers the mysql client strips from what it sends (it defaults to --skip-comments).
_COMMENT_MARKERS = ("--", "#", "/*")
_SAVE_SESSION = (
    "SET @schemasync_sql_mode = @@SESSION.sql_mode, @schemasync_time_zone = @@SESSION.time_zone, "
    "@schemasync_foreign_key_checks = @@SESSION.foreign_key_checks"
)
_RESTORE_SESSION = (
    "SET SESSION sql_mode = @schemasync_sql_mode, time_zone = @schemasync_time_zone, "
    "foreign_key_checks = @schemasync_foreign_key_checks"
)


def split_foreign_keys(table: Table) -> tuple[str, str | None]:
    """Split SHOW CREATE TABLE into the CREATE without foreign keys, and an ALTER adding them."""
    if not table.foreign_keys:
        return table.create_sql, None
    try:
        parts = create_table.parse(table.create_sql)
    except create_table.UnrecognisedDefinitionError:
        parts = None
    if parts is None or len(parts.foreign_keys) != len(table.foreign_keys):
        # A layout we do not recognise: keep the text whole; the restore disables FK checks.
        return table.create_sql, None
    alter = f"ALTER TABLE {quote_identifier(table.name)}\n  " + ",\n  ".join(
        "ADD " + line for _, line in parts.foreign_keys)
    return create_table.without_foreign_keys(parts), alter


def view_order(views: Iterable[View]) -> list[View]:
    """Views sorted so each comes after the views its definition reads (stable by name)."""
    pending = {view.name: view for view in sorted(views, key=lambda v: v.name)}
    needs = {
        name: {other for other in pending if other != name and _reads(view, other)} for name, view in pending.items()
    }
    ordered: list[View] = []
    while pending:
        ready = [name for name in pending if not needs[name] & pending.keys()]
        # A cycle can only be a false match in a definition; break it in name order.
        for name in ready or [next(iter(pending))]:
            ordered.append(pending.pop(name))
    return ordered


def _reads(view: View, other: str) -> bool:
    """Whether ``view`` names ``other`` as a table (the server writes every reference quoted)."""
    quoted = quote_identifier(other)
    start = view.definition.find(quoted)
    while start >= 0:
        end = start + len(quoted)
        if not _NOT_A_TABLE.search(view.definition[:start]) and not view.definition.startswith(".", end):
            return True
        start = view.definition.find(quoted, end)
    return False


@attrs.frozen
class Step:
    """One statement of a restore, with what the script renderer must know about it."""

    sql: str
    #: The session sql_mode it runs under: string literals depend on NO_BACKSLASH_ESCAPES.
    sql_mode: str = TABLE_SQL_MODE
    #: A routine, trigger or event: its body must reach the server exactly as written.
    program: bool = False


def restore_steps(snapshot: Snapshot, *, database: str | None = None, create_database: bool = False) -> list[Step]:
    """The statements that recreate the snapshot's schema in ``database`` (default: its own name)."""
    target = database or snapshot.database
    session = _Session()
    steps = [Step(f"SET NAMES {CLIENT_CHARSET}"), Step(_SAVE_SESSION), Step("SET FOREIGN_KEY_CHECKS = 0"),
             Step(f"SET SESSION sql_mode = {quote_string(TABLE_SQL_MODE)}")]
    if create_database:
        steps.append(Step(f"CREATE DATABASE {quote_identifier(target)} CHARACTER SET {snapshot.charset} "
                          f"COLLATE {snapshot.collation}"))
        steps.append(Step(f"USE {quote_identifier(target)}"))
    alters = []
    for table in snapshot.tables:
        create, alter = split_foreign_keys(table)
        steps.append(Step(create))
        if alter:
            alters.append(Step(alter))
    steps += alters
    for routine in snapshot.routines:
        steps += session.switch(routine.sql_mode, routine.collation_connection)
        create = _comment_for_mode(routine.create_sql, routine.comment, routine.sql_mode)
        steps.append(Step(create, routine.sql_mode, program=True))
    for view in view_order(snapshot.views):
        steps += session.switch(TABLE_SQL_MODE, view.collation_connection)
        steps.append(Step(view.create_sql, TABLE_SQL_MODE))
    for trigger in sorted(snapshot.triggers, key=lambda t: (t.table, t.timing, t.event, t.order)):
        steps += session.switch(trigger.sql_mode, trigger.collation_connection)
        steps.append(Step(trigger.create_sql, trigger.sql_mode, program=True))
    for event in snapshot.events:
        steps += session.switch(event.sql_mode, event.collation_connection, event.time_zone)
        create = _comment_for_mode(event.create_sql, event.comment, event.sql_mode)
        steps.append(Step(create, event.sql_mode, program=True))
    steps += [Step(f"SET NAMES {CLIENT_CHARSET}", session.sql_mode), Step(_RESTORE_SESSION, session.sql_mode)]
    return steps


def _comment_for_mode(create_sql: str, comment: str, sql_mode: str) -> str:
    """Respell the COMMENT of a routine or event for NO_BACKSLASH_ESCAPES.

    The server prints that comment with backslash escapes (``\\n``, ``\\\\``) whatever the
    object's sql_mode, and the object must be recreated under its own sql_mode, which would
    read them back literally.
    """
    if "NO_BACKSLASH_ESCAPES" not in sql_mode.upper():
        return create_sql
    printed = "COMMENT " + _printed_literal(comment)
    wanted = "COMMENT " + quote_string(comment, backslash_escapes=False)
    return create_sql.replace(printed, wanted, 1)


def _printed_literal(value: str) -> str:
    """A string as the server prints it in SHOW CREATE (append_unescaped)."""
    for char, escape in (("\\", "\\\\"), ("'", "''"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(char, escape)
    return "'" + value + "'"


def restore_statements(snapshot: Snapshot, *, database: str | None = None, create_database: bool = False) -> list[str]:
    """The statements of :func:`restore_steps` as plain strings, one each."""
    return [step.sql for step in restore_steps(snapshot, database=database, create_database=create_database)]


class _Session:
    """Emits SET statements only when the session settings an object needs change."""

    def __init__(self) -> None:
        self.sql_mode = TABLE_SQL_MODE
        self.collation = ""
        self.time_zone = ""

    def switch(self, sql_mode: str, collation: str, time_zone: str | None = None) -> list[Step]:
        emitted = []
        if collation and collation != self.collation:
            self.collation = collation
            emitted.append(Step(f"SET collation_connection = {quote_string(collation)}", self.sql_mode))
        if time_zone is not None and time_zone != self.time_zone:
            # An event's STARTS/ENDS/AT are in its own time zone, which it records at creation.
            self.time_zone = time_zone
            emitted.append(Step(f"SET time_zone = {quote_string(time_zone)}", self.sql_mode))
        if sql_mode != self.sql_mode:
            emitted.append(Step(f"SET SESSION sql_mode = {quote_string(sql_mode)}", self.sql_mode))
            self.sql_mode = sql_mode
        return emitted


def restore_script(snapshot: Snapshot, *, database: str | None = None, create_database: bool = True) -> str:
    """The statements as a script for the mysql client, with DELIMITER around compound bodies."""
    target = database or snapshot.database
    lines = [
        f"-- schemasync_backup: schema of {_one_line(quote_identifier(snapshot.database))}",
        f"-- captured {_one_line(snapshot.captured_at)} from {snapshot.server.flavor} {snapshot.server.version}",
        f"-- schema hash {snapshot.schema_hash}",
        "",
    ]
    if not create_database:
        lines.append(f"USE {quote_identifier(target)};")
    mariadb = snapshot.server.flavor == "mariadb"
    for step in restore_steps(snapshot, database=database, create_database=create_database):
        lines += _script_lines(step, execute_immediate=mariadb)
    return "\n".join(lines) + "\n"


def _script_lines(step: Step, *, execute_immediate: bool) -> list[str]:
    statement = step.sql
    if step.program and execute_immediate and any(marker in statement for marker in _COMMENT_MARKERS):
        # The client would strip the body's comments; inside a string literal it cannot.
        # The _utf8mb4 introducer keeps the text intact whatever the connection charset.
        backslashes = "NO_BACKSLASH_ESCAPES" not in step.sql_mode.upper()
        return [f"EXECUTE IMMEDIATE _{CLIENT_CHARSET}{quote_string(statement, backslash_escapes=backslashes)};"]
    if ";" in statement:
        delimiter = next(d for d in _delimiters() if d not in statement)
        return [f"DELIMITER {delimiter}", statement + delimiter, "DELIMITER ;"]
    return [statement + ";"]


def _delimiters() -> Iterator[str]:
    yield from (";;", "$$", "//", "@@@")
    yield from (f"$${number}$$" for number in itertools.count())


def _one_line(text: str) -> str:
    # A newline in a name would end the comment and run the rest as SQL.
    return text.replace("\r", " ").replace("\n", " ")
