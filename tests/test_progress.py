"""Progress callbacks of the library (create, data restore, export and import, restore test, data check,
recovery) and the memory bound of ``buffer_size``, on MariaDB."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pymysql
import pytest
from conftest import run_sql

from schemasync_backup import RollbackPlanner
from schemasync_backup.errors import InvalidInputError
from schemasync_backup.model.progress import ProgressUpdate
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate.validator import Validator

SCHEMA = (
    "CREATE TABLE parent (id int PRIMARY KEY, name varchar(40) NOT NULL, note text)",
    "CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, amount decimal(10,2), "
    "CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id))",
    "CREATE TABLE log (at int, what varchar(30))",
    "CREATE VIEW big_parents AS SELECT id, name FROM parent WHERE id > 100",
    "CREATE TRIGGER child_amount BEFORE INSERT ON child FOR EACH ROW SET NEW.amount = COALESCE(NEW.amount, 0)",
    "CREATE PROCEDURE touch() SELECT 1",
    "INSERT INTO parent SELECT seq, CONCAT('name ', seq), REPEAT('n', seq % 50) FROM seq_1_to_3000",
    "INSERT INTO child SELECT seq, 1 + seq % 3000, seq / 100 FROM seq_1_to_4000",
    "INSERT INTO log SELECT seq % 10, CONCAT('event ', seq) FROM seq_1_to_2000",
)
ROWS = 3000 + 4000 + 2000
#: Small chunks and frames: every table comes in several chunks, the snapshot in several frames.
BUFFER = 8192


@pytest.fixture
def schema(root: pymysql.connections.Connection, fresh_db: str) -> str:
    run_sql(root, fresh_db, *SCHEMA)
    return fresh_db


def stages(seen: Sequence[ProgressUpdate]) -> dict[str, list[ProgressUpdate]]:
    found: dict[str, list[ProgressUpdate]] = {}
    for update in seen:
        found.setdefault(update.stage, []).append(update)
    return found


def assert_growing(updates: Sequence[ProgressUpdate]) -> None:
    """Every count only grows, no total changes, and nothing passes its total."""
    for before, after in itertools.pairwise(updates):
        assert (after.total, after.objects_total, after.bytes_total) == (before.total, before.objects_total,
                                                                         before.bytes_total)
        assert after.done >= before.done and after.objects_done >= before.objects_done
        assert after.bytes_done >= before.bytes_done and after.rows_done >= before.rows_done
    for update in updates:
        assert update.done <= update.total
        assert not update.bytes_total or update.bytes_done <= update.bytes_total


@pytest.mark.parametrize("workers", [1, 2])
def test_create_reports_objects_tables_rows_and_frames(mariadb: ThrowawayServer, tmp_path: Path, schema: str,
                                                       workers: int) -> None:
    store = BackupStore.open(str(tmp_path / "store"), buffer_size=BUFFER, frame_size=1024)
    seen: list[ProgressUpdate] = []
    info = store.create(mariadb.dsn, schema, data="all", max_workers=workers, progress=seen.append)
    by_stage = stages(seen)
    assert list(by_stage) == ["objects", "data", "writing"]  # in this order, each once
    for updates in by_stage.values():
        assert_growing(updates)
    snapshot = store.snapshot(info.id)
    objects = by_stage["objects"]
    assert objects[0].done == 0 and objects[-1].done == objects[-1].total == len(snapshot.objects()) == 6
    data = by_stage["data"][-1]
    index = store.data_index(info.id)
    assert index is not None and info.data is not None
    assert data.done == data.total == 3 and data.rows_done == ROWS == info.data.rows
    assert data.objects_done == sum(len(table.chunks) for table in index.tables) > 3
    assert data.bytes_done == sum(table.size for table in index.tables)
    writing = by_stage["writing"][-1]
    found = store.manifest(info.id)
    schema_objects = [found.snapshot_object, found.index_object]
    assert writing.done == writing.total == sum(len(record.frames) for record in schema_objects if record) > 2
    assert len(by_stage["writing"]) > writing.total  # told of each frame, not only of each object
    assert writing.bytes_done == writing.bytes_total == sum(record.size for record in schema_objects if record)
    assert writing.objects_done == writing.objects_total == 2


def test_an_unchanged_schema_is_captured_from_the_known_snapshot(mariadb: ThrowawayServer, tmp_path: Path,
                                                                schema: str) -> None:
    store = BackupStore.open(str(tmp_path / "store"))
    first = store.create(mariadb.dsn, schema)
    seen: list[ProgressUpdate] = []
    again = store.create(mariadb.dsn, schema, known=store.snapshot(first.id), progress=seen.append)
    objects = stages(seen)["objects"]
    # What the known snapshot proves unchanged counts as captured at once; the rest as it is read.
    assert objects[0].done > 0 and objects[-1].done == objects[-1].total == 6
    # The same objects again, stored once. How many updates they take depends on whether this second's
    # capture could prove them unchanged (a table created in this very second cannot be): not asserted.
    writing = stages(seen)["writing"]
    assert again.schema_hash == first.schema_hash and writing[-1].done == writing[-1].total
    assert [update.done for update in writing] == sorted(update.done for update in writing)


@pytest.mark.parametrize("parallel", [1, 3])
def test_data_restore_reports_chunks_rows_and_bytes(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                                    tmp_path: Path, schema: str, parallel: int) -> None:
    store = BackupStore.open(str(tmp_path / "store"), buffer_size=BUFFER)
    info = store.create(mariadb.dsn, schema, data="all")
    run_sql(root, schema, "DROP VIEW big_parents", "DROP TABLE child", "DROP TABLE parent", "DROP TABLE log")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    seen: list[ProgressUpdate] = []
    result = planner.execute(mariadb.dsn, plan, parallel=parallel, data_progress=seen.append)
    assert result.verified
    index = store.data_index(info.id)
    assert index is not None
    assert {update.stage for update in seen} == {"rows"}
    # The data steps of this plan load together: one run, so one series of counts.
    assert_growing(seen)
    last = seen[-1]
    assert seen[0].done == 0 and last.done == last.total == sum(len(table.chunks) for table in index.tables)
    assert last.rows_done == ROWS and last.bytes_done == last.bytes_total == sum(t.size for t in index.tables)


def test_buffer_size_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="buffer_size must be a whole number of bytes, at least 4096"):
        BackupStore.open(str(tmp_path / "store"), buffer_size=100)


# --- the memory bound -------------------------------------------------------------------------------------------

#: 4,200 rows of 10 KiB: 41 MiB of table data.
BIG = ("CREATE TABLE big (id int PRIMARY KEY, body mediumtext NOT NULL)",
       "INSERT INTO big SELECT seq, REPEAT(MD5(seq), 320) FROM seq_1_to_4200")
MIB = 1 << 20


def peak_of_create(mariadb: ThrowawayServer, folder: Path, database: str, buffer_size: int) -> tuple[int, BackupStore,
                                                                                                        str]:
    store = BackupStore.open(str(folder), buffer_size=buffer_size)
    tracemalloc.start()
    try:
        info = store.create(mariadb.dsn, database, data="all")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, store, info.id


def test_memory_of_a_create_follows_the_buffer_not_the_backup(
        mariadb: ThrowawayServer, root: pymysql.connections.Connection, tmp_path: Path, fresh_db: str) -> None:
    run_sql(root, fresh_db, *BIG)
    small, store, backup_id = peak_of_create(mariadb, tmp_path / "small", fresh_db, MIB)
    index = store.data_index(backup_id)
    assert index is not None and index.tables[0].size > 40 * MIB  # the data is 40 times the buffer
    assert max(chunk.size for chunk in index.tables[0].chunks) <= MIB
    assert max(frame.plaintext_size for record in store.manifest(backup_id).objects for frame in record.frames) <= MIB
    large, _, _ = peak_of_create(mariadb, tmp_path / "large", fresh_db, 4 * MIB)
    assert small < 10 * MIB, small  # a few buffers, not the 40 MiB of data
    assert large < 40 * MIB, large
    assert large > small + 4 * MIB, (small, large)  # it grows with the buffer


# --- archives, restore tests, data checks and recovery ------------------------------------------------------


@pytest.fixture
def data_backup(mariadb: ThrowawayServer, tmp_path: Path, schema: str) -> tuple[BackupStore, str]:
    store = BackupStore.open(str(tmp_path / "store"), buffer_size=BUFFER, frame_size=1024)
    return store, store.create(mariadb.dsn, schema, data="all").id


def test_export_and_import_count_objects_and_bytes(data_backup: tuple[BackupStore, str], tmp_path: Path) -> None:
    store, backup_id = data_backup
    objects = store.manifest(backup_id).objects
    assert len(objects) > 3  # the snapshot, its index and the chunks
    exported: list[ProgressUpdate] = []
    path = store.export(backup_id, tmp_path / "backup.tar.gz", progress=exported.append)
    assert {update.stage for update in exported} == {"archiving"}
    assert_growing(exported)
    last = exported[-1]
    assert exported[0].done == 0 and last.done == last.total == last.objects_done == len(objects)
    assert last.bytes_done == Path(path).stat().st_size and last.bytes_total == 0  # written, not known before
    assert len(exported) > len(objects)  # told as the bytes go out, not only per object
    imported: list[ProgressUpdate] = []
    other = BackupStore.open(str(tmp_path / "other"))
    info = other.import_archive(path, progress=imported.append)
    assert info.id == backup_id and {update.stage for update in imported} == {"importing"}
    assert_growing(imported)
    last = imported[-1]
    assert imported[0].done == 0 and last.done == last.total == last.objects_total == len(objects)
    assert last.bytes_done == last.bytes_total == sum(record.stored_size for record in objects)
    # told as the bytes come in: an object's bytes show before the object counts as imported
    assert any(later.bytes_done > earlier.bytes_done and later.objects_done == earlier.objects_done
               for earlier, later in itertools.pairwise(imported))


def test_restore_test_counts_statements_objects_and_rows(data_backup: tuple[BackupStore, str],
                                                          mariadb: ThrowawayServer, schema: str) -> None:
    store, _ = data_backup
    # The tables with a key: a restore test proves each chunk by its key range.
    backup_id = store.create(mariadb.dsn, schema, data=["parent", "child"]).id
    seen: list[ProgressUpdate] = []
    result = Validator(store).restore_test(backup_id, mariadb.dsn, progress=seen.append)
    assert result.passed
    by_stage = stages(seen)
    assert list(by_stage) == ["statements", "objects", "rows"]
    for updates in by_stage.values():
        assert_growing(updates)
    statements = by_stage["statements"]
    assert statements[0].done == 0 and statements[-1].done == statements[-1].total == result.statements > 6
    assert len(statements) == result.statements + 1  # before the first, then after each
    rows = by_stage["rows"][-1]
    index = store.data_index(backup_id)
    assert index is not None
    assert rows.done == rows.total == result.chunks_verified and rows.rows_done == result.rows == 3000 + 4000
    assert rows.bytes_done == rows.bytes_total == sum(table.size for table in index.tables)


def test_the_data_check_counts_tables_chunks_and_rows(data_backup: tuple[BackupStore, str],
                                                      mariadb: ThrowawayServer) -> None:
    store, backup_id = data_backup
    seen: list[ProgressUpdate] = []
    result = RollbackPlanner(store).validate(mariadb.dsn, backup_id, progress=seen.append)
    assert result.matches and result.data is not None and result.data.equal
    by_stage = stages(seen)
    assert list(by_stage) == ["objects", "comparing"]
    comparing = by_stage["comparing"]
    assert_growing(comparing)
    index = store.data_index(backup_id)
    assert index is not None
    last = comparing[-1]
    assert comparing[0].done == 0 and last.done == last.total == len(index.tables) == 3
    assert last.rows_done == result.data.rows == ROWS
    assert last.objects_done == last.objects_total == result.data.chunks > 3
    assert last.bytes_done == last.bytes_total == sum(table.size for table in index.tables)
    # Before the first table, after each chunk compared by its key range, after each table (log, without a
    # key, is compared whole).
    keyed = sum(len(table.chunks) for table in index.tables if table.key)
    assert len(comparing) == 1 + keyed + 3 and keyed < result.data.chunks


def test_recovery_scan_and_partial_recovery_count_backups_and_frames(data_backup: tuple[BackupStore, str],
                                                                     mariadb: ThrowawayServer, schema: str) -> None:
    store, backup_id = data_backup
    second = store.create(mariadb.dsn, schema).id
    seen: list[ProgressUpdate] = []
    assert Validator(store).recovery_scan(progress=seen.append) == []
    assert {update.stage for update in seen} == {"backups"}
    assert_growing(seen)
    stored = sum(record.stored_size for known in (backup_id, second) for record in store.manifest(known).objects)
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total == 2 and seen[-1].bytes_done == stored
    seen.clear()
    report = Validator(store).partial_recovery(second, progress=seen.append)
    assert report.lost == ()
    by_stage = stages(seen)
    assert list(by_stage) == ["salvage", "writing"]
    salvage = by_stage["salvage"]
    assert_growing(salvage)
    record = store.manifest(second).snapshot_object
    assert salvage[-1].done == salvage[-1].total == len(record.frames) > 1
    assert salvage[-1].bytes_done == salvage[-1].bytes_total == record.stored_size
    assert by_stage["writing"][-1].done == by_stage["writing"][-1].total
