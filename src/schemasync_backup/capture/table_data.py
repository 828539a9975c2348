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
import math
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from schemasync_backup.capture.connection import (
    Connection,
    ConnectionSpec,
    Source,
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
    "Chunk", "Position", "chunk_digest", "chunk_key", "data_columns", "data_source", "estimated_sizes", "load_chunk",
    "non_transactional",
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
#:   stores each chunk, and the server must wait for it that long;
#: - group_concat_max_len just under the session's max_allowed_packet: a grouped read's batch is
#:   one value of a result row, which must fit in a packet.
_SESSION = (
    "SET SESSION character_set_results = binary, time_zone = '+00:00', "
    "sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION', "
    "foreign_key_checks = 0, net_write_timeout = 3600, "
    "group_concat_max_len = @@SESSION.max_allowed_packet - 4096"
)
#: The longest TEXT, BLOB, JSON or spatial value the server escapes (see _RowSource).
_SERVER_LIMIT = 256 << 10
#: Rows per keyset query of a table read row by row: each query is a short range scan of the key.
_BATCH_ROWS = 10_000
#: Chunks are cut where the rows themselves say (see _Chunker): about _MEAN_FRACTION ends per
#: chunk_bytes of text, never before an eighth of chunk_bytes.
_MEAN_FRACTION = 4
_MINIMUM_FRACTION = 8
#: A row may end a chunk when the CRC-32 of its key (of its line, without a key) has this many
#: low zero bits at least (and as many more as the table's row length calls for, see _Chunker).
_MARK_BITS = 6
#: How many rows' average length sets a table's share of row ends (see _Chunker.rate_bits).
_SAMPLE_ROWS = 1_000
#: Rows of a grouped read's first batch; later batches hold about _GROUPED_BYTES of text.
_FIRST_BATCH = 1_000
_GROUPED_BYTES = 4 << 20
#: A grouped read marks each row whose key's CRC-32 has _MARK_BITS low zero bits by a raw
#: carriage return and the CRC in digits after its line: no line holds a raw carriage return
#: (text escapes it, and numbers and times never print one).
#: Types whose values may be longer than _SERVER_LIMIT: their tables are read row by row.
_LONGER_TYPES = frozenset({"mediumtext", "longtext", "mediumblob", "longblob", "json", "geometry", "point",
                           "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                           "geometrycollection", "geomcollection"})
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


def data_source(source: Source, what: str, subject: object) -> str:
    """``source`` as the DSN table data needs (``what`` needs it: says so when it is an open connection)."""
    if not isinstance(source, str):
        raise InvalidSourceError(
            f"{what} needs a DSN, not an open connection: table data is read and loaded on connections of its "
            "own (values as raw bytes, LOAD DATA LOCAL from memory only, its own session settings)", subject=subject)
    return source


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


def estimated_sizes(connection: Connection, names: Sequence[str]) -> dict[str, int]:
    """The bytes the server says each of the named tables (in the connection's database) holds."""
    if not names:
        return {}
    # Named, so the server opens only these tables for their statistics, not all of the database's.
    rows = query(connection, "SELECT TABLE_NAME AS name, DATA_LENGTH AS size FROM information_schema.TABLES "
                             f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({', '.join(['%s'] * len(names))})",
                 tuple(names))
    return {text(row["name"]): int(row["size"] or 0) for row in rows}


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
    chunker = _Chunker(table.name, source.names, source.key_fields, chunk_bytes)
    piece_bytes = min(_GROUPED_BYTES, chunk_bytes // 2)
    pieces = (source.grouped_batches(connection, piece_bytes) if source.grouped
              else _marked(source.scan(connection), piece_bytes))
    for piece, marks in pieces:
        yield from chunker.add(piece, marks)
    yield from chunker.finish()


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
    if source.grouped:
        return source.grouped_digest(connection, first_key, last_key)
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


#: One end of a key range: the key's values (as a Chunk holds them, or as bytes), None for no end.
_Bound = Sequence[str | bytes | None] | None


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

    A table none of whose values can be that long, with a key to page by, is read ``grouped``:
    each query returns a batch of rows as one value, the server's GROUP_CONCAT of their lines,
    so PyMySQL parses one result row per batch instead of one per row (which was most of the
    time a read took).
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
    #: The line's select expression, and that of the bytes a row's mark hashes (its key's, see _unmarked).
    line: str
    identity: str
    #: Where in the line each key column's field stands.
    key_fields: tuple[int, ...]
    grouped: bool

    @classmethod
    def of(cls, table: Table, columns: Sequence[Column]) -> _RowSource:
        index = _key_index(table)
        key_columns = [table.column(str(part.column)) for part in index.parts] if index else []
        key = tuple(_KeyPart(quote_identifier(column.name), value_kind(column.type), column.charset, column.collation)
                    for column in key_columns)
        longs = [at for at, column in enumerate(columns) if _type_name(column.type) in _LONGER_TYPES]
        line = "CONCAT(" + ", X'09', ".join(_server_field(column) for column in columns) + ")"
        fields = [
            *(f"CAST({value_expression(part.sql, part.kind)} AS BINARY)" for part in key),
            line,
            *(f"IF(LENGTH({quote_identifier(columns[at].name)}) > {_SERVER_LIMIT}, "
              f"{quote_identifier(columns[at].name)}, NULL)" for at in longs),
        ]
        identity = (", X'00', ".join(f"CAST({value_expression(part.sql, part.kind)} AS BINARY)" for part in key)
                    if key else line)
        if len(key) > 1:
            identity = f"CONCAT({identity})"
        names = tuple(column.name for column in columns)
        hint = ""
        if index is not None and index.visible:
            # The optimizer could sort a secondary key's range itself; each query must only walk it.
            name = "PRIMARY" if index.kind == "PRIMARY" else quote_identifier(index.name)
            hint = f" FORCE INDEX ({name})"
        batched = index is not None and all(part.prefix_length is None for part in index.parts)
        return cls(
            table=table.name,
            names=names,
            select=", ".join(fields),
            long_fields=tuple(longs),
            key=key,
            index_hint=hint,
            batched=batched,
            line=line,
            identity=identity,
            key_fields=tuple(names.index(column.name) for column in key_columns),
            grouped=batched and not any(_type_name(column.type) in _LONGER_TYPES for column in columns),
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
        return _where(self._bound(first, ">", inclusive=inclusive), self._bound(last, "<", inclusive=inclusive))

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

    def grouped_batches(self, connection: Connection, batch_bytes: int, first: _Bound = None,
                        last: _Bound = None) -> Iterator[tuple[bytes, list[_Mark]]]:
        """The lines of the rows from ``first`` to ``last`` (both included; None: unbounded), in key
        order, as pieces of about ``batch_bytes`` with their rows' marks."""
        marked = (f"CONCAT({self.line}, IF(CRC32({self.identity}) & {_MARK_MASK} = 0, "
                  f"CONCAT(X'0d', CRC32({self.identity})), ''), X'0a')")
        lower = self._bound(first, ">", inclusive=True)
        end = self._bound(last, "<", inclusive=True)
        rows = _FIRST_BATCH
        while True:
            upper = self._upper(connection, lower, end, rows)
            where = _where(lower, end if upper is None else self._bound(upper, "<", inclusive=True))
            sql = (f"SELECT COUNT(*), GROUP_CONCAT({marked} SEPARATOR '') "
                   f"FROM {quote_identifier(self.table)}{self.index_hint}{where}")
            found, grouped = _single_row(connection, sql)
            if not int(found):
                return
            # GROUP_CONCAT cuts a value short of the limit somewhere in a line: every line whole, each
            # ended by its newline, proves none was cut.
            if not grouped.endswith(b"\n") or grouped.count(b"\n") != int(found):  # fewer rows, or one alone
                if rows > 1:
                    rows = max(1, rows // 4)
                    continue
                yield from _marked(self.lines(connection, where))
            else:
                clean, marks = _unmarked(grouped)
                last_line = clean[clean.rfind(b"\n", 0, len(clean) - 1) + 1:]
                if upper is not None and _line_key(self.key_fields, last_line) != upper:
                    raise QueryError(
                        f"the server returned the rows of {self.table} on {describe(connection)} out of key order: "
                        "its data cannot be read grouped", subject=self.table)
                yield clean, marks
                rows = max(1, min(1_000_000, rows * batch_bytes // len(clean)))
            if upper is None:
                return
            lower = self._bound(upper, ">", inclusive=False)

    def grouped_digest(self, connection: Connection, first: _Bound, last: _Bound) -> tuple[int, str]:
        """(rows, sha256 of their lines) of the rows from ``first`` to ``last``, read grouped."""
        digest = hashlib.sha256()
        rows = 0
        for piece, _ in self.grouped_batches(connection, _GROUPED_BYTES, first, last):
            digest.update(piece)
            rows += piece.count(b"\n")
        return rows, digest.hexdigest()

    def _upper(self, connection: Connection, lower: str, upper: str, rows: int) -> tuple[bytes, ...] | None:
        """The key of the ``rows``-th row within the bounds, or None when fewer rows are within them."""
        keys = ", ".join(f"CAST({value_expression(part.sql, part.kind)} AS BINARY)" for part in self.key)
        order = ", ".join(part.sql for part in self.key)
        found = list(stream(connection, f"SELECT {keys} FROM {quote_identifier(self.table)}{self.index_hint}"
                                        f"{_where(lower, upper)} ORDER BY {order} LIMIT 1 OFFSET {rows - 1}"))
        return tuple(found[0]) if found else None

    def _bound(self, values: _Bound, op: str, *, inclusive: bool) -> str:
        """The condition of one end of a key range ("" for an unbounded one)."""
        if values is None:
            return ""
        return _beyond([part.sql for part in self.key], self._literals(values), op, inclusive=inclusive)

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
    # Numbers and times hold no byte to escape, and CONCAT prints them as CAST would.
    field = value_expression(name, kind)
    if kind in (ValueKind.BYTES, ValueKind.LONG):
        field = load_data.escape_on_server(f"CAST({field} AS BINARY)")
    if kind is ValueKind.LONG and _type_name(column.type) in _LONGER_TYPES:
        field = f"IF(LENGTH({name}) > {_SERVER_LIMIT}, X'0a', {field})"
    return f"IFNULL({field}, X'{load_data.NULL.hex()}')" if column.nullable else field


def _where(*bounds: str) -> str:
    """A WHERE clause of the bounds given ("" for none)."""
    given = [bound for bound in bounds if bound]
    return f" WHERE {' AND '.join(given)}" if given else ""


def _beyond(columns: Sequence[str], literals: Sequence[str], op: str, *, inclusive: bool) -> str:
    """``(columns) op (literals)`` in key order, spelled out term by term: the optimizer reads
    ``a > 1 OR (a = 1 AND b > 2)`` as ranges of the index, a row comparison not always."""
    terms = []
    for at, (column, literal) in enumerate(zip(columns, literals, strict=True)):
        equal = [f"{before} = {value}" for before, value in zip(columns[:at], literals[:at], strict=True)]
        last = op + ("=" if inclusive and at == len(columns) - 1 else "")
        terms.append("(" + " AND ".join([*equal, f"{column} {last} {literal}"]) + ")")
    return "(" + " OR ".join(terms) + ")"


def _line_key(key_fields: Sequence[int], line: bytes) -> tuple[bytes, ...]:
    """The key's values (their exact forms: a key is never NULL) of the row ``line`` holds."""
    fields = line.rstrip(b"\n").split(b"\t")
    return tuple(load_data.unescape(fields[at]) or b"" for at in key_fields)


#: A row that may end a chunk: where its line ends in a piece of text, and the CRC-32 it was drawn by.
_Mark = tuple[int, int]
_MARK_MASK = (1 << _MARK_BITS) - 1


def _marked(rows: Iterator[tuple[tuple[bytes, ...], bytes]], piece_bytes: int = _GROUPED_BYTES
            ) -> Iterator[tuple[bytes, list[_Mark]]]:
    """Rows read one by one as the pieces of a grouped read: their lines joined, with the marks
    the server would have put (the CRC-32 of the key's values joined by a NUL, of the line without a key);
    a piece holds _SAMPLE_ROWS rows, or fewer of about ``piece_bytes`` (long rows: memory stays bounded)."""
    lines: list[bytes] = []
    marks: list[_Mark] = []
    size = 0
    for key, line in rows:
        drawn = zlib.crc32(b"\0".join(key) if key else line[:-1])
        lines.append(line)
        size += len(line)
        if drawn & _MARK_MASK == 0:
            marks.append((size, drawn))
        if len(lines) == _SAMPLE_ROWS or size >= piece_bytes:
            yield b"".join(lines), marks
            lines, marks, size = [], [], 0
    if lines:
        yield b"".join(lines), marks


def _unmarked(text: bytes) -> tuple[bytes, list[_Mark]]:
    """A grouped read's text without its marks, and the marks."""
    parts: list[bytes] = []
    marks: list[_Mark] = []
    start = removed = 0
    # find is a memchr: far faster than a regular expression over megabytes with few marks.
    at = text.find(b"\r")
    while at >= 0:
        newline = text.index(b"\n", at)
        parts.append(text[start:at])
        removed += newline - at
        marks.append((newline + 1 - removed, int(text[at + 1:newline])))
        start = newline
        at = text.find(b"\r", newline)
    parts.append(text[start:])
    return b"".join(parts), marks


@attrs.define
class _Chunker:
    """Cuts the stream of lines into chunks where the rows say, so that boundaries stay put.

    A cut by size alone would move every boundary after a row that grew or shrank. Here a row
    ends a chunk when the CRC-32 of its key (of its line, without a key) has ``rate_bits`` low
    zero bits: whether a row ends a chunk depends on that row's key alone, so an updated row
    never moves a boundary, and inserted and deleted rows move at most their own chunk's.
    ``rate_bits`` makes that about _MEAN_FRACTION ends per chunk_bytes of text, from the average
    line of the table's first _SAMPLE_ROWS rows, or of the fewer first rows that make chunk_bytes
    (rounded to a power of two, so that the rate, and with it every boundary, stays put while that
    average does not double or halve). Ends are skipped below chunk_bytes / 8 (no tiny chunks), and
    a chunk is always cut before a row that would take it past chunk_bytes; a row longer than that
    is a chunk alone.
    """

    table: str
    columns: tuple[str, ...]
    key_fields: tuple[int, ...]
    chunk_bytes: int
    _buffer: bytearray = attrs.field(factory=bytearray)
    _number: int = 0
    _rate_mask: int | None = None
    #: The lines taken before the rate is known, and their rows and bytes.
    _held: list[tuple[bytes, list[_Mark]]] = attrs.field(factory=list)
    _held_rows: int = 0
    _held_bytes: int = 0

    def add(self, text: bytes, marks: list[_Mark]) -> Iterator[Chunk]:
        """Take some whole lines and the marks of their rows; yield the chunks they complete."""
        if self._rate_mask is None:
            self._held.append((text, marks))
            self._held_rows += text.count(b"\n")
            self._held_bytes += len(text)
            # Long rows: a sample of chunk_bytes is enough to say their average, and all that is held.
            if self._held_rows >= _SAMPLE_ROWS or self._held_bytes >= self.chunk_bytes:
                yield from self._release()
            return
        yield from self._cut(text, marks)

    def finish(self) -> Iterator[Chunk]:
        """The chunks of the rows still held."""
        yield from self._release()
        if self._buffer:
            yield self._chunk()

    def _release(self) -> Iterator[Chunk]:
        if self._rate_mask is None:
            rows_per_end = self.chunk_bytes / _MEAN_FRACTION / max(1.0, self._held_bytes / max(1, self._held_rows))
            self._rate_mask = (1 << max(_MARK_BITS, min(31, round(math.log2(max(1.0, rows_per_end)))))) - 1
        held, self._held = self._held, []
        for piece, marks in held:
            yield from self._cut(piece, marks)

    def _cut(self, text: bytes, marks: list[_Mark]) -> Iterator[Chunk]:
        start = 0
        for end, drawn in marks:
            if drawn & (self._rate_mask or 0) == 0:
                yield from self._take(text, start, end)
                start = end
                if len(self._buffer) >= self.chunk_bytes // _MINIMUM_FRACTION:
                    yield self._chunk()
        yield from self._take(text, start, len(text))

    def _take(self, text: bytes, start: int, stop: int) -> Iterator[Chunk]:
        """Put the lines text[start:stop] in, cutting before a line that would pass chunk_bytes."""
        view = memoryview(text)
        while len(self._buffer) + stop - start > self.chunk_bytes:
            cut = text.rfind(b"\n", start, start + self.chunk_bytes - len(self._buffer)) + 1
            if cut <= start:  # not one more line fits
                if self._buffer:
                    yield self._chunk()
                    continue
                cut = text.index(b"\n", start) + 1
            self._buffer += view[start:cut]
            start = cut
            yield self._chunk()
        self._buffer += view[start:stop]

    def _chunk(self) -> Chunk:
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._number += 1
        first = data[:data.index(b"\n")]
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1:-1]
        return Chunk(
            table=self.table, number=self._number, columns=self.columns, rows=data.count(b"\n"), data=data,
            first_key=self._key(first), last_key=self._key(last), sha256=hashlib.sha256(data).hexdigest(),
        )

    def _key(self, line: bytes) -> tuple[str | None, ...] | None:
        if not self.key_fields:
            return None
        return tuple(value.decode("latin-1") for value in _line_key(self.key_fields, line))


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


def _single_row(connection: Connection, sql: str) -> tuple[Any, ...]:
    rows = list(stream(connection, sql))
    return rows[0]


def _type_name(column_type: str) -> str:
    return column_type.split("(", 1)[0].split(" ", 1)[0].lower()


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
