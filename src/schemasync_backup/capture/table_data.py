"""A table's rows, exactly: read in key order as chunks of LOAD DATA text, loaded back, verified.

Each chunk's ``data`` is LOAD DATA text (:mod:`schemasync_backup.sql.load_data`) of the values
in the exact forms of :mod:`schemasync_backup.sql.value_forms`, read with the session of
:func:`open_data_connection`; docs/table-data.md describes the format. Chunk boundaries
depend only on the rows around them, so a backup of a table in which some rows changed shares
every chunk but theirs with the one before: chunks are stored by content (``sha256``).

The consistent snapshot to read in (:func:`start_consistent_snapshot`) lives in
:mod:`~schemasync_backup.capture.data_snapshot`; it is importable from here too, so that this
module is the data layer's one front door.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import attrs

from schemasync_backup.capture.connection import (
    Connection,
    ConnectionSpec,
    connect_for_data,
    describe,
    execute,
    is_data_connection,
    load_local,
    query,
    stream,
    text,
)
from schemasync_backup.capture.data_snapshot import Position, non_transactional, start_consistent_snapshot
from schemasync_backup.errors import InvalidInputError, InvalidSourceError, QueryError
from schemasync_backup.model.snapshot import Column, Index, Table
from schemasync_backup.sql import load_data
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.sql.value_forms import (
    ValueKind,
    insert_literal,
    key_literal,
    value_expression,
    value_kind,
)

__all__ = [
    "Chunk", "Position", "chunk_digest", "chunk_key", "data_columns", "load_chunk", "non_transactional",
    "open_data_connection", "read_chunks", "start_consistent_snapshot",
]

#: The session every read and load of table data runs in (set again on each reconnect):
#: - character_set_results = binary: text arrives in its column's own charset, unconverted;
#: - time_zone UTC: TIMESTAMPs print and load as UTC (a zone with summer time prints the two
#:   instants of the hour it repeats alike);
#: - not strict, NO_AUTO_VALUE_ON_ZERO, ALLOW_INVALID_DATES: whatever a table holds loads back,
#:   zero dates, an explicit 0 in an AUTO_INCREMENT column, the ENUM error value and dates a laxer
#:   sql_mode let in included (what the server would still refuse, load_chunk's row count and
#:   chunk_digest catch); no NO_BACKSLASH_ESCAPES, ANSI_QUOTES or PAD_CHAR_TO_FULL_LENGTH;
#: - foreign_key_checks = 0: tables load in any order (the rows were consistent when read);
#: - net_write_timeout an hour: a table without a key is read in one query while the caller
#:   stores each chunk, and the server must wait for it that long.
_SESSION = (
    "SET SESSION character_set_results = binary, time_zone = '+00:00', "
    "sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION', "
    "foreign_key_checks = 0, net_write_timeout = 3600"
)
#: The longest TEXT, BLOB, JSON or spatial value the server escapes (see _RowSource).
_SERVER_LIMIT = 256 << 10
#: Rows per keyset query: each query is a short range scan of the key, whatever the table's size.
_BATCH_ROWS = 10_000
#: Chunks are cut where the rows themselves say (see _Chunker): a row ends one with a chance of
#: _MEAN_FRACTION per chunk_bytes of its length, never before an eighth of chunk_bytes.
_MEAN_FRACTION = 4
_MINIMUM_FRACTION = 8
#: The most bytes one INSERT statement of load_chunk carries: well below max_allowed_packet.
_INSERT_BYTES = 4 << 20
_METHODS = ("load_data", "insert")
#: ER_LOAD_INFILE_CAPABILITY_DISABLED (MariaDB 10.5+) and ER_NOT_ALLOWED_COMMAND: local_infile is off.
_LOCAL_REFUSED = frozenset({4166, 1148})


@attrs.frozen
class Chunk:
    """A run of a table's rows, in key order, as LOAD DATA text.

    ``first_key`` and ``last_key`` are the key values of its first and last row (in the order of
    :func:`chunk_key`), each the bytes of the value in its exact form (as in ``data``, unescaped:
    a number's digits, an ENUM's index, a text in its column's charset) decoded as latin-1: one
    character per byte, so ``value.encode("latin-1")`` gives the bytes back and JSON holds them as
    they are. Both are None for a table without a key.
    """

    table: str
    #: The chunk's place among the table's chunks, from 1.
    number: int
    columns: tuple[str, ...]
    rows: int
    data: bytes = attrs.field(repr=False)
    first_key: tuple[str | None, ...] | None
    last_key: tuple[str | None, ...] | None
    #: sha256 of ``data``, hex.
    sha256: str


def open_data_connection(source: str | ConnectionSpec, database: str | None = None) -> Connection:
    """A connection for reading and loading table data (close it when done)."""
    spec = ConnectionSpec.parse(source) if isinstance(source, str) else source
    return connect_for_data(spec, database, init_command=_SESSION)


def data_columns(table: Table) -> tuple[str, ...]:
    """The columns whose values a backup stores: all but the generated ones (invisible ones included).

    Generated columns, virtual or stored, and the ROW START/END columns of system versioning
    are computed by the server and cannot be loaded.
    """
    return tuple(column.name for column in table.columns if column.generated is None)


def chunk_key(table: Table) -> tuple[str, ...] | None:
    """The columns that order and bound the chunks: the PRIMARY KEY's, else the first UNIQUE key's
    whose columns are all NOT NULL (and not generated), else None."""
    index = _key_index(table)
    return None if index is None else tuple(str(part.column) for part in index.parts)


def read_chunks(
    connection: Connection, table: Table, columns: Sequence[str] | None = None, *, chunk_bytes: int = 8 << 20
) -> Iterator[Chunk]:
    """Stream ``table``'s rows as chunks of at most ``chunk_bytes`` (a single larger row is a chunk alone).

    Rows come in key order, a keyset query at a time, or in one plain scan for a table without a
    key; either way through an unbuffered cursor, so memory stays flat however big the table.
    Reads run in whatever transaction the caller opened (see :func:`start_consistent_snapshot`)
    and commit nothing. ``columns`` defaults to :func:`data_columns`; a subset always gets the
    key's columns first. ``connection`` must come from :func:`open_data_connection`, and runs
    nothing else until the iterator is exhausted or closed (a query is streaming on it).
    """
    _require_data_connection(connection)
    if chunk_bytes < _MINIMUM_FRACTION:
        raise InvalidInputError(f"chunk_bytes must be at least {_MINIMUM_FRACTION}", subject=chunk_bytes)
    source = _RowSource.of(table, _chosen_columns(table, columns))
    chunker = _Chunker(table.name, source.names, chunk_bytes)
    for key, line in source.scan(connection):
        done = chunker.add(key, line)
        if done is not None:
            yield done
    last = chunker.finish()
    if last is not None:
        yield last


def chunk_digest(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    first_key: Sequence[str | None] | None,
    last_key: Sequence[str | None] | None,
) -> tuple[int, str]:
    """Read the rows from ``first_key`` to ``last_key`` (both included) as read_chunks does; return
    (rows, sha256 of their text). Pass a chunk's ``columns`` and keys: after a restore, equal to the
    chunk's ``rows`` and ``sha256`` when the restored rows are the backed-up ones. With both keys
    None the whole table is read (for a table without a key, compare with all its chunks' data).
    """
    _require_data_connection(connection)
    source = _RowSource.of(table, tuple(_column(table, name) for name in columns))
    if (first_key is not None or last_key is not None) and not source.key:
        raise InvalidInputError(f"table {table.name} has no key to bound a chunk by", subject=table.name)
    digest = hashlib.sha256()
    rows = 0
    for _, line in source.lines(connection, source.where(first_key, last_key)):
        digest.update(line)
        rows += 1
    return rows, digest.hexdigest()


def load_chunk(
    connection: Connection, table_name: str, chunk: Chunk, *, method: str = "load_data", batch_size: int = 1000
) -> int:
    """Load ``chunk``'s rows into ``table_name`` (in the connection's database); return how many loaded.

    ``load_data`` sends the chunk as the file of a ``LOAD DATA LOCAL INFILE`` (from memory: the
    connection sends no file, whatever name the server asks for); ``insert`` runs multi-row
    INSERTs of ``batch_size`` rows with binary literals, for servers that refuse LOCAL. Both
    store the same values. Raises :class:`QueryError` when fewer rows loaded than the chunk holds
    (LOAD DATA LOCAL skips rows that duplicate a key).
    """
    _require_data_connection(connection)
    if method not in _METHODS:
        raise InvalidInputError(f"unknown load method {method!r}: use one of {', '.join(_METHODS)}", subject=method)
    if batch_size < 1:
        raise InvalidInputError("batch_size must be at least 1", subject=batch_size)
    ordinal = _ordinal_columns(connection, table_name, chunk.columns)
    if method == "load_data":
        try:
            loaded = load_local(connection, _load_statement(table_name, chunk.columns, ordinal), chunk.data)
        except QueryError as exc:
            if exc.code not in _LOCAL_REFUSED:
                raise
            raise QueryError(f"{exc.message}; the server refuses LOAD DATA LOCAL (local_infile is off): "
                             "load with method='insert'", subject=table_name, code=exc.code) from exc
    else:
        loaded = _insert(connection, table_name, chunk, ordinal, batch_size)
    if loaded != chunk.rows:
        raise QueryError(
            f"loaded {loaded} of the {chunk.rows} rows of chunk {chunk.number} of {chunk.table} into "
            f"{table_name} on {describe(connection)}: the table refused the others (a duplicate key?)",
            subject=table_name,
        )
    return loaded


# --- reading -------------------------------------------------------------------------------


@attrs.frozen
class _KeyPart:
    sql: str  # the quoted column, as WHERE and ORDER BY name it
    kind: ValueKind
    charset: str | None
    collation: str | None


@attrs.frozen
class _RowSource:
    """How the rows of some columns of a table are selected and made into lines, in key order.

    Each row's fields are the key's values (as bytes), the line, built and escaped by the server
    (Python's work per row is what limits the speed, and escaping and joining fields was a third
    of it), then the long values it left out: a TEXT, BLOB, JSON or spatial value longer than
    _SERVER_LIMIT stands in the line as a lone newline (no escaped field holds one) and comes raw
    in a field of its own (NULL otherwise) for this module to escape. Escaping on the server makes
    a string that must fit in max_allowed_packet; kept short, the line does, and long values
    travel unescaped.
    """

    table: str
    names: tuple[str, ...]
    select: str
    #: Where in the line each long column's field stands.
    long_fields: tuple[int, ...]
    key: tuple[_KeyPart, ...]
    index_hint: str
    #: Whether keyset queries may page: only when the index itself gives the order (no prefix part).
    batched: bool

    @classmethod
    def of(cls, table: Table, columns: Sequence[Column]) -> _RowSource:
        index = _key_index(table)
        key_columns = [table.column(str(part.column)) for part in index.parts] if index else []
        key = tuple(_KeyPart(quote_identifier(column.name), value_kind(column.type), column.charset, column.collation)
                    for column in key_columns)
        longs = [at for at, column in enumerate(columns) if value_kind(column.type) is ValueKind.LONG]
        line = "CONCAT(" + ", X'09', ".join(_server_field(column) for column in columns) + ")"
        fields = [
            *(f"CAST({value_expression(part.sql, part.kind)} AS BINARY)" for part in key),
            line,
            *(f"IF(LENGTH({quote_identifier(columns[at].name)}) > {_SERVER_LIMIT}, "
              f"{quote_identifier(columns[at].name)}, NULL)" for at in longs),
        ]
        hint = ""
        if index is not None and index.visible:
            # The optimizer could sort a secondary key's range itself; each query must only walk it.
            name = "PRIMARY" if index.kind == "PRIMARY" else quote_identifier(index.name)
            hint = f" FORCE INDEX ({name})"
        return cls(
            table=table.name,
            names=tuple(column.name for column in columns),
            select=", ".join(fields),
            long_fields=tuple(longs),
            key=key,
            index_hint=hint,
            batched=index is not None and all(part.prefix_length is None for part in index.parts),
        )

    def scan(self, connection: Connection) -> Iterator[tuple[tuple[bytes, ...], bytes]]:
        """Every row as (key values, line), in key order."""
        if not self.batched:
            yield from self.lines(connection, "")
            return
        after: tuple[bytes, ...] | None = None
        while True:
            count = 0
            for key, line in self.lines(connection, self.where(after, None, inclusive=False), _BATCH_ROWS):
                count += 1
                after = key
                yield key, line
            if count < _BATCH_ROWS:
                return

    def where(self, first: Sequence[str | bytes | None] | None, last: Sequence[str | bytes | None] | None,
              *, inclusive: bool = True) -> str:
        """The WHERE clause of the key range from ``first`` to ``last`` (None: unbounded)."""
        bounds = [_beyond([part.sql for part in self.key], self._literals(values), op, inclusive=inclusive)
                  for values, op in ((first, ">"), (last, "<")) if values is not None]
        return f" WHERE {' AND '.join(bounds)}" if bounds else ""

    def lines(self, connection: Connection, where: str,
              limit: int | None = None) -> Iterator[tuple[tuple[bytes, ...], bytes]]:
        """(key values, line) of each row the query finds, in key order."""
        order = f" ORDER BY {', '.join(part.sql for part in self.key)}" if self.key else ""
        bound = f" LIMIT {limit}" if limit is not None else ""
        sql = f"SELECT {self.select} FROM {quote_identifier(self.table)}{self.index_hint}{where}{order}{bound}"
        width = len(self.key)
        none_long = (None,) * len(self.long_fields)
        for row in stream(connection, sql):
            line = row[width]
            if line is None:
                # CONCAT and REPLACE give NULL for a string longer than max_allowed_packet (a NULL
                # value is the field \N by then).
                raise QueryError(
                    f"a row of {self.table} on {describe(connection)} does not fit in max_allowed_packet "
                    "once escaped: raise the server's max_allowed_packet",
                    subject=self.table,
                )
            if row[width + 1:] != none_long:
                line = self._with_long_values(line, row[width + 1:])
            yield row[:width], line + b"\n"

    def _with_long_values(self, line: bytes, values: Sequence[bytes | None]) -> bytes:
        fields = line.split(b"\t")
        for at, value in zip(self.long_fields, values, strict=True):
            if value is not None:
                fields[at] = load_data.escape(value)
        return b"\t".join(fields)

    def _literals(self, values: Sequence[str | bytes | None]) -> list[str]:
        if len(values) != len(self.key):
            raise InvalidInputError(
                f"a key of {self.table} has {len(self.key)} values, not {len(values)}", subject=tuple(values)
            )
        literals = []
        for part, value in zip(self.key, values, strict=True):
            if value is None:
                raise InvalidInputError(f"a key of {self.table} holds no NULL", subject=tuple(values))
            raw = value.encode("latin-1") if isinstance(value, str) else value
            literals.append(key_literal(raw, part.kind, charset=part.charset, collation=part.collation))
        return literals


def _server_field(column: Column) -> str:
    """The select expression of ``column``'s field of the line, escaped by the server."""
    name = quote_identifier(column.name)
    kind = value_kind(column.type)
    field = f"CAST({value_expression(name, kind)} AS BINARY)"
    if kind in (ValueKind.BYTES, ValueKind.LONG):  # numbers and times hold no byte to escape
        field = load_data.escape_on_server(field)
    if kind is ValueKind.LONG:
        field = f"IF(LENGTH({name}) > {_SERVER_LIMIT}, X'0a', {field})"
    return f"IF({name} IS NULL, X'{load_data.NULL.hex()}', {field})" if column.nullable else field


def _beyond(columns: Sequence[str], literals: Sequence[str], op: str, *, inclusive: bool) -> str:
    """``(columns) op (literals)`` in key order, spelled out term by term: the optimizer reads
    ``a > 1 OR (a = 1 AND b > 2)`` as ranges of the index, a row comparison not always."""
    terms = []
    for at, (column, literal) in enumerate(zip(columns, literals, strict=True)):
        equal = [f"{before} = {value}" for before, value in zip(columns[:at], literals[:at], strict=True)]
        last = op + ("=" if inclusive and at == len(columns) - 1 else "")
        terms.append("(" + " AND ".join([*equal, f"{column} {last} {literal}"]) + ")")
    return "(" + " OR ".join(terms) + ")"


@attrs.define
class _Chunker:
    """Cuts the stream of lines into chunks where the rows say, so that boundaries stay put.

    A cut by size alone would move every boundary after a row that grew or shrank. Here a row
    ends a chunk when a hash of its key (of the whole line, without a key) falls below a
    threshold proportional to the row's length: per byte, the chance is the same for every row
    (4 in chunk_bytes), and whether a row ends a chunk depends on that row alone. Ends are
    skipped below chunk_bytes / 8 (no tiny chunks), so chunks average 3/8 of chunk_bytes
    whatever the rows' sizes; and a chunk is always cut before a row that would take it past
    chunk_bytes (3% of them). An updated row moves at most its own chunk's end, and only if its
    length changed enough to matter; inserted and deleted rows change their chunk and, rarely,
    the next one.
    """

    table: str
    columns: tuple[str, ...]
    chunk_bytes: int
    _buffer: bytearray = attrs.field(factory=bytearray)
    _rows: int = 0
    _first: tuple[bytes, ...] = ()
    _last: tuple[bytes, ...] = ()
    _ends_here: bool = False
    _number: int = 0

    def add(self, key: tuple[bytes, ...], line: bytes) -> Chunk | None:
        """Take one row; return the chunk it completed, if any."""
        done = None
        if self._rows and (self._ends_here or len(self._buffer) + len(line) > self.chunk_bytes):
            done = self.finish()
        if not self._rows:
            self._first = key
        self._buffer += line
        self._rows += 1
        self._last = key
        self._ends_here = len(self._buffer) >= self.chunk_bytes // _MINIMUM_FRACTION and self._is_end(key, line)
        return done

    def finish(self) -> Chunk | None:
        """The chunk of the rows taken since the last one, if there are any."""
        if not self._rows:
            return None
        data = bytes(self._buffer)
        self._number += 1
        chunk = Chunk(
            table=self.table, number=self._number, columns=self.columns, rows=self._rows, data=data,
            first_key=_key_text(self._first), last_key=_key_text(self._last),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self._buffer = bytearray()
        self._rows = 0
        self._ends_here = False
        return chunk

    def _is_end(self, key: tuple[bytes, ...], line: bytes) -> bool:
        identity = b"\0".join(key) if key else line
        draw = int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(), "big")
        return draw * self.chunk_bytes < len(line) * _MEAN_FRACTION << 64


def _key_text(key: tuple[bytes, ...]) -> tuple[str | None, ...] | None:
    return tuple(value.decode("latin-1") for value in key) if key else None


# --- loading -------------------------------------------------------------------------------


def _ordinal_columns(connection: Connection, table_name: str, columns: Sequence[str]) -> list[bool]:
    """For each of ``columns``, whether the table's column is a BIT, ENUM or SET (loaded as a number)."""
    rows = query(
        connection,
        "SELECT COLUMN_NAME AS name, DATA_TYPE AS type FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table_name,),
    )
    ordinal = {text(row["name"]).lower() for row in rows if value_kind(text(row["type"])) is ValueKind.ORDINAL}
    return [name.lower() in ordinal for name in columns]


def _load_statement(table_name: str, columns: Sequence[str], ordinal: Sequence[bool]) -> str:
    targets = [f"@v{at}" if number else quote_identifier(name)
               for at, (name, number) in enumerate(zip(columns, ordinal, strict=True))]
    numbers = [f"{quote_identifier(name)} = CAST(@v{at} AS UNSIGNED)"
               for at, (name, number) in enumerate(zip(columns, ordinal, strict=True)) if number]
    assign = f" SET {', '.join(numbers)}" if numbers else ""
    # The file name is never opened: the connection sends the chunk whatever the name (load_local).
    return (f"LOAD DATA LOCAL INFILE 'chunk' INTO TABLE {quote_identifier(table_name)} {load_data.FORMAT} "
            f"({', '.join(targets)}){assign}")


def _insert(connection: Connection, table_name: str, chunk: Chunk, ordinal: Sequence[bool], batch_size: int) -> int:
    names = ", ".join(quote_identifier(name) for name in chunk.columns)
    head = f"INSERT INTO {quote_identifier(table_name)} ({names}) VALUES "
    loaded = 0
    values: list[str] = []
    size = 0
    for row in load_data.rows(chunk.data):
        text = "(" + ", ".join(insert_literal(value, ordinal=number)
                               for value, number in zip(row, ordinal, strict=True)) + ")"
        if values and (len(values) >= batch_size or size + len(text) > _INSERT_BYTES):
            loaded += execute(connection, head + ", ".join(values))
            values, size = [], 0
        values.append(text)
        size += len(text) + 2
    if values:
        loaded += execute(connection, head + ", ".join(values))
    return loaded


# --- columns and keys ------------------------------------------------------------------------


def _key_index(table: Table) -> Index | None:
    for kind in ("PRIMARY", "UNIQUE"):
        for index in table.indexes:
            if index.kind == kind and all(_usable_key_part(table, part.column) for part in index.parts):
                return index
    return None


def _usable_key_part(table: Table, name: str | None) -> bool:
    if name is None:  # an expression
        return False
    column = table.column(name)
    return not column.nullable and column.generated is None


def _column(table: Table, name: str) -> Column:
    column = table.column(name)
    if column.generated is not None:
        raise InvalidInputError(
            f"column {name} of {table.name} is generated: its values are computed, not stored in a backup",
            subject=name,
        )
    return column


def _chosen_columns(table: Table, columns: Sequence[str] | None) -> tuple[Column, ...]:
    if columns is None:
        return tuple(_column(table, name) for name in data_columns(table))
    chosen: dict[str, Column] = {}
    for name in [*(chunk_key(table) or ()), *columns]:
        column = _column(table, name)
        chosen.setdefault(column.name, column)
    return tuple(chosen.values())


def _require_data_connection(connection: Connection) -> None:
    if not is_data_connection(connection):
        raise InvalidSourceError(
            "table data is read and loaded on a connection from open_data_connection "
            "(values as raw bytes, LOAD DATA LOCAL from memory only, its own session settings)",
            subject=connection,
        )
