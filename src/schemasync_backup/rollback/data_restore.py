"""Run a rollback's data steps: chunks streamed from the store into the live tables.

A reload loads each chunk into the re-created table and proves it (:func:`data_backup.reload_chunk`). A refill and a
restore of rows load each chunk into a temporary staging table and put it in by key. Each chunk
is one transaction of its own, so memory stays at one chunk, and the journal records the chunks
done.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from schemasync_backup.capture import table_data
from schemasync_backup.capture.connection import Connection
from schemasync_backup.formats.data_index import ChunkRecord, TableData
from schemasync_backup.model.snapshot import Table
from schemasync_backup.rollback.data_steps import STAGING, refill_statement, restore_statement
from schemasync_backup.rollback.plan import RollbackStep, StepPhase
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.store.data_backup import as_chunk, reload_chunk

ReadChunk = Callable[[ChunkRecord], bytes]


@attrs.frozen
class DataLoaded:
    """What a data step put back: rows and chunks, and how many chunks proved equal to the backup's."""

    rows: int = 0
    chunks: int = 0
    verified: int = 0


def run(connection: Connection, step: RollbackStep, table: Table, read_chunk: ReadChunk, *, method: str,
        batch_size: int, chunk_done: Callable[[int], None] | None = None) -> DataLoaded:
    """Put the step's chunks into ``table``; ``chunk_done`` is told the number of each one done."""
    held = step.data
    assert held is not None
    rows = verified = 0
    with connection.cursor() as cursor:
        # Rows come back table by table, so a child's may come before its parent's.
        cursor.execute("SET @schemasync_fk_checks = @@SESSION.foreign_key_checks, FOREIGN_KEY_CHECKS = 0")
    try:
        for number, chunk in enumerate(held.chunks, start=1):
            data = read_chunk(chunk)
            if step.phase == StepPhase.RELOAD_TABLE:
                rows += reload_chunk(connection, table, held, number, chunk, data, method=method,
                                     batch_size=batch_size)
                verified += 1
            else:
                loaded = as_chunk(held, number, chunk, data)
                rows += _through_staging(connection, step, held, loaded, method=method, batch_size=batch_size)
            connection.commit()
            if chunk_done is not None:
                chunk_done(number)
    finally:
        if connection.open:
            with connection.cursor() as cursor:
                cursor.execute("SET FOREIGN_KEY_CHECKS = @schemasync_fk_checks")
    return DataLoaded(rows, len(held.chunks), verified)


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
