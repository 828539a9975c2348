"""Whether the live rows are a backup's: every table it holds compared with the live one, chunk by chunk.

A chunk's address is the sha256 of its text, and :func:`~schemasync_backup.capture.table_data.chunk_digest`
reads the live rows of the chunk's key range in the same encoding: when the live rows are the
backed-up ones, both give the chunk's rows and address, so no chunk is fetched from the store. A
table without a key has no ranges to read by: its whole live text is hashed against all its
chunks' data in order (the only case that reads chunks). Live rows outside every chunk's range
(added since the backup) are counted from the table's row count.

Every table is read in one consistent snapshot, so writes running beside the check cannot make
one table look half changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs

from schemasync_backup.capture import table_data
from schemasync_backup.capture.connection import Connection, query, text
from schemasync_backup.converter import report, unstructure
from schemasync_backup.display import Card, Rows, Shown, brief_repr
from schemasync_backup.errors import DatabaseError, QueryError, SchemaObjectNotFoundError
from schemasync_backup.formats.data_index import ChunkRecord, DataIndex, DataScope, TableData
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import Snapshot, Table
from schemasync_backup.sql.quoting import quote_identifier

__all__ = ["ChunkDifference", "DataCheck", "TableCheck", "check"]

#: ER_NO_SUCH_TABLE: the table the backup holds is not in the live database.
_NO_SUCH_TABLE = 1146


@attrs.frozen
class ChunkDifference:
    """The first chunk whose live rows differ from the backup's."""

    #: The chunk's place among the table's chunks, from 1; None: the whole table (it has no key).
    number: int | None
    first_key: tuple[str | None, ...] | None
    last_key: tuple[str | None, ...] | None
    rows_expected: int
    rows_found: int

    def __str__(self) -> str:
        where = ("the whole table (no key to compare chunks by)" if self.number is None
                 else f"chunk {self.number} (key {_key(self.first_key)} to {_key(self.last_key)})")
        rows = (f"{self.rows_expected:,} rows in both" if self.rows_expected == self.rows_found
                else f"{self.rows_expected:,} rows backed up, {self.rows_found:,} live")
        return f"{where} differs: {rows}"


@report(..., "equal")
@attrs.frozen
class TableCheck:
    """One held table, compared."""

    table: str
    scope: DataScope = attrs.field(converter=DataScope)
    rows_expected: int
    #: Live rows of the table (every row, in or out of the chunks' ranges); None when it could not be read.
    rows_found: int | None
    chunks: int
    chunks_equal: int
    first_difference: ChunkDifference | None = None
    #: Live rows in no chunk's key range: added since the backup (always 0 for a table without a key).
    rows_outside: int = 0
    #: Why the table could not be compared: missing, or not readable as the backup holds it.
    problem: str | None = None

    @property
    def equal(self) -> bool:
        """The live rows are the backed-up ones. For a COLUMNS backup (some columns' values, by key)
        that is the held rows' values: rows added since hold nothing the backup had."""
        if self.problem is not None or self.chunks_equal != self.chunks:
            return False
        return self.scope == DataScope.COLUMNS or self.rows_outside == 0

    @property
    def verdict(self) -> str:
        """``equal``, or what differs (or why the table could not be compared)."""
        if self.problem is not None:
            return self.problem
        parts = []
        if self.first_difference is not None:
            parts.append(f"{self.chunks - self.chunks_equal} of {self.chunks} chunk(s) differ, first "
                         f"{self.first_difference}")
        if self.rows_outside:
            parts.append(f"{self.rows_outside:,} live row(s) outside every backed-up chunk (added since)")
        return "; ".join(parts) if parts else "equal"

    def __str__(self) -> str:
        return f"table {quote_identifier(self.table)}: {self.verdict}"


@report("equal", "tables_checked", "rows", "chunks", "chunks_equal", "tables")
@attrs.frozen(repr=False)
class DataCheck(Shown):
    """Every held table, compared (in the order the backup holds them)."""

    tables: tuple[TableCheck, ...]

    @property
    def equal(self) -> bool:
        return all(table.equal for table in self.tables)

    @property
    def tables_checked(self) -> int:
        return len(self.tables)

    @property
    def rows(self) -> int:
        """The rows the backup holds."""
        return sum(table.rows_expected for table in self.tables)

    @property
    def chunks(self) -> int:
        return sum(table.chunks for table in self.tables)

    @property
    def chunks_equal(self) -> int:
        return sum(table.chunks_equal for table in self.tables)

    @property
    def differing(self) -> tuple[TableCheck, ...]:
        return tuple(table for table in self.tables if not table.equal)

    def to_dict(self) -> dict[str, object]:
        return unstructure(self)  # type: ignore[no-any-return]

    @property
    def headline(self) -> str:
        """The verdict in one line: tables, rows, and how many chunks (and tables) are equal."""
        head = f"{len(self.tables)} table(s), {self.rows:,} rows"
        if self.equal:
            return f"{head}, all {self.chunks} chunks equal"
        return f"{head}, {self.chunks_equal} of {self.chunks} chunks equal; {len(self.differing)} table(s) differ"

    def __str__(self) -> str:
        if self.equal:
            return f"data: {self.headline}"
        return f"data: {self.headline}:\n  " + "\n  ".join(map(str, self.differing))

    def __repr__(self) -> str:
        return brief_repr(self, equal=self.equal, tables=len(self.tables), rows=self.rows, chunks=self.chunks,
                          chunks_equal=self.chunks_equal)

    def _card(self) -> Card:
        return Card(f"Data check: {self.headline}", tables=(Rows(
            "tables", ("table", "scope", "rows backed up", "rows live", "chunks equal", "verdict"),
            [(table.table, table.scope, table.rows_expected, table.rows_found, f"{table.chunks_equal}/{table.chunks}",
              table.verdict) for table in self.tables]),),
            kind="data-check")


def check(
    connection: Connection, snapshot: Snapshot, index: DataIndex, read_chunk: Callable[[ChunkRecord], bytes], *,
    progress: ProgressCallback | None = None,
) -> DataCheck:
    """Compare every table ``index`` holds with the live one, on ``connection`` (from
    :func:`~schemasync_backup.capture.table_data.open_data_connection`, in the live database).

    ``snapshot`` is the backup's schema (its tables say how the rows were encoded); ``read_chunk``
    gives a chunk's stored text (``store.chunk_reader``), needed only for tables without a key.
    Differences are findings, not errors: a missing table or one that cannot be read as the backup
    holds it is reported, and the others are still compared.

    ``progress`` is told stage ``"comparing"``: tables compared of those ``index`` holds, with the
    chunks (``objects_done``), the backed-up rows and the bytes of table data compared so far (a
    table that cannot be compared counts as done when its problem is known).
    """
    compared = _Compared(index, progress)
    table_data.start_consistent_snapshot([connection])
    try:
        return DataCheck(tuple(compared.table_done(held, _table(connection, snapshot, held, read_chunk, compared))
                               for held in index.tables))
    finally:
        connection.rollback()


class _Compared:
    """The tables, chunks, rows and bytes compared so far, for the progress callback."""

    def __init__(self, index: DataIndex, progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.tables_total, self.chunks_total = len(index.tables), sum(len(held.chunks) for held in index.tables)
        self.bytes_total = sum(held.size for held in index.tables)
        self.tables = self.chunks = self.rows = self.bytes = 0
        self._in_table = (0, 0, 0)  # chunks, rows, bytes of the table being compared
        self._tell()

    def chunk_done(self, chunk: ChunkRecord) -> None:
        chunks, rows, size = self._in_table
        self._in_table = (chunks + 1, rows + chunk.rows, size + chunk.size)
        self._tell()

    def table_done(self, held: TableData, result: TableCheck) -> TableCheck:
        """The whole table counts, however many of its chunks were compared before the end."""
        self.tables += 1
        self.chunks, self.rows, self.bytes = (self.chunks + len(held.chunks), self.rows + held.rows,
                                              self.bytes + held.size)
        self._in_table = (0, 0, 0)
        self._tell()
        return result

    def _tell(self) -> None:
        if self.progress is not None:
            chunks, rows, size = self._in_table
            self.progress(ProgressUpdate("comparing", self.tables, self.tables_total, self.chunks + chunks,
                                         self.chunks_total, self.bytes + size, self.bytes_total, self.rows + rows))


def _table(
    connection: Connection, snapshot: Snapshot, held: TableData, read_chunk: Callable[[ChunkRecord], bytes],
    compared: _Compared,
) -> TableCheck:
    unreadable = TableCheck(held.table, held.scope, held.rows, None, len(held.chunks), 0)
    try:
        table = snapshot.table(held.table)
        found = _count(connection, held.table)
        if not held.key:
            return _whole(connection, table, held, found, read_chunk)
        equal, in_ranges, first = 0, 0, None
        for number, chunk in enumerate(held.chunks, start=1):
            rows, digest = table_data.chunk_digest(connection, table, held.columns, chunk.first_key, chunk.last_key)
            in_ranges += rows
            compared.chunk_done(chunk)
            if (rows, digest) == (chunk.rows, chunk.address):
                equal += 1
            elif first is None:
                first = ChunkDifference(number, chunk.first_key, chunk.last_key, chunk.rows, rows)
    except SchemaObjectNotFoundError:
        return attrs.evolve(unreadable, problem="the backup's snapshot lacks its definition")
    except QueryError as exc:
        if exc.code == _NO_SUCH_TABLE:
            return attrs.evolve(unreadable, problem="missing from the live database")
        return attrs.evolve(unreadable, problem=f"cannot be read as the backup holds it: {exc.message}")
    except DatabaseError as exc:
        return attrs.evolve(unreadable, problem=f"cannot be read as the backup holds it: {exc.message}")
    return TableCheck(held.table, held.scope, held.rows, found, len(held.chunks), equal, first, found - in_ranges)


def _whole(
    connection: Connection, table: Table, held: TableData, found: int,
    read_chunk: Callable[[ChunkRecord], bytes],
) -> TableCheck:
    """A table without a key: its live text, in scan order, against all its chunks' data in order."""
    rows, digest = table_data.chunk_digest(connection, table, held.columns, None, None)
    expected = hashlib.sha256()
    for chunk in held.chunks:
        expected.update(read_chunk(chunk))
    same = (rows, digest) == (held.rows, expected.hexdigest())
    first = None if same else ChunkDifference(None, None, None, held.rows, rows)
    return TableCheck(held.table, held.scope, held.rows, found, len(held.chunks),
                      len(held.chunks) if same else 0, first)


def _count(connection: Connection, name: str) -> int:
    return int(text(next(iter(query(connection, f"SELECT COUNT(*) AS n FROM {quote_identifier(name)}")[0].values()))))


def _key(values: tuple[str | None, ...] | None) -> str:
    if values is None:
        return "-"
    shown = ", ".join("NULL" if value is None else value for value in values)
    return shown if len(values) == 1 else f"({shown})"
