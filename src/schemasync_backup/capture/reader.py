"""Read a live server into a Snapshot.

A constant number of bulk ``information_schema`` queries gives the structure; the server's
own ``SHOW CREATE`` texts come in batches of many statements per round trip. Nothing here
costs one round trip per object.
"""

from __future__ import annotations

import contextlib
import json
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from schemasync_backup.capture import privileges
from schemasync_backup.capture.connection import Connection, Source, describe, open_source, query, texts_many
from schemasync_backup.capture.fingerprints import (
    EVENT_TIME,
    TABLE_TIME,
    Scope,
    reusable,
    table_fingerprint,
)
from schemasync_backup.capture.privileges import backup_shortfalls, current_user, hidden_definition
from schemasync_backup.capture.read_ahead import ReadAhead
from schemasync_backup.errors import DatabaseNotFoundError, PrivilegeError, QueryError
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import (
    CheckConstraint,
    Column,
    Event,
    ForeignKey,
    Index,
    IndexPart,
    Parameter,
    Routine,
    ServerInfo,
    Snapshot,
    Table,
    Trigger,
    View,
    key_of,
)
from schemasync_backup.sql.quoting import quote_identifier, quote_string

#: How many SHOW CREATE statements go to the server in one round trip.
SHOW_CREATE_BATCH = 500
_TABLE_KINDS = ("BASE TABLE", "SYSTEM VERSIONED", "SEQUENCE")
_NUMERIC_TYPES = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint|decimal|float|double|bit)\b")
_ON_UPDATE = re.compile(r"on update (\S+)", re.IGNORECASE)
_PARTITIONING = re.compile(r"\n\s*(?:/\*!\d+\s*)?(PARTITION BY .*?)(?:\s*\*/)?\s*$", re.DOTALL)
_VIEW_CHECK_OPTION = re.compile(r"\s+WITH (?:CASCADED|LOCAL) CHECK OPTION$")
#: One token of a view definition as the server prints it: a string literal (escapes and all), a
#: quoted name, a word, a run of white space, or any other single character.
_VIEW_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`]|``)*`|\w+|\s+|.", re.DOTALL)
#: Words a table name follows in a view definition (after any parentheses of nested joins).
_BEFORE_A_TABLE = frozenset({"from", "join", "straight_join"})
#: Functions whose argument is a sequence, that is a table name.
_SEQUENCE_FUNCTIONS = frozenset({"nextval", "lastval", "setval"})
#: ER_ADMIN_WRONG_MRG_TABLE: a MERGE table's UNION names a table the server cannot open.
_MERGE_UNION_UNUSABLE = 1168

Row = dict[str, Any]


def capture(source: Source, database: str, *, known: Snapshot | None = None,
            progress: ProgressCallback | None = None, parallel: bool = True) -> Snapshot:
    """Capture ``database`` from ``source`` (a DSN or an open PyMySQL connection); with ``known``,
    read only what its fingerprints do not prove unchanged (:mod:`.fingerprints`).

    ``progress`` is told the schema objects captured of those listed (stage ``"objects"``): first
    those ``known`` proves unchanged, then after each batch of definitions read. ``parallel=False``
    reads everything on the one connection (by default the columns are read on a second one)."""
    with open_source(source, database) as connection:
        return _capture(connection, database, known, progress, parallel)


def _capture(connection: Connection, database: str, known: Snapshot | None = None,
             progress: ProgressCallback | None = None, parallel: bool = True) -> Snapshot:
    where = describe(connection)
    schema = query(
        connection,
        "SELECT SCHEMA_NAME AS name, DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co "
        "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
        (database,),
    )
    if not schema:
        raise DatabaseNotFoundError(
            f"unknown database {database!r} on {where}: check the name, or create it first",
            subject=database,
        )
    server = server_info(connection)
    _check_privileges(connection, database, server.flavor, where)
    reader = _Reader.for_server(connection, server)
    try:
        # The longest read, on a second connection (when capture opened its own) while this one reads
        # the rest; from a known snapshot only once the listing says which tables to read.
        if known is None and parallel:
            reader.read_ahead("COLUMNS", "TABLE_SCHEMA", database, order=_COLUMN_ORDER)
        listed = _listing(reader, database)
        fresh = _Fresh(listed, reusable(known, listed.fingerprints))
        names = fresh.table_names()
        if known is not None and parallel:
            reader.read_ahead("COLUMNS", "TABLE_SCHEMA", database, order=_COLUMN_ORDER, names=names)
        charsets = {row["COLLATION_NAME"]: row["CHARACTER_SET_NAME"] for row in reader.rows("COLLATIONS")}
        # No ORDER BY: the server's own order of keys is the order SHOW CREATE TABLE prints.
        statistics = reader.rows("STATISTICS", "TABLE_SCHEMA", database, names=names)
        rules = {(row["TABLE_NAME"], row["CONSTRAINT_NAME"]): row
                 for row in reader.rows("REFERENTIAL_CONSTRAINTS", "CONSTRAINT_SCHEMA", database, names=names)}
        fk_columns = [
            {**row, "UPDATE_RULE": rule["UPDATE_RULE"], "DELETE_RULE": rule["DELETE_RULE"]}
            for row in reader.rows("KEY_COLUMN_USAGE", "TABLE_SCHEMA", database,
                                   order=("TABLE_NAME", "CONSTRAINT_NAME", "ORDINAL_POSITION"), names=names)
            if row["REFERENCED_TABLE_NAME"] is not None
            for rule in [rules.get((row["TABLE_NAME"], row["CONSTRAINT_NAME"]))] if rule is not None
        ]
        checks = _check_rows(reader, database, names)
        # Last: read ahead, it overlaps the reads above.
        columns = reader.rows("COLUMNS", "TABLE_SCHEMA", database, order=_COLUMN_ORDER, names=names)
    finally:
        reader.close()

    unread = ([(_show_kind(row), row["TABLE_NAME"]) for row in fresh.rows("table", listed.tables)]
              + [("VIEW", row["TABLE_NAME"]) for row in fresh.rows("view", listed.views)]
              + [("TRIGGER", row["TRIGGER_NAME"]) for row in fresh.rows("trigger", listed.triggers)]
              + [(row["ROUTINE_TYPE"], row["ROUTINE_NAME"]) for row in fresh.rows("routine", listed.routines)]
              + [("EVENT", row["EVENT_NAME"]) for row in fresh.rows("event", listed.events)])
    creates = _show_create(connection, unread, _objects_read(progress, listed.count, listed.count - len(unread)))
    texts = _require_texts(connection, creates, server.flavor, where)
    columns_of, stats_of = _group(columns, "TABLE_NAME"), _group(statistics, "TABLE_NAME")
    fks_of, checks_of = _group(fk_columns, "TABLE_NAME"), _group(checks, "TABLE_NAME")
    params_of = listed.parameters_of()
    return Snapshot(
        database=database,
        charset=schema[0]["cs"],
        collation=schema[0]["co"],
        server=server,
        tables=tuple(
            fresh.get("table", row) or _table(
                {**row, "TABLE_CHARSET": charsets.get(row["TABLE_COLLATION"])},
                columns=columns_of[name],
                statistics=stats_of[name],
                fk_columns=fks_of[name],
                checks=checks_of[name],
                flavor=server.flavor,
                create_sql=texts[(_show_kind(row), name)],
            )
            for row in listed.tables
            for name in [row["TABLE_NAME"]]
        ),
        # The name as the server stores it, which is how it prints it in view definitions.
        views=tuple(fresh.get("view", row)
                    or _view(row, texts[("VIEW", row["TABLE_NAME"])], schema[0]["name"]) for row in listed.views),
        triggers=tuple(fresh.get("trigger", row)
                       or _trigger(row, texts[("TRIGGER", row["TRIGGER_NAME"])]) for row in listed.triggers),
        routines=tuple(
            fresh.get("routine", row)
            or _routine(row, params_of[row["ROUTINE_NAME"]], texts[(row["ROUTINE_TYPE"], row["ROUTINE_NAME"])])
            for row in listed.routines
        ),
        events=tuple(fresh.get("event", row)
                     or _event(row, texts[("EVENT", row["EVENT_NAME"])]) for row in listed.events),
        captured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        fingerprints=listed.fingerprints,
    )


@attrs.frozen
class _Listing:
    """One row per schema object, read before any definition, with the fingerprints they prove."""

    tables: list[Row]
    views: list[Row]
    triggers: list[Row]
    routines: list[Row]
    parameters: list[Row]
    events: list[Row]
    fingerprints: dict[str, str]

    @property
    def count(self) -> int:
        """The schema objects listed."""
        return len(self.tables) + len(self.views) + len(self.triggers) + len(self.routines) + len(self.events)

    def parameters_of(self) -> defaultdict[str, list[Row]]:
        # Position 0 is a function's return value, which the routine row already carries.
        return _group((p for p in self.parameters if p["ORDINAL_POSITION"]), "SPECIFIC_NAME")


def _listing(reader: _Reader, database: str) -> _Listing:
    """The rows of every object, the times among them read in UTC (see :mod:`.fingerprints`)."""
    with reader.in_utc() as as_of:
        tables = [row for row in reader.rows("TABLES", "TABLE_SCHEMA", database, order=("TABLE_NAME",),
                                             extra=TABLE_TIME) if row["TABLE_TYPE"] in _TABLE_KINDS]
        events = reader.rows("EVENTS", "EVENT_SCHEMA", database, order=("EVENT_NAME",), extra=EVENT_TIME)
    triggers = reader.rows("TRIGGERS", "TRIGGER_SCHEMA", database,
                           order=("EVENT_OBJECT_TABLE", "ACTION_TIMING", "EVENT_MANIPULATION", "ACTION_ORDER"))
    routines = [row for row in reader.rows("ROUTINES", "ROUTINE_SCHEMA", database,
                                           order=("ROUTINE_TYPE", "ROUTINE_NAME"))
                if row["ROUTINE_TYPE"] in ("PROCEDURE", "FUNCTION")]
    views = reader.rows("VIEWS", "TABLE_SCHEMA", database, order=("TABLE_NAME",))
    parameters = reader.rows("PARAMETERS", "SPECIFIC_SCHEMA", database, order=("SPECIFIC_NAME", "ORDINAL_POSITION"))
    found: dict[str, str | None] = {}
    if as_of is not None:  # (triggers and routines have none: see .fingerprints)
        scope = Scope.of(reader.settings, database, as_of)
        found.update((key_of("table", _NAME_OF["table"](row)), table_fingerprint(scope, row)) for row in tables)
        found.update((key_of("view", _NAME_OF["view"](row)), scope.fingerprint(row, timed=False)) for row in views)
        found.update((key_of("event", _NAME_OF["event"](row)), scope.fingerprint(row)) for row in events)
    return _Listing(tables, views, triggers, routines, parameters, events,
                    {key: value for key, value in found.items() if value is not None})


@attrs.frozen
class _Fresh:
    """Which objects a capture reads, and the known ones it takes as they are."""

    listed: _Listing
    reused: dict[str, Any]

    def get(self, kind: str, row: Row) -> Any:
        """The known object to take for ``row``, or None: it is read."""
        return self.reused.get(key_of(kind, _NAME_OF[kind](row)))

    def rows(self, kind: str, rows: list[Row]) -> list[Row]:
        return [row for row in rows if self.get(kind, row) is None]

    def table_names(self) -> list[str] | None:
        """The tables to read, or None for all of them (one query with no name list)."""
        wanted = [row["TABLE_NAME"] for row in self.rows("table", self.listed.tables)]
        return None if len(wanted) == len(self.listed.tables) else wanted


_NAME_OF: dict[str, Any] = {
    "table": lambda row: row["TABLE_NAME"],
    "view": lambda row: row["TABLE_NAME"],
    "trigger": lambda row: row["TRIGGER_NAME"],
    "routine": lambda row: f"{row['ROUTINE_TYPE']} {row['ROUTINE_NAME']}",
    "event": lambda row: row["EVENT_NAME"],
}


def _group(rows: Iterable[Row], key: str) -> defaultdict[str, list[Row]]:
    grouped: defaultdict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


def flavor_of(version: str, version_comment: str = "") -> str:
    """``"mariadb"`` or ``"mysql"``: the one flavor rule. MariaDB says so in VERSION() (``10.11.6-MariaDB``)
    or, where a distribution rewrites the version, in @@version_comment (``mariadb.org binary distribution``)."""
    return "mariadb" if "mariadb" in f"{version} {version_comment}".lower() else "mysql"


def server_info(connection: Connection) -> ServerInfo:
    """The server's flavor, version, global sql_mode and lower_case_table_names."""
    row = query(
        connection,
        "SELECT VERSION() AS version, @@version_comment AS comment, @@GLOBAL.sql_mode AS sql_mode, "
        "@@lower_case_table_names AS lctn",
    )[0]
    version = str(row["version"])
    return ServerInfo(
        flavor=flavor_of(version, str(row["comment"] or "")),
        version=version.split("-", maxsplit=1)[0],
        sql_mode=str(row["sql_mode"]),
        lower_case_table_names=int(row["lctn"]),
    )


def _check_privileges(connection: Connection, database: str, flavor: str, where: str) -> None:
    """Refuse to capture a partial schema: without its privileges the server silently hides objects."""
    privileges.refuse(backup_shortfalls(connection, flavor, database), where)


def _check_rows(reader: _Reader, database: str, names: list[str] | None) -> list[Row]:
    if "TABLE_NAME" in reader.available.get("CHECK_CONSTRAINTS", ()):
        return sorted(reader.rows("CHECK_CONSTRAINTS", "CONSTRAINT_SCHEMA", database, names=names),
                      key=lambda row: (row["TABLE_NAME"] or "", row["CONSTRAINT_NAME"]))
    checks = reader.rows("CHECK_CONSTRAINTS", "CONSTRAINT_SCHEMA", database, order=("CONSTRAINT_NAME",))
    if checks:
        # MySQL names the table only in TABLE_CONSTRAINTS (there, check names are unique per schema).
        owners = {row["CONSTRAINT_NAME"]: row["TABLE_NAME"]
                  for row in reader.rows("TABLE_CONSTRAINTS", "CONSTRAINT_SCHEMA", database, names=names)
                  if row["CONSTRAINT_TYPE"] == "CHECK"}
        checks = [{**row, "TABLE_NAME": owners.get(row["CONSTRAINT_NAME"])} for row in checks
                  if names is None or row["CONSTRAINT_NAME"] in owners]
    return sorted(checks, key=lambda row: (row["TABLE_NAME"] or "", row["CONSTRAINT_NAME"]))


#: The information_schema columns capture reads; those a server lacks are left out (flavors differ).
_WANTED = {
    "TABLES": ("TABLE_NAME", "TABLE_TYPE", "ENGINE", "ROW_FORMAT", "AUTO_INCREMENT", "TABLE_COLLATION",
               "CREATE_OPTIONS", "TABLE_COMMENT"),
    "COLLATIONS": ("COLLATION_NAME", "CHARACTER_SET_NAME"),
    "COLUMNS": ("TABLE_NAME", "COLUMN_NAME", "ORDINAL_POSITION", "COLUMN_DEFAULT", "IS_NULLABLE", "COLUMN_TYPE",
                "CHARACTER_SET_NAME", "COLLATION_NAME", "EXTRA", "GENERATION_EXPRESSION", "COLUMN_COMMENT",
                "IS_GENERATED"),
    "STATISTICS": ("TABLE_NAME", "INDEX_NAME", "NON_UNIQUE", "SEQ_IN_INDEX", "COLUMN_NAME", "COLLATION", "SUB_PART",
                   "INDEX_TYPE", "INDEX_COMMENT", "IGNORED", "IS_VISIBLE", "EXPRESSION"),
    "REFERENTIAL_CONSTRAINTS": ("TABLE_NAME", "CONSTRAINT_NAME", "UPDATE_RULE", "DELETE_RULE"),
    "KEY_COLUMN_USAGE": ("TABLE_SCHEMA", "TABLE_NAME", "CONSTRAINT_NAME", "COLUMN_NAME", "ORDINAL_POSITION",
                         "REFERENCED_TABLE_SCHEMA", "REFERENCED_TABLE_NAME", "REFERENCED_COLUMN_NAME"),
    "CHECK_CONSTRAINTS": ("TABLE_NAME", "CONSTRAINT_NAME", "CHECK_CLAUSE", "LEVEL"),
    "TABLE_CONSTRAINTS": ("TABLE_NAME", "CONSTRAINT_NAME", "CONSTRAINT_TYPE"),
    "VIEWS": ("TABLE_NAME", "VIEW_DEFINITION", "CHECK_OPTION", "DEFINER", "SECURITY_TYPE", "CHARACTER_SET_CLIENT",
              "COLLATION_CONNECTION", "ALGORITHM"),
    "TRIGGERS": ("TRIGGER_NAME", "EVENT_MANIPULATION", "EVENT_OBJECT_TABLE", "ACTION_ORDER", "ACTION_STATEMENT",
                 "ACTION_TIMING", "SQL_MODE", "DEFINER", "CHARACTER_SET_CLIENT", "COLLATION_CONNECTION"),
    "ROUTINES": ("ROUTINE_NAME", "ROUTINE_TYPE", "DTD_IDENTIFIER", "ROUTINE_DEFINITION", "IS_DETERMINISTIC",
                 "SQL_DATA_ACCESS", "SECURITY_TYPE", "ROUTINE_COMMENT", "SQL_MODE", "DEFINER", "CHARACTER_SET_CLIENT",
                 "COLLATION_CONNECTION", "CHARACTER_SET_NAME", "COLLATION_NAME"),
    "PARAMETERS": ("SPECIFIC_NAME", "ORDINAL_POSITION", "PARAMETER_MODE", "PARAMETER_NAME", "DTD_IDENTIFIER",
                   "ROUTINE_TYPE", "CHARACTER_SET_NAME", "COLLATION_NAME"),
    "EVENTS": ("EVENT_NAME", "DEFINER", "TIME_ZONE", "EVENT_DEFINITION", "EVENT_TYPE", "EXECUTE_AT",
               "INTERVAL_VALUE", "INTERVAL_FIELD", "SQL_MODE", "STARTS", "ENDS", "STATUS", "ON_COMPLETION",
               "EVENT_COMMENT", "CHARACTER_SET_CLIENT", "COLLATION_CONNECTION"),
}


#: The setting that lets JSON_ARRAYAGG build arrays of any length (see _Reader.for_server).
_UNCAPPED = "SESSION group_concat_max_len = 4294967295"
_COLUMN_ORDER = ("TABLE_NAME", "ORDINAL_POSITION")


def _read_key(table: str, schema_column: str | None, database: str | None, order: tuple[str, ...],
              names: list[str] | None) -> tuple[object, ...]:
    return table, schema_column, database, order, None if names is None else tuple(names)


@attrs.frozen
class _Reader:
    """Reads information_schema in bulk.

    Where the server can (MariaDB 10.5+, MySQL 8), each query returns ONE value, a JSON array
    of row objects built by the server: PyMySQL decodes result rows in pure Python, which
    costs seconds for the 50,000 column rows of a 5,000-table schema, while json.loads of
    the same data takes milliseconds. (Arrays of arrays halve the server's text, but building
    the row dicts from them in Python costs the client more than the server saves.)
    """

    connection: Connection
    available: dict[str, frozenset[str]]
    as_json: bool
    #: Where and how this session reads (part of every fingerprint); empty where fingerprints are
    #: not kept: MySQL 8 serves CREATE_TIME from a statistics cache that lags behind changes.
    settings: dict[str, Any] = attrs.field(factory=dict)
    ahead: ReadAhead[list[Row]] = attrs.field(
        default=attrs.Factory(lambda reader: ReadAhead(reader.connection), takes_self=True), eq=False, repr=False
    )

    @classmethod
    def for_server(cls, connection: Connection, server: ServerInfo) -> _Reader:
        rows = query(
            connection,
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME IN ({', '.join(['%s'] * len(_WANTED))})",
            tuple(_WANTED),
        )
        available: defaultdict[str, set[str]] = defaultdict(set)
        for row in rows:
            available[str(row["TABLE_NAME"]).upper()].add(str(row["COLUMN_NAME"]).upper())
        major_minor = tuple(int(part) for part in re.findall(r"\d+", server.version)[:2])
        as_json = major_minor >= ((10, 5) if server.flavor == "mariadb" else (8, 0))
        settings: dict[str, Any] = {}
        if as_json and server.flavor == "mariadb":
            # MariaDB caps JSON_ARRAYAGG like GROUP_CONCAT; lift the cap for this session only.
            query(connection, f"SET @schemasync_gcml = @@SESSION.group_concat_max_len, {_UNCAPPED}")
            settings = query(connection, "SELECT @@hostname AS host, @@port AS port, @@datadir AS datadir, "
                                         "@@SESSION.time_zone AS time_zone, @@SESSION.sql_mode AS sql_mode")[0]
        return cls(connection, {name: frozenset(columns) for name, columns in available.items()}, as_json, settings)

    @contextlib.contextmanager
    def in_utc(self) -> Iterator[int | None]:
        """Read in a UTC session, so each time is one instant; yields the server's clock (Unix
        seconds), or None where this session keeps no fingerprints."""
        if not self.settings:
            yield None
            return
        query(self.connection, "SET @schemasync_tz = @@SESSION.time_zone, SESSION time_zone = '+00:00'")
        try:
            yield int(query(self.connection, "SELECT UNIX_TIMESTAMP() AS now")[0]["now"])
        finally:
            if self.connection.open:
                query(self.connection, "SET SESSION time_zone = @schemasync_tz")

    def read_ahead(self, table: str, schema_column: str | None = None, database: str | None = None,
                   order: tuple[str, ...] = (), *, names: list[str] | None = None) -> None:
        """Start reading what :meth:`rows` with these arguments returns on a second connection; that call
        then returns it (or reads it on this connection, when there is no second one)."""
        def read(second: Connection) -> list[Row]:
            if self.as_json:
                query(second, f"SET {_UNCAPPED}")  # a session of its own, closed afterwards
            return _Reader(second, self.available, self.as_json).rows(table, schema_column, database, order,
                                                                     names=names)

        self.ahead.start(_read_key(table, schema_column, database, order, names), read)

    def rows(self, table: str, schema_column: str | None = None, database: str | None = None,
             order: tuple[str, ...] = (), *, extra: Mapping[str, str] | None = None,
             names: list[str] | None = None) -> list[Row]:
        """The rows of one information_schema table, with ``extra`` values (alias → SQL) where
        this session keeps fingerprints; only those of tables ``names`` when given."""
        read_ahead = self.ahead.take(_read_key(table, schema_column, database, order, names))
        if read_ahead is not None:
            return read_ahead
        present = self.available.get(table, frozenset())
        columns = [column for column in _WANTED[table] if column in present]
        where = f" WHERE {schema_column} = %s" if schema_column else ""
        args: tuple[str, ...] | None = (database,) if schema_column and database is not None else None
        if names is not None:
            if not names:
                return []
            where += f" AND TABLE_NAME IN ({', '.join(['%s'] * len(names))})"
            args = (*(args or ()), *names)
        if self.as_json:
            pairs = ", ".join([f"'{column}', {column}" for column in columns]
                              + [f"'{alias}', {sql}" for alias, sql in (extra or {}).items() if self.settings])
            found = query(self.connection,
                          f"SELECT JSON_ARRAYAGG(JSON_OBJECT({pairs})) AS r FROM information_schema.{table}{where}",
                          args)
            value = found[0]["r"] if found else None
            rows: list[Row] = json.loads(value) if value else []
            return sorted(rows, key=operator.itemgetter(*order)) if order else rows
        ordering = f" ORDER BY {', '.join(order)}" if order else ""
        return query(self.connection, f"SELECT {', '.join(columns)} FROM information_schema.{table}{where}{ordering}",
                     args)

    def close(self) -> None:
        self.ahead.close()
        # On a connection already found broken there is nothing to restore, and trying would
        # replace the error that broke it with "the connection is closed".
        if self.as_json and self.available and self.connection.open:
            query(self.connection, "SET SESSION group_concat_max_len = @schemasync_gcml")


_CREATE_TEXT_COLUMN = {"TABLE": 1, "SEQUENCE": 1, "VIEW": 1, "TRIGGER": 2, "PROCEDURE": 2, "FUNCTION": 2, "EVENT": 3}


def _show_kind(row: Row) -> str:
    # SHOW CREATE TABLE prints a sequence as its backing table, which recreates it with the
    # default START/INCREMENT/...; SHOW CREATE SEQUENCE keeps them.
    return "SEQUENCE" if row["TABLE_TYPE"] == "SEQUENCE" else "TABLE"


def _require_texts(
    connection: Connection, creates: dict[tuple[str, str], str | None], flavor: str, where: str
) -> dict[tuple[str, str], str]:
    """The CREATE texts, refusing when the server hid one (a routine redefined by another account
    since the privilege check)."""
    texts: dict[tuple[str, str], str] = {}
    for (kind, name), text in creates.items():
        if text is None:
            shortfall = hidden_definition(flavor, current_user(connection), kind, name)
            raise PrivilegeError(f"missing privilege on {where}: {shortfall.message}", subject=name)
        texts[(kind, name)] = text
    return texts


def _objects_read(progress: ProgressCallback | None, total: int, reused: int) -> Callable[[int], None]:
    """Tells ``progress`` the objects captured once ``read`` more definitions are in (and now, those reused)."""
    def read(count: int) -> None:
        if progress is not None:
            progress(ProgressUpdate("objects", reused + count, total))

    read(0)
    return read


def _show_create(connection: Connection, objects: list[tuple[str, str]], read: Callable[[int], None]
                 ) -> dict[tuple[str, str], str | None]:
    """The server's CREATE text of every object, many statements per round trip; ``read`` is told
    how many are in after each round trip."""
    texts: dict[tuple[str, str], str | None] = {}
    for start in range(0, len(objects), SHOW_CREATE_BATCH):
        batch = objects[start : start + SHOW_CREATE_BATCH]
        try:
            results = texts_many(connection, [_show_create_statement(kind, name) for kind, name in batch])
        except QueryError:
            # The pipeline tells the first error, not whose it was: ask one by one to name the object
            # (should each answer now, the first error stands).
            _raise_naming_the_unreadable(connection, batch)
            raise
        for (kind, name), rows in zip(batch, results, strict=True):
            texts[(kind, name)] = rows[0][_CREATE_TEXT_COLUMN[kind]] if rows else None
        read(len(texts))
    return texts


def _show_create_statement(kind: str, name: str) -> str:
    return f"SHOW CREATE {kind} {quote_identifier(name)}"


def _raise_naming_the_unreadable(connection: Connection, objects: list[tuple[str, str]]) -> None:
    for kind, name in objects:
        try:
            query(connection, _show_create_statement(kind, name))
        except QueryError as exc:
            raise _unreadable(connection, kind, name, exc) from exc


def _unreadable(connection: Connection, kind: str, name: str, exc: QueryError) -> QueryError:
    """The error for an object whose CREATE text the server refuses to print."""
    if exc.code != _MERGE_UNION_UNUSABLE:
        return QueryError(f"cannot capture {kind.lower()} {quote_identifier(name)}: {exc.message}; "
                          "repair or drop it, then capture again", subject=name, code=exc.code)
    # The server's warnings may name the table it could not open; its error never does.
    causes = [str(row["Message"]) for row in query(connection, "SHOW WARNINGS") if row["Code"] != exc.code]
    return QueryError(
        f"cannot capture MERGE table {quote_identifier(name)}: the server cannot open a table its UNION lists, "
        f"so it does not print the table's definition ({'; '.join(causes) or exc.message}). A backup holds "
        "one database, so a table the UNION lists in another database must exist wherever the backup is "
        "captured: create it (MyISAM, with the merge table's columns), or list only existing tables with "
        f"ALTER TABLE {quote_identifier(name)} UNION=(...), or drop the merge table; then capture again "
        f"({describe(connection)})",
        subject=name,
        code=exc.code,
    )


def _table(
    row: Row, *, columns: list[Row], statistics: list[Row], fk_columns: list[Row], checks: list[Row],
    flavor: str, create_sql: str,
) -> Table:
    partitioning = _PARTITIONING.search(create_sql) if "PARTITION BY" in create_sql else None
    options = " ".join(option for option in str(row.get("CREATE_OPTIONS") or "").split() if option != "partitioned")
    collation = row.get("TABLE_COLLATION")
    return Table(
        name=row["TABLE_NAME"],
        kind=row["TABLE_TYPE"],
        columns=tuple(_column(column, flavor) for column in columns),
        indexes=_indexes(statistics),
        foreign_keys=_foreign_keys(fk_columns),
        checks=tuple(
            CheckConstraint(
                name=check["CONSTRAINT_NAME"],
                clause=check["CHECK_CLAUSE"],
                column=check["CONSTRAINT_NAME"] if check.get("LEVEL") == "Column" else None,
            )
            for check in checks
        ),
        engine=row.get("ENGINE"),
        charset=row.get("TABLE_CHARSET") or (collation.split("_")[0] if collation else None),
        collation=collation,
        row_format=row.get("ROW_FORMAT"),
        comment=row.get("TABLE_COMMENT") or "",
        create_options=options,
        partitioning=partitioning.group(1) if partitioning else None,
        auto_increment=row.get("AUTO_INCREMENT"),
        create_sql=create_sql,
    )


def _column(row: Row, flavor: str) -> Column:
    extra = str(row.get("EXTRA") or "")
    lowered = extra.lower()
    generated = row.get("GENERATION_EXPRESSION") or None
    # MySQL marks an expression default DEFAULT_GENERATED: that is no generated column.
    expression_default = "default_generated" in lowered and "virtual" not in lowered and "stored" not in lowered
    if "generated" not in lowered or expression_default:
        generated = None
    on_update = _ON_UPDATE.search(extra)
    return Column(
        name=row["COLUMN_NAME"],
        type=row["COLUMN_TYPE"],
        nullable=row["IS_NULLABLE"] == "YES",
        default=_default(row, flavor, generated is not None),
        auto_increment="auto_increment" in lowered,
        on_update=on_update.group(1) if on_update else None,
        generated=generated,
        stored=generated is not None and "stored" in lowered,
        charset=row.get("CHARACTER_SET_NAME"),
        collation=row.get("COLLATION_NAME"),
        comment=row.get("COLUMN_COMMENT") or "",
        invisible="invisible" in lowered,
    )


def _default(row: Row, flavor: str, generated: bool) -> str | None:
    """The default as SQL text, in MariaDB's spelling whatever the flavor."""
    value = row.get("COLUMN_DEFAULT")
    if generated:
        return None
    if flavor == "mariadb":
        return None if value is None else str(value)
    # MySQL reports literals unquoted and cannot tell "no default" from DEFAULT NULL.
    extra = str(row.get("EXTRA") or "").lower()
    if value is None:
        return "NULL" if row["IS_NULLABLE"] == "YES" and "auto_increment" not in extra else None
    if "default_generated" in extra or _NUMERIC_TYPES.match(str(row["COLUMN_TYPE"])):
        return str(value)
    return quote_string(str(value))


def _indexes(statistics: list[Row]) -> tuple[Index, ...]:
    # Keep the server's order of indexes (it is the order SHOW CREATE TABLE prints).
    by_name: dict[str, list[Row]] = {}
    for row in statistics:
        by_name.setdefault(row["INDEX_NAME"], []).append(row)
    indexes = []
    for name, rows in by_name.items():
        rows.sort(key=lambda part: part["SEQ_IN_INDEX"])
        first = rows[0]
        index_type = str(first.get("INDEX_TYPE") or "")
        if name == "PRIMARY":
            kind = "PRIMARY"
        elif index_type in ("FULLTEXT", "SPATIAL"):
            kind = index_type
        else:
            kind = "UNIQUE" if int(first["NON_UNIQUE"]) == 0 else "INDEX"
        indexes.append(
            Index(
                name=name,
                kind=kind,
                parts=tuple(
                    IndexPart(
                        column=part.get("COLUMN_NAME"),
                        expression=part.get("EXPRESSION"),
                        prefix_length=part.get("SUB_PART"),
                        descending=part.get("COLLATION") == "D",
                    )
                    for part in rows
                ),
                algorithm=None if kind in ("FULLTEXT", "SPATIAL") else index_type or None,
                comment=first.get("INDEX_COMMENT") or "",
                visible=first.get("IGNORED", "NO") != "YES" and first.get("IS_VISIBLE", "YES") != "NO",
            )
        )
    return tuple(indexes)


def _foreign_keys(rows: list[Row]) -> tuple[ForeignKey, ...]:
    by_name: dict[str, list[Row]] = {}
    for row in rows:
        by_name.setdefault(row["CONSTRAINT_NAME"], []).append(row)
    return tuple(
        ForeignKey(
            name=name,
            columns=tuple(part["COLUMN_NAME"] for part in parts),
            referenced_table=parts[0]["REFERENCED_TABLE_NAME"],
            referenced_columns=tuple(part["REFERENCED_COLUMN_NAME"] for part in parts),
            referenced_schema=None
            if parts[0]["REFERENCED_TABLE_SCHEMA"] == parts[0]["TABLE_SCHEMA"]
            else parts[0]["REFERENCED_TABLE_SCHEMA"],
            on_update=parts[0]["UPDATE_RULE"],
            on_delete=parts[0]["DELETE_RULE"],
        )
        for name, parts in by_name.items()
    )


def _view(row: Row, create_sql: str, database: str) -> View:
    head, marker, printed = create_sql.partition(f"VIEW {quote_identifier(row['TABLE_NAME'])} AS ")
    definition = _without_own_database(printed if marker else str(row["VIEW_DEFINITION"]), database)
    return View(
        name=row["TABLE_NAME"],
        definition=_VIEW_CHECK_OPTION.sub("", definition),
        algorithm=row.get("ALGORITHM") or "UNDEFINED",
        security=row["SECURITY_TYPE"],
        check_option=row["CHECK_OPTION"],
        definer=row["DEFINER"],
        charset_client=row["CHARACTER_SET_CLIENT"],
        collation_connection=row["COLLATION_CONNECTION"],
        create_sql=head + marker + definition if marker else create_sql,
    )


def _without_own_database(definition: str, database: str) -> str:
    """A view definition without the qualifier that names the view's own database.

    The server prints that qualifier wherever it cannot print the short form: in every name of
    a view that also reads another database, in the column names of a view whose definer does
    not exist, and in a sequence's name. Created from that text under another name, the view would
    read the source database, or fail (error 1054: its columns name a table the FROM does not).
    Without it the view reads the database it is created in, whose server prints it the same way.
    Names of other databases, and text inside strings and quoted names, stay as they are.
    """
    tokens = _VIEW_TOKEN.findall(definition)
    own = quote_identifier(database)
    dropped = {index for index, token in enumerate(tokens) if token == own and _names_a_database(tokens, index)}
    # Each dropped name goes with the dot after it.
    return "".join(token for index, token in enumerate(tokens) if not {index, index - 1} & dropped)


def _names_a_database(tokens: list[str], index: int) -> bool:
    """Whether the quoted name at ``index`` is a database: ``db``.``t``.``c``, ``db``.``f``(...), or
    ``db``.``t`` where a table goes; not ``t``.``c``, whose table may be named like a database."""
    def at(position: int) -> str:
        return tokens[position] if 0 <= position < len(tokens) else ""

    if at(index - 1) == "." or at(index + 1) != "." or not at(index + 2).startswith("`"):
        return False  # not the first part of a qualified name
    if at(index + 3) in (".", "("):
        return True
    # Back over the parentheses of nested joins (or of a function call) to the word before them.
    position, parentheses = index - 1, 0
    while at(position).isspace() or at(position) == "(":
        parentheses += at(position) == "("
        position -= 1
    word = at(position).lower()
    return word in _BEFORE_A_TABLE or (parentheses == 1 and word in _SEQUENCE_FUNCTIONS)


def _trigger(row: Row, create_sql: str) -> Trigger:
    return Trigger(
        name=row["TRIGGER_NAME"],
        table=row["EVENT_OBJECT_TABLE"],
        timing=row["ACTION_TIMING"],
        event=row["EVENT_MANIPULATION"],
        order=int(row["ACTION_ORDER"]),
        body=row["ACTION_STATEMENT"],
        sql_mode=row["SQL_MODE"],
        definer=row["DEFINER"],
        charset_client=row["CHARACTER_SET_CLIENT"],
        collation_connection=row["COLLATION_CONNECTION"],
        create_sql=create_sql,
    )


def _routine(row: Row, parameters: list[Row], create_sql: str) -> Routine:
    return Routine(
        name=row["ROUTINE_NAME"],
        kind=row["ROUTINE_TYPE"],
        parameters=tuple(
            Parameter(
                name=p["PARAMETER_NAME"],
                type=p["DTD_IDENTIFIER"],
                mode=p.get("PARAMETER_MODE"),
                collation=p.get("COLLATION_NAME"),
            )
            for p in parameters
            if p["ROUTINE_TYPE"] == row["ROUTINE_TYPE"]
        ),
        returns=row.get("DTD_IDENTIFIER") if row["ROUTINE_TYPE"] == "FUNCTION" else None,
        returns_collation=row.get("COLLATION_NAME") if row["ROUTINE_TYPE"] == "FUNCTION" else None,
        body=row.get("ROUTINE_DEFINITION") or "",
        deterministic=row["IS_DETERMINISTIC"] == "YES",
        data_access=row["SQL_DATA_ACCESS"],
        security=row["SECURITY_TYPE"],
        comment=row.get("ROUTINE_COMMENT") or "",
        sql_mode=row["SQL_MODE"],
        definer=row["DEFINER"],
        charset_client=row["CHARACTER_SET_CLIENT"],
        collation_connection=row["COLLATION_CONNECTION"],
        create_sql=create_sql,
    )


def _event(row: Row, create_sql: str) -> Event:
    if row["EVENT_TYPE"] == "ONE TIME":
        schedule = f"AT '{row['EXECUTE_AT']}'"
    else:
        schedule = f"EVERY {row['INTERVAL_VALUE']} {row['INTERVAL_FIELD']}"
        if row.get("STARTS"):
            schedule += f" STARTS '{row['STARTS']}'"
        if row.get("ENDS"):
            schedule += f" ENDS '{row['ENDS']}'"
    return Event(
        name=row["EVENT_NAME"],
        schedule=schedule,
        body=row["EVENT_DEFINITION"],
        status=row["STATUS"],
        on_completion=row["ON_COMPLETION"],
        comment=row.get("EVENT_COMMENT") or "",
        sql_mode=row["SQL_MODE"],
        time_zone=row["TIME_ZONE"],
        definer=row["DEFINER"],
        charset_client=row["CHARACTER_SET_CLIENT"],
        collation_connection=row["COLLATION_CONNECTION"],
        create_sql=create_sql,
    )
