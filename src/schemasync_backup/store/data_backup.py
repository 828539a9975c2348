"""Which data a backup holds, writing it chunk by chunk, and loading a chunk back with proof.

``data`` names what to hold: ``"none"``, ``"all"`` (every table's rows), ``"at-risk"`` (what a
migration would destroy, from :func:`model.at_risk.at_risk`), or a list of table names. Every
chunk is read inside one consistent snapshot and stored as an object of its own, through the
same pipeline as the schema (compressed, encrypted, checksummed, content-addressed).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence

import attrs

from schemasync_backup.capture import data_snapshot, table_data
from schemasync_backup.capture.connection import Connection
from schemasync_backup.errors import IntegrityError, InvalidInputError, SchemaObjectNotFoundError
from schemasync_backup.formats.data_index import (
    BinlogPosition,
    ChunkRecord,
    DataIndex,
    DataMode,
    DataScope,
    TableData,
)
from schemasync_backup.formats.framing import ObjectRecord
from schemasync_backup.model.at_risk import at_risk
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import Snapshot, Table
from schemasync_backup.sql.quoting import quote_identifier

#: Chunks of about this much data (``BackupStore.buffer_size``, ``backup.buffer_size``): the memory
#: bound of reading and loading.
DEFAULT_CHUNK_BYTES = 8 << 20
DataRequest = str | Sequence[str]
Migration = Sequence[str] | str | Snapshot


@attrs.frozen
class Selection:
    """One table's data to hold: its rows, or some columns' values with the key."""

    table: Table
    scope: DataScope
    columns: tuple[str, ...]
    reason: str = ""


def data_mode(data: DataRequest, migration: Migration | None) -> DataMode:
    """The mode ``data`` asks for, refusing what cannot be meant (before anything is read)."""
    if isinstance(data, str):
        try:
            mode = DataMode(data)
        except ValueError:
            raise InvalidInputError(
                f"data={data!r} is not one of 'none', 'all', 'at-risk', or a list of table names", subject=data
            ) from None
        if mode == DataMode.TABLES:
            raise InvalidInputError("data='tables': pass the list of table names itself", subject=data)
    else:
        if not data or not all(isinstance(name, str) and name for name in data):
            raise InvalidInputError("data= as a list must name at least one table, each by a non-empty string",
                                    subject=data)
        mode = DataMode.TABLES
    if mode == DataMode.AT_RISK and migration is None:
        raise InvalidInputError(
            "data='at-risk' needs migration= (the migration's SQL statements, or the target Snapshot): the data "
            "at risk is what that migration would destroy", subject=data)
    return mode


def select(snapshot: Snapshot, mode: DataMode, data: DataRequest, migration: Migration | None
           ) -> tuple[list[Selection], list[str]]:
    """The tables and columns to hold, and warnings for people."""
    chosen = _chosen(snapshot, mode, data, migration)
    warnings = [f"table {quote_identifier(name)} is not transactional: its rows are not of the backup's moment"
                for name in data_snapshot.non_transactional([selection.table for selection in chosen])]
    return chosen, warnings


def _chosen(snapshot: Snapshot, mode: DataMode, data: DataRequest, migration: Migration | None) -> list[Selection]:
    tables = {table.name: table for table in snapshot.tables if table.kind != "SEQUENCE"}
    if mode == DataMode.NONE:
        return []
    if mode == DataMode.ALL:
        return [_rows(table, "") for table in tables.values()]
    if mode == DataMode.TABLES:
        missing = [name for name in data if name not in tables]
        if missing:
            raise SchemaObjectNotFoundError(
                f"data= names table(s) {', '.join(map(quote_identifier, missing))} that {snapshot.database} does "
                "not have (sequences and views hold no rows to back up)", subject=missing[0])
        return [_rows(tables[name], "asked for") for name in dict.fromkeys(data)]
    assert migration is not None
    risk = at_risk(snapshot, migration)
    chosen = [_rows(tables[name], _reason(risk.reasons, name)) for name in risk.tables if name in tables]
    for name, columns in risk.columns:
        if name in tables and name not in risk.tables:
            table = tables[name]
            key = table_data.chunk_key(table) or ()
            stored = set(table_data.data_columns(table))
            chosen.append(Selection(table, DataScope.COLUMNS,
                                    tuple(dict.fromkeys([*key, *(c for c in columns if c in stored)])),
                                    _reason(risk.reasons, name)))
    return chosen


def _rows(table: Table, reason: str) -> Selection:
    return Selection(table, DataScope.ROWS, table_data.data_columns(table), reason)


def _reason(reasons: Iterable[str], table: str) -> str:
    quoted = quote_identifier(table)
    return "; ".join(reason for reason in reasons if quoted in reason)


def write(
    connections: Sequence[Connection],
    selections: Sequence[Selection],
    mode: DataMode,
    position: data_snapshot.Position,
    store_object: Callable[[bytes, str], ObjectRecord],
    *,
    chunk_bytes: int,
    warnings: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> tuple[DataIndex, list[ObjectRecord]]:
    """Read every selected table in the open consistent snapshot and store its chunks.

    Each connection (all in the same snapshot) reads whole tables, the largest first, so that
    the server builds the lines of several tables at once; ``store_object`` is called from as
    many threads and is given each chunk's plaintext and address. ``progress`` is told the tables
    read of all, with the chunks stored, rows and bytes read so far (stage ``"data"``).
    """
    sizes = table_data.estimated_sizes(connections[0], [selection.table.name for selection in selections])
    waiting = sorted(range(len(selections)), key=lambda at: -sizes.get(selections[at].table.name, 0))
    held: dict[int, TableData] = {}
    records: dict[str, ObjectRecord] = {}
    taken = threading.Lock()
    stop = threading.Event()
    read = _Read(progress, len(selections))
    read.tell()

    def reader(connection: Connection) -> None:
        try:
            while not stop.is_set():
                with taken:
                    if not waiting:
                        return
                    at = waiting.pop(0)
                held[at] = _write_table(connection, selections[at], chunk_bytes, store_object, records, stop, read)
                read.tell(tables=1)
        except BaseException:
            stop.set()  # the other readers stop after their current chunk
            raise

    _run_all([functools.partial(reader, connection) for connection in connections])
    index = DataIndex(mode, tuple(held[at] for at in range(len(selections))),
                      BinlogPosition(position.binlog_file, position.binlog_position, position.gtid), tuple(warnings))
    return index, list(records.values())


@attrs.define
class _Read:
    """The tables, chunks, rows and bytes a data backup has read so far, told to ``progress``."""

    progress: ProgressCallback | None
    tables_total: int
    tables: int = 0
    chunks: int = 0
    rows: int = 0
    size: int = 0
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def tell(self, *, tables: int = 0, chunks: int = 0, rows: int = 0, size: int = 0) -> None:
        """``tables`` more read whole, ``chunks`` more of ``rows`` rows and ``size`` bytes stored."""
        if self.progress is None:
            return
        with self.lock:  # one call at a time, and every count only grows
            self.tables, self.chunks = self.tables + tables, self.chunks + chunks
            self.rows, self.size = self.rows + rows, self.size + size
            self.progress(ProgressUpdate("data", self.tables, self.tables_total, objects_done=self.chunks,
                                         bytes_done=self.size, rows_done=self.rows))


def _write_table(connection: Connection, selection: Selection, chunk_bytes: int,
                 store_object: Callable[[bytes, str], ObjectRecord], records: dict[str, ObjectRecord],
                 stop: threading.Event, read: _Read) -> TableData:
    chunks = []
    for chunk in table_data.read_chunks(connection, selection.table, selection.columns, chunk_bytes=chunk_bytes):
        if stop.is_set():
            break
        record = store_object(chunk.data, chunk.sha256)
        records.setdefault(record.address, record)
        chunks.append(ChunkRecord(record.address, chunk.rows, len(chunk.data), chunk.first_key, chunk.last_key))
        read.tell(chunks=1, rows=chunk.rows, size=len(chunk.data))
    return TableData(
        table=selection.table.name, scope=selection.scope, columns=selection.columns,
        key=table_data.chunk_key(selection.table) or (), rows=sum(c.rows for c in chunks),
        size=sum(c.size for c in chunks), chunks=tuple(chunks), reason=selection.reason)


def _run_all(work: Sequence[Callable[[], None]]) -> None:
    """Run each piece of work on a thread of its own (the first on this one); raise the first error
    once all have ended."""
    # Threads start only when work is submitted: one piece of work starts none.
    with concurrent.futures.ThreadPoolExecutor(max(1, len(work) - 1), thread_name_prefix="schemasync-data") as pool:
        futures = [pool.submit(piece) for piece in work[1:]]
        try:
            work[0]()
        finally:
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()


def as_chunk(held: TableData, number: int, record: ChunkRecord, data: bytes) -> table_data.Chunk:
    """A stored chunk's plaintext with what the manifest says of it."""
    return table_data.Chunk(table=held.table, number=number, columns=held.columns, rows=record.rows, data=data,
                            first_key=record.first_key, last_key=record.last_key, sha256=record.address)


def reload_chunk(connection: Connection, table: Table, held: TableData, number: int, record: ChunkRecord,
                 data: bytes, *, into: str | None = None, method: str = "load_data", batch_size: int = 1000) -> int:
    """Load one chunk into ``into`` (default: its own table, ``table`` as it is defined there) and prove it:
    the rows of its key range, read back with the same encoding, must hash to the chunk's address."""
    name = into or held.table
    loaded = table_data.load_chunk(connection, name, as_chunk(held, number, record, data), method=method,
                                   batch_size=batch_size)
    rows, digest = table_data.chunk_digest(connection, attrs.evolve(table, name=name), held.columns,
                                           record.first_key, record.last_key)
    if (rows, digest) != (record.rows, record.address):
        raise IntegrityError(
            f"table {quote_identifier(name)} after loading chunk {number} holds {rows} rows hashing to "
            f"{digest[:12]}, where the backup's chunk has {record.rows} rows hashing to {record.address[:12]}: "
            "the table was changed while loading, or the server altered values; compare it with the backup",
            subject=held.table)
    return loaded


def reload_table(connection: Connection, table: Table, held: TableData, read: Callable[[ChunkRecord], bytes], *,
                 method: str = "load_data", batch_size: int = 1000,
                 loaded: Callable[[ChunkRecord, int], None] | None = None) -> int:
    """Load all of ``held``'s chunks into its (empty) table, committing each, and prove them: each by its
    key range, or, for a table without a key (its rows have no range), the whole table after the last.
    ``loaded`` is told of each chunk with the rows it loaded; returns the rows loaded."""
    total = rows = 0
    text = hashlib.sha256()
    for number, record in enumerate(held.chunks, start=1):
        payload = read(record)
        if held.key:
            count = reload_chunk(connection, table, held, number, record, payload, method=method,
                                 batch_size=batch_size)
        else:
            text.update(payload)
            count = table_data.load_chunk(connection, held.table, as_chunk(held, number, record, payload),
                                          method=method, batch_size=batch_size)
        connection.commit()
        total, rows = total + count, rows + record.rows
        if loaded is not None:
            loaded(record, count)
    if not held.key and table_data.chunk_digest(connection, table, held.columns, None, None) != (rows,
                                                                                               text.hexdigest()):
        raise keyless_mismatch(held)
    return total


def keyless_mismatch(held: TableData) -> IntegrityError:
    """A table without a key that, all its chunks loaded, does not hold the backup's rows."""
    return IntegrityError(
        f"table {quote_identifier(held.table)} after loading its {len(held.chunks)} chunk(s) does not hold the "
        "backup's rows: the table was changed while loading, or the server altered values; compare it with the "
        "backup", subject=held.table)
