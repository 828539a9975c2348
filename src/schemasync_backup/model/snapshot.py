"""Snapshot: one database's complete schema as frozen, pure data.

Capturing (I/O), JSON, hashing and DDL rendering live in their own modules; the methods
here are the convenient front door to them. They import those modules when called, since
every one of them imports this one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from schemasync_backup.errors import SchemaObjectNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from schemasync_backup.capture.connection import Source
    from schemasync_backup.model.progress import ProgressCallback

def object_key(item: Table | Routine | View | Trigger | Event) -> str:
    """The one name of a schema object among all kinds: ``table t``, ``routine PROCEDURE p``, ..."""
    kind = _KIND_OF[type(item)]
    return key_of(kind, f"{item.kind} {item.name}" if isinstance(item, Routine) else item.name)


def key_of(kind: str, name: str) -> str:
    """:func:`object_key` from a kind and a name (a routine's name: ``PROCEDURE p``)."""
    return f"{kind} {name}"


#: Object kinds in the order a restore creates them.
OBJECT_KINDS = ("table", "routine", "view", "trigger", "event")


@attrs.frozen
class ServerInfo:
    """Facts about the server a snapshot was captured from."""

    flavor: str  # "mariadb" or "mysql"
    version: str
    sql_mode: str
    lower_case_table_names: int


@attrs.frozen
class Column:
    name: str
    type: str  # as the server reports it: ``int(10) unsigned``, ``enum('a','b')``
    nullable: bool
    #: The default as SQL text: a quoted literal, ``NULL``, or an expression; None for no default.
    default: str | None = None
    auto_increment: bool = False
    on_update: str | None = None
    #: The generation expression of a generated column.
    generated: str | None = None
    stored: bool = False
    charset: str | None = None
    collation: str | None = None
    comment: str = ""
    invisible: bool = False


@attrs.frozen
class IndexPart:
    column: str | None
    expression: str | None = None
    prefix_length: int | None = None
    descending: bool = False


@attrs.frozen
class Index:
    name: str
    kind: str  # PRIMARY, UNIQUE, INDEX, FULLTEXT or SPATIAL
    parts: tuple[IndexPart, ...]
    algorithm: str | None = None  # BTREE, HASH, ... as the server reports it
    comment: str = ""
    visible: bool = True


@attrs.frozen
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    referenced_table: str
    referenced_columns: tuple[str, ...]
    #: Set only when the parent table lives in another database.
    referenced_schema: str | None = None
    on_update: str = "RESTRICT"
    on_delete: str = "RESTRICT"


@attrs.frozen
class CheckConstraint:
    name: str
    clause: str
    #: The column of a column-level constraint (MariaDB), None for a table-level one.
    column: str | None = None


@attrs.frozen
class Table:
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[CheckConstraint, ...] = ()
    kind: str = "BASE TABLE"  # or SYSTEM VERSIONED, SEQUENCE
    engine: str | None = None
    charset: str | None = None
    collation: str | None = None
    row_format: str | None = None
    comment: str = ""
    create_options: str = ""
    partitioning: str | None = None
    auto_increment: int | None = None
    #: The server's own ``SHOW CREATE TABLE`` text.
    create_sql: str = ""

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name.lower() == name.lower():
                return column
        raise SchemaObjectNotFoundError(f"table {self.name} has no column {name}", subject=name)


@attrs.frozen
class View:
    name: str
    definition: str
    algorithm: str = "UNDEFINED"
    security: str = "DEFINER"
    check_option: str = "NONE"
    definer: str = ""
    charset_client: str = "utf8mb4"
    collation_connection: str = "utf8mb4_general_ci"
    create_sql: str = ""


@attrs.frozen
class Trigger:
    name: str
    table: str
    timing: str  # BEFORE or AFTER
    event: str  # INSERT, UPDATE or DELETE
    order: int
    body: str
    sql_mode: str = ""
    definer: str = ""
    charset_client: str = "utf8mb4"
    collation_connection: str = "utf8mb4_general_ci"
    create_sql: str = ""


@attrs.frozen
class Parameter:
    name: str
    type: str
    mode: str | None = None  # IN, OUT, INOUT; None for function parameters
    #: The collation of a string parameter: the type text does not carry its charset.
    collation: str | None = None


@attrs.frozen
class Routine:
    name: str
    kind: str  # PROCEDURE or FUNCTION
    parameters: tuple[Parameter, ...] = ()
    returns: str | None = None
    #: The collation of a function's string return type.
    returns_collation: str | None = None
    body: str = ""
    deterministic: bool = False
    data_access: str = "CONTAINS SQL"
    security: str = "DEFINER"
    comment: str = ""
    sql_mode: str = ""
    definer: str = ""
    charset_client: str = "utf8mb4"
    collation_connection: str = "utf8mb4_general_ci"
    create_sql: str = ""


@attrs.frozen
class Event:
    name: str
    schedule: str  # "AT '...'" or "EVERY 1 DAY STARTS '...' ENDS '...'"
    body: str
    status: str = "ENABLED"
    on_completion: str = "NOT PRESERVE"
    comment: str = ""
    sql_mode: str = ""
    time_zone: str = "SYSTEM"
    definer: str = ""
    charset_client: str = "utf8mb4"
    collation_connection: str = "utf8mb4_general_ci"
    create_sql: str = ""


@attrs.frozen
class Snapshot:
    """The complete schema of one database at one moment.

    Build one with :meth:`capture` (from a live server) or :meth:`from_json`.
    """

    database: str
    charset: str
    collation: str
    server: ServerInfo
    tables: tuple[Table, ...] = ()
    views: tuple[View, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    routines: tuple[Routine, ...] = ()
    events: tuple[Event, ...] = ()
    captured_at: str = ""  # ISO 8601, UTC
    #: What the server said of each object that proves it unchanged since (``object_key`` → digest),
    #: for an incremental capture; not part of the schema, so not compared, hashed or shown.
    fingerprints: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def capture(cls, source: Source, database: str, *, known: Snapshot | None = None,
                progress: ProgressCallback | None = None, parallel: bool = True) -> Snapshot:
        """Read ``database`` from a live server (a DSN or an open PyMySQL connection).

        With ``known`` (an earlier capture of the same database on the same server), only the
        objects whose fingerprints say they may have changed since are read; the rest are taken
        from ``known``. The result equals a full capture (see :mod:`.capture.fingerprints`).
        ``progress`` is told the objects captured of those listed (:mod:`.model.progress`).
        From a DSN the longest read runs on a second connection; ``parallel=False`` keeps to one.
        """
        from schemasync_backup.capture.reader import capture

        return capture(source, database, known=known, progress=progress, parallel=parallel)

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Load the JSON form written by :meth:`to_json`; refuses unknown format versions."""
        from schemasync_backup.formats.snapshot_json import snapshot_from_json

        return snapshot_from_json(text)

    def to_json(self, *, indent: int | None = None) -> str:
        """The stable, versioned JSON form (see docs/snapshot-format.md)."""
        from schemasync_backup.formats.snapshot_json import snapshot_to_json

        return snapshot_to_json(self, indent=indent)

    @functools.cached_property
    def schema_hash(self) -> str:
        """sha256 of the canonical form: equal for equal schemas, whatever the spelling."""
        from schemasync_backup.model.canonical import schema_hash

        return schema_hash(self)

    def to_statements(self, *, database: str | None = None, create_database: bool = False) -> list[str]:
        """The DDL statements that recreate this schema, in dependency order, one string each."""
        from schemasync_backup.ddl.snapshot_script import restore_statements

        return restore_statements(self, database=database, create_database=create_database)

    def to_sql(self, *, database: str | None = None, create_database: bool = True) -> str:
        """A script for the mysql client that recreates the whole database."""
        from schemasync_backup.ddl.snapshot_script import restore_script

        return restore_script(self, database=database, create_database=create_database)

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise SchemaObjectNotFoundError(f"snapshot of {self.database} has no table {name}", subject=name)

    def keyed_objects(self) -> Iterator[tuple[str, Table | Routine | View | Trigger | Event]]:
        """Every schema object with its :func:`object_key`."""
        for field in ("tables", "routines", "views", "triggers", "events"):
            for item in getattr(self, field):
                yield object_key(item), item

    def objects(self) -> list[tuple[str, str]]:
        """Every schema object as (kind, name), for reports."""
        found: list[tuple[str, str]] = [("table", t.name) for t in self.tables]
        found += [(r.kind.lower(), r.name) for r in self.routines]
        found += [("view", v.name) for v in self.views]
        found += [("trigger", t.name) for t in self.triggers]
        found += [("event", e.name) for e in self.events]
        return found

    def __repr__(self) -> str:
        # Counts, not contents: the whole schema would be megabytes in a notebook or a traceback.
        counts = ", ".join(f"{field}={len(getattr(self, field))}"
                           for field in ("tables", "views", "triggers", "routines", "events"))
        return (f"Snapshot(database={self.database!r}, server={self.server.flavor} {self.server.version}, "
                f"{counts}, captured_at={self.captured_at!r})")

    def __str__(self) -> str:
        from schemasync_backup.model.summary import text_summary

        return text_summary(self)

    def _repr_html_(self) -> str:
        from schemasync_backup.model.summary import html_summary

        return html_summary(self)


_KIND_OF: dict[type, str] = {Table: "table", Routine: "routine", View: "view", Trigger: "trigger", Event: "event"}
