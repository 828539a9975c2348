"""Run a rollback's data steps: chunks streamed from the store into the live tables, on N connections at once.

A reload loads each chunk into the re-created table and proves it (:func:`data_backup.reload_chunk`). A refill and a
restore of rows load each chunk into a temporary staging table and put it in by key. Each chunk
is one transaction of its own, so memory stays at a chunk per connection, and the journal is told
of every chunk done.

The chunks of a table with a key are independent (each its own key range, proven on its own), so
they are spread over ``parallel`` workers, each with a data connection of its own (a TEMPORARY
staging table is per session, so each has its own). A table without a key is one unit of work:
its rows can only be proven as a whole, in the order they were loaded.

Every step is idempotent, so a run that stopped half-way can simply run again: before a reload
loads a chunk, it reads the chunk's key range; rows equal to the chunk's mean an earlier run loaded
it (skipped, counted as verified), other rows are refused. A refill by key sets the same values
again; a restore of rows inserts only the keys still missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import attrs

from schemasync_backup.capture import table_data
from schemasync_backup.capture.connection import Connection, describe, translate_errors
from schemasync_backup.errors import IntegrityError, RollbackError
from schemasync_backup.formats.data_index import ChunkRecord, TableData
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import Table
from schemasync_backup.rollback.data_steps import STAGING, refill_statement, restore_statement
from schemasync_backup.rollback.plan import RollbackStep, StepPhase
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.store.data_backup import as_chunk, keyless_mismatch, reload_chunk

ReadChunk = Callable[[ChunkRecord], bytes]
#: Opens a data connection (:func:`table_data.open_data_connection`) on the target database.
Connect = Callable[[], Connection]
#: Told (step number, chunk number) of each chunk done, from whichever worker did it.
ChunkDone = Callable[[int, int], None]
#: The most connections :func:`default_parallel` picks: past that the server's disk, not ours, is the limit.
MOST_PARALLEL = 8


def default_parallel(max_workers: int) -> int:
    """Connections for data steps when a caller asks for parallel loading without a number: the
    workers configured for captures (``max_workers``) when more than one, else the machine's CPUs,
    at most :data:`MOST_PARALLEL` (a setting of 1 means "not configured", not "do not parallelise")."""
    if max_workers > 1:
        return max_workers
    return max(1, min(os.cpu_count() or 1, MOST_PARALLEL))


@attrs.frozen
class DataLoaded:
    """What a data step put back: rows and chunks, and how many chunks proved equal to the backup's."""

    rows: int = 0
    chunks: int = 0
    verified: int = 0
    #: Chunks the table already held (an earlier run that stopped loaded them): proven, not loaded again.
    skipped: int = 0


@attrs.frozen
class DataStep:
    """A data step of a plan, its number there, and the backup's definition of its table."""

    number: int
    step: RollbackStep
    table: Table

    @property
    def held(self) -> TableData:
        assert self.step.data is not None
        return self.step.data

    @property
    def whole(self) -> bool:
        """A reload of a table without a key: its chunks load in order and prove only together."""
        return not self.held.key and self.step.phase == StepPhase.RELOAD_TABLE


@attrs.frozen
class Failure:
    """The first error of a run: the step and chunk it stopped at."""

    number: int
    #: The chunk's number (from 1), None when it came before any chunk (opening a connection).
    chunk: int | None
    error: BaseException

    @property
    def where(self) -> str:
        return "" if self.chunk is None else f"chunk {self.chunk}"


@attrs.frozen
class Outcome:
    """Each step whose every chunk is in, and the error that stopped the others, if one did."""

    loaded: Mapping[int, DataLoaded]
    failure: Failure | None


def run(connect: Connect, steps: Sequence[DataStep], read_chunk: ReadChunk, *, method: str, batch_size: int,
        parallel: int = 1, chunk_done: ChunkDone | None = None, progress: ProgressCallback | None = None) -> Outcome:
    """Put the steps' chunks into their tables on up to ``parallel`` connections.

    The first error stops the others after the chunk each is loading (committed or not, each chunk
    is whole); every connection is closed before this returns. ``progress`` is told the chunks in
    of all the steps' (stage ``"rows"``), with the rows restored and the bytes of table data in of
    all; a chunk an earlier run loaded counts as in, with no rows restored.
    """
    return _Run(connect, read_chunk, method, batch_size, chunk_done, steps, progress).go(parallel)


@attrs.frozen
class _Unit:
    """What one worker does at a time: one chunk, or all of a table's that loads whole (in order)."""

    data: DataStep
    chunks: tuple[int, ...]


@attrs.define
class _Tally:
    rows: int = 0
    verified: int = 0
    skipped: int = 0
    units_left: int = 0


class _Run:
    """One run's shared state: the work queue, the tallies, the first failure (each behind the lock)."""

    def __init__(self, connect: Connect, read_chunk: ReadChunk, method: str, batch_size: int,
                 chunk_done: ChunkDone | None, steps: Sequence[DataStep], progress: ProgressCallback | None) -> None:
        self.connect, self.read_chunk, self.chunk_done, self.progress = connect, read_chunk, chunk_done, progress
        self.method, self.batch_size = method, batch_size
        self.steps = {data.number: data for data in steps}
        self.units: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self.tallies = {data.number: _Tally() for data in steps}
        for data in steps:
            chunks = tuple(range(1, len(data.held.chunks) + 1))
            units = ([_Unit(data, chunks)] if data.whole and chunks
                     else [_Unit(data, (number,)) for number in chunks])
            for unit in units:
                self.units.put(unit)
            self.tallies[data.number].units_left = len(units)
        self.count = sum(tally.units_left for tally in self.tallies.values())
        every = [record for data in steps for record in data.held.chunks]
        self.told = ProgressUpdate("rows", 0, len(every), bytes_total=sum(record.size for record in every))
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.failure: Failure | None = None

    def go(self, parallel: int) -> Outcome:
        if self.progress is not None:
            self.progress(self.told)
        helpers = [threading.Thread(target=self.work, name=f"schemasync-load-{n}", daemon=True)
                   for n in range(1, min(parallel, self.count))]
        for helper in helpers:
            helper.start()
        try:
            self.work()  # the first worker is the caller's own thread
        finally:
            for helper in helpers:
                helper.join()
        loaded = {number: DataLoaded(tally.rows, len(self.steps[number].held.chunks), tally.verified, tally.skipped)
                  for number, tally in self.tallies.items() if tally.units_left == 0}
        return Outcome(loaded, self.failure)

    def work(self) -> None:
        connection: Connection | None = None
        at: tuple[int, int | None] = (0, None)
        try:
            while not self.stop.is_set():
                try:
                    unit = self.units.get_nowait()
                except queue.Empty:
                    return
                at = (unit.data.number, None)
                if connection is None:
                    connection = self.connect()
                    with connection.cursor() as cursor:
                        # Rows come back table by table and chunk by chunk in any order, so a child's
                        # may come before its parent's (the data session turns them off too; this says why).
                        cursor.execute("SET SESSION foreign_key_checks = 0")
                # (A commit the server is killed under raises PyMySQL's error: it is a step's failure too.)
                with translate_errors(describe(connection)):
                    for number in self.load(connection, unit):
                        at = (unit.data.number, number)
        except BaseException as exc:  # a worker's every error is the run's to report, Ctrl-C too
            with self.lock:
                if self.failure is None:
                    self.failure = Failure(at[0], at[1], exc)
            self.stop.set()
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):  # a killed connection cannot say goodbye
                    connection.close()

    def load(self, connection: Connection, unit: _Unit) -> Iterator[int]:
        """Load the unit's chunks, yielding each one's number before it starts."""
        data = unit.data
        if data.whole:
            yield from self.keyless(connection, data)
        else:
            number = unit.chunks[0]
            yield number
            record = data.held.chunks[number - 1]
            if data.step.phase == StepPhase.RELOAD_TABLE:
                rows, skipped = self.reload(connection, data, number, record)
                self.tally(data.number, number, rows, verified=1, skipped=skipped)
            else:
                loaded = as_chunk(data.held, number, record, self.read(data, number, record))
                rows = _through_staging(connection, data.step, data.held, loaded, method=self.method,
                                        batch_size=self.batch_size)
                connection.commit()
                self.tally(data.number, number, rows)
        with self.lock:
            self.tallies[data.number].units_left -= 1

    def reload(self, connection: Connection, data: DataStep, number: int, record: ChunkRecord) -> tuple[int, int]:
        """(rows loaded, 1 if the table held the chunk already); either way the chunk's range is proven."""
        held = data.held
        there = table_data.chunk_digest(connection, data.table, held.columns, record.first_key, record.last_key)
        if there == (record.rows, record.address):
            return 0, 1
        if there[0]:
            raise RollbackError(
                f"table {quote_identifier(held.table)} already holds {there[0]} row(s) in the key range of chunk "
                f"{number}, and they are not the backup's: loading it would mix two versions of the rows. Empty the "
                "table (or that key range) and plan again, or plan with resume=False if an earlier run is not why "
                "they are there", subject=held.table)
        rows = reload_chunk(connection, data.table, held, number, record, self.read(data, number, record),
                            method=self.method, batch_size=self.batch_size)
        connection.commit()
        return rows, 0

    def read(self, data: DataStep, number: int, record: ChunkRecord) -> bytes:
        try:
            return self.read_chunk(record)
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"the backup is damaged: the object of chunk {number} of table {quote_identifier(data.held.table)} "
                f"is missing ({exc.filename or exc}); validate the backup, put the object back, and plan again",
                subject=data.held.table) from exc

    def tally(self, step: int, chunk: int, rows: int, *, verified: int = 0, skipped: int = 0) -> None:
        with self.lock:
            tally = self.tallies[step]
            tally.rows += rows
            tally.verified += verified
            tally.skipped += skipped
            # Under the lock: the journal is one document, and chunks are recorded one at a time.
            if self.chunk_done is not None:
                self.chunk_done(step, chunk)
            if self.progress is not None:
                told = self.told
                self.told = attrs.evolve(told, done=told.done + 1, rows_done=told.rows_done + rows,
                                         bytes_done=told.bytes_done + self.steps[step].held.chunks[chunk - 1].size)
                self.progress(self.told)

    def keyless(self, connection: Connection, data: DataStep) -> Iterator[int]:
        """A reload of a table without a key: its chunks in order, the table proven whole at the end.

        Without a key, rows have no range to prove a chunk by; the table's rows, read in its order,
        must be the text of the chunks loaded so far. The same check tells which chunks an earlier
        run loaded: the rows the table already holds must be exactly the first chunks'.
        """
        held = data.held
        had, there = self.whole(connection, data)
        text = hashlib.sha256()
        rows = 0
        for number, record in enumerate(held.chunks, start=1):
            yield number
            payload = self.read(data, number, record)
            text.update(payload)
            rows, before = rows + record.rows, rows
            if before < had:  # an earlier run loaded this chunk
                if rows > had or (rows == had and text.hexdigest() != there):
                    raise _keyless_conflict(held, had)
                self.tally(data.number, number, 0, verified=1, skipped=1)
                continue
            loaded = table_data.load_chunk(connection, held.table, as_chunk(held, number, record, payload),
                                           method=self.method, batch_size=self.batch_size)
            connection.commit()
            self.tally(data.number, number, loaded, verified=1)
        if had > rows:
            raise _keyless_conflict(held, had)
        if self.whole(connection, data) != (rows, text.hexdigest()):
            raise keyless_mismatch(held)

    @staticmethod
    def whole(connection: Connection, data: DataStep) -> tuple[int, str]:
        return table_data.chunk_digest(connection, data.table, data.held.columns, None, None)


def _keyless_conflict(held: TableData, had: int) -> RollbackError:
    return RollbackError(
        f"table {quote_identifier(held.table)} (without a key) already holds {had} row(s) that are not the "
        "backup's first chunks: loading it would mix two versions of the rows. Empty the table and plan again",
        subject=held.table)


def _through_staging(connection: Connection, step: RollbackStep, held: TableData, chunk: table_data.Chunk, *,
                     method: str, batch_size: int) -> int:
    target, staging = quote_identifier(held.table), quote_identifier(STAGING)
    columns = ", ".join(map(quote_identifier, held.columns))
    key = ", ".join(map(quote_identifier, held.key))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {staging}")
        # The staging columns are the table's own (after the schema steps: the backup's definitions).
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} (PRIMARY KEY ({key})) SELECT {columns} FROM {target} LIMIT 0")
    table_data.load_chunk(connection, STAGING, chunk, method=method, batch_size=batch_size)
    with connection.cursor() as cursor:
        changed = cursor.execute(refill_statement(held, step.columns) if step.phase == StepPhase.REFILL_COLUMNS
                                 else restore_statement(held))
        cursor.execute(f"DROP TEMPORARY TABLE {staging}")
    return int(changed)
