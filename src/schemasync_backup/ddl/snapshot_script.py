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

import re
from collections.abc import Iterable

from schemasync_backup.ddl.render import CLIENT_CHARSET, TABLE_SQL_MODE, Program, render
from schemasync_backup.model.snapshot import Snapshot, Table, View
from schemasync_backup.sql import client_script, create_table
from schemasync_backup.sql.quoting import quote_identifier, quote_string

#: Names quoted in a view definition that are not table references: column qualifiers
#: (`t`.`c`, `db`.`t`) and aliases (AS `x`).
_NOT_A_TABLE = re.compile(r"(?:\.|\bAS )$", re.IGNORECASE)
#: An option MariaDB's SHOW CREATE TABLE puts in a comment because the engine lacks it (a MyISAM
#: table's TRANSACTIONAL, an option no engine knows): the server keeps it, so a restore must too.
#: Quoted strings and names are matched first, so that nothing inside them is read as one.
_COMMENTED_OPTION = re.compile(
    r"'(?:[^'\\]|\\.)*'|`(?:[^`]|``)*`|/\* (TRANSACTIONAL=[01]|`(?:[^`]|``)*`='(?:[^'\\]|\\.)*') \*/"
)
#: The table mode, with the server told to keep such options (as it did when it printed them).
_KEEP_OPTIONS_MODE = TABLE_SQL_MODE + ",IGNORE_BAD_TABLE_OPTIONS"
_SAVE_SESSION = (
    "SET @schemasync_sql_mode = @@SESSION.sql_mode, @schemasync_time_zone = @@SESSION.time_zone, "
    "@schemasync_foreign_key_checks = @@SESSION.foreign_key_checks"
)
_RESTORE_SESSION = (
    "SET SESSION sql_mode = @schemasync_sql_mode, time_zone = @schemasync_time_zone, "
    "foreign_key_checks = @schemasync_foreign_key_checks"
)


def split_foreign_keys(table: Table) -> tuple[str, str | None]:
    """Split SHOW CREATE TABLE into the statement that creates the table without its foreign keys,
    and an ALTER adding them."""
    create, alter = _split_foreign_keys(table)
    return _keeping_commented_options(create), alter


def _split_foreign_keys(table: Table) -> tuple[str, str | None]:
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


def _keeping_commented_options(create_sql: str) -> str:
    """The CREATE with the options the server printed in comments made options again, so that it
    prints them the same way afterwards; the comments alone would be read as nothing at all."""
    uncommented = _COMMENTED_OPTION.sub(lambda match: match[1] or match[0], create_sql)
    if uncommented == create_sql:
        return create_sql
    # Only for this statement: every engine still refuses options it lacks in the other ones.
    return f"SET STATEMENT sql_mode = {quote_string(_KEEP_OPTIONS_MODE)} FOR {uncommented}"


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


def restore_statements(snapshot: Snapshot, *, database: str | None = None, create_database: bool = False,
                       flavor: str | None = None) -> list[str]:
    """The statements that recreate the snapshot's schema in ``database`` (default: its own name).

    Routines, views, triggers and events are rendered by :mod:`render` for a server of ``flavor``
    (default: the snapshot's own).
    """
    target = database or snapshot.database
    flavor = flavor or snapshot.server.flavor
    statements = [f"SET NAMES {CLIENT_CHARSET}", _SAVE_SESSION, "SET FOREIGN_KEY_CHECKS = 0",
                  f"SET SESSION sql_mode = {quote_string(TABLE_SQL_MODE)}"]
    if create_database:
        statements.append(f"CREATE DATABASE {quote_identifier(target)} CHARACTER SET {snapshot.charset} "
                          f"COLLATE {snapshot.collation}")
        statements.append(f"USE {quote_identifier(target)}")
    alters = []
    for table in snapshot.tables:
        create, alter = split_foreign_keys(table)
        statements.append(create)
        if alter:
            alters.append(alter)
    statements += alters
    programs: list[Program] = [*snapshot.routines, *view_order(snapshot.views),
                *sorted(snapshot.triggers, key=lambda t: (t.table, t.timing, t.event, t.order)), *snapshot.events]
    for program in programs:
        statements += render(program, flavor=flavor).statements
    statements += [f"SET NAMES {CLIENT_CHARSET}", _RESTORE_SESSION]
    return statements


def restore_script(snapshot: Snapshot, *, database: str | None = None, create_database: bool = True) -> str:
    """The statements as a script for the mysql client that sends each of them unchanged.

    A statement with comments (a routine body's) goes inside an ``EXECUTE IMMEDIATE`` string
    literal on MariaDB, where the client cannot strip them; elsewhere the script needs
    ``mysql --comments`` and stops at once without it. Raises UnsafeScriptError for a statement
    the client would not send unchanged.
    """
    target = database or snapshot.database
    mariadb = snapshot.server.flavor == "mariadb"
    body: list[str] = []
    commented = False
    if not create_database:
        body.append(f"USE {quote_identifier(target)};")
    sql_mode: str | None = None
    for statement in restore_statements(snapshot, database=database, create_database=create_database):
        if statement.startswith("USE "):
            # The client's own command: it reads the quoted name itself.
            body.append(statement + ";")
            continue
        sent, lexed = statement, client_script.check(statement, sql_mode)
        if lexed.comments and mariadb:
            backslashes = "NO_BACKSLASH_ESCAPES" not in (sql_mode or "").upper()
            sent = f"EXECUTE IMMEDIATE _{CLIENT_CHARSET}{quote_string(statement, backslash_escapes=backslashes)}"
            lexed = client_script.check(sent, sql_mode)
        commented = commented or lexed.comments
        body += client_script.statement_lines(sent, lexed)
        mode = client_script.sql_mode_of(statement)
        sql_mode = sql_mode if mode is None else mode
    header = [
        f"schemasync_backup: schema of {quote_identifier(snapshot.database)}",
        f"captured {snapshot.captured_at} from {snapshot.server.flavor} {snapshot.server.version}",
        f"schema hash {snapshot.schema_hash}",
    ]
    if commented:
        header.append("Some statements hold comments: run it with mysql --comments (it stops at once without).")
    lines = [client_script.comment(line) for line in header] + ["", f"charset {CLIENT_CHARSET}"]
    if commented:
        lines += client_script.COMMENTS_GUARD
    return "\n".join(lines + body) + "\n"
