"""RollbackPlanner.validate compares the live rows with a backup's, chunk by chunk, on the real MariaDB."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
from conftest import run_sql

from schemasync_backup import RollbackPlanner
from schemasync_backup.rollback.data_check import DataCheck
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

#: A keyed table of many chunks (at CHUNK_BYTES), a small one, and one without a key.
LEDGER = (
    "CREATE TABLE ledger (id int PRIMARY KEY, owner varchar(40) NOT NULL, amount decimal(12,2)) ENGINE=InnoDB",
    "INSERT INTO ledger SELECT seq, CONCAT('owner-', seq), seq / 100 FROM seq_1_to_3000",
    "CREATE TABLE tag (id int PRIMARY KEY, name varchar(20))",
    "INSERT INTO tag VALUES (1, 'a'), (2, NULL)",
    "CREATE TABLE audit (at datetime(3), what varchar(20))",
    "INSERT INTO audit VALUES ('2026-01-01 10:00:00.123', 'x'), ('2026-01-01 10:00:00.123', 'x'), (NULL, 'y')",
)
CHUNK_BYTES = 4096


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.fixture
def books(root: pymysql.connections.Connection, fresh_db: str) -> str:
    run_sql(root, fresh_db, *LEDGER)
    return fresh_db


def checked(store: BackupStore, dsn: str, backup_id: str) -> DataCheck:
    result = RollbackPlanner(store).validate(dsn, backup_id)
    assert result.data is not None and result.data_matches is result.data.equal
    return result.data


def test_after_a_rollback_that_gives_the_data_back_every_chunk_is_equal(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, books: str
) -> None:
    info = store.create(mariadb.dsn, books, data="all", chunk_bytes=CHUNK_BYTES)
    index = store.data_index(info.id)
    assert index is not None and len(index.table("ledger").chunks) > 5  # type: ignore[union-attr]
    run_sql(root, "mysql", f"DROP DATABASE `{books}`")
    planner = RollbackPlanner(store)
    assert planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id)).verified
    result = planner.validate(mariadb.dsn, info.id)
    assert result.matches and result.data_matches is True and result.data is not None
    chunks = sum(len(table.chunks) for table in index.tables)
    assert (result.data.rows, result.data.chunks, result.data.chunks_equal) == (3005, chunks, chunks)
    assert str(result.data) == f"data: 3 table(s), 3,005 rows, all {chunks} chunks equal"
    document = result.to_dict()
    assert document["data_matches"] is True and document["data"]["equal"] is True
    assert [table["table"] for table in document["data"]["tables"]] == ["audit", "ledger", "tag"]


def test_a_changed_row_names_its_table_and_chunk(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, books: str
) -> None:
    info = store.create(mariadb.dsn, books, data="all", chunk_bytes=CHUNK_BYTES)
    run_sql(root, books, "UPDATE ledger SET amount = amount + 1 WHERE id = 1234")
    result = RollbackPlanner(store).validate(mariadb.dsn, info.id)
    assert result.matches and result.data_matches is False and result.data is not None
    (ledger,) = result.data.differing
    assert ledger.table == "ledger" and ledger.chunks_equal == ledger.chunks - 1
    difference = ledger.first_difference
    assert difference is not None and difference.first_key is not None and difference.last_key is not None
    assert int(difference.first_key[0] or 0) <= 1234 <= int(difference.last_key[0] or 0)
    assert difference.rows_expected == difference.rows_found  # same rows, one value changed
    assert ledger.rows_outside == 0 and ledger.rows_found == 3000
    assert f"chunk {difference.number} (key {difference.first_key[0]} to {difference.last_key[0]}) differs" in str(
        result.data)


def test_rows_added_or_deleted_since_are_counted(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, books: str
) -> None:
    info = store.create(mariadb.dsn, books, data="all", chunk_bytes=CHUNK_BYTES)
    # Beyond the last chunk, in no chunk's range: counted as outside, every chunk still equal.
    run_sql(root, books, "INSERT INTO ledger VALUES (5000, 'late', 1)")
    ledger = next(t for t in checked(store, mariadb.dsn, info.id).tables if t.table == "ledger")
    assert not ledger.equal and ledger.chunks_equal == ledger.chunks
    assert (ledger.rows_outside, ledger.rows_found) == (1, 3001) and "1 live row(s) outside" in str(ledger)
    run_sql(root, books, "DELETE FROM ledger WHERE id IN (5000, 7)")
    ledger = next(t for t in checked(store, mariadb.dsn, info.id).tables if t.table == "ledger")
    difference = ledger.first_difference
    assert difference is not None and (difference.rows_expected, difference.rows_found) == (
        difference.rows_found + 1, difference.rows_found)
    assert ledger.rows_outside == 0 and ledger.rows_found == 2999


def test_a_table_without_a_key_is_compared_whole(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, books: str
) -> None:
    info = store.create(mariadb.dsn, books, data=["audit"])
    assert checked(store, mariadb.dsn, info.id).equal
    run_sql(root, books, "UPDATE audit SET what = 'z' WHERE what = 'y'")
    (audit,) = checked(store, mariadb.dsn, info.id).differing
    assert audit.first_difference is not None and audit.first_difference.number is None
    assert "the whole table (no key to compare chunks by) differs: 3 rows in both" in str(audit)


def test_a_dropped_table_is_a_difference_not_a_crash(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, books: str
) -> None:
    info = store.create(mariadb.dsn, books, data="all", chunk_bytes=CHUNK_BYTES)
    run_sql(root, books, "DROP TABLE tag", "ALTER TABLE audit DROP COLUMN what")
    result = RollbackPlanner(store).validate(mariadb.dsn, info.id)
    assert not result.matches and result.data is not None
    found = {table.table: table for table in result.data.differing}
    assert set(found) == {"tag", "audit"}
    assert found["tag"].problem == "missing from the live database" and found["tag"].rows_found is None
    assert found["audit"].problem is not None and "cannot be read as the backup holds it" in found["audit"].problem
    assert [t.table for t in result.data.tables if t.equal] == ["ledger"]  # the others are still compared


def test_a_schema_only_backup_has_no_data_to_compare(
    mariadb: ThrowawayServer, store: BackupStore, books: str
) -> None:
    planner = RollbackPlanner(store)
    schema_only = store.create(mariadb.dsn, books)
    result = planner.validate(mariadb.dsn, schema_only.id)
    assert result.matches and result.data is None and result.data_matches is None
    assert result.to_dict()["data"] is None
    with_data = store.create(mariadb.dsn, books, data=["tag"])
    assert planner.validate(mariadb.dsn, with_data.id, data=False).data is None


def test_columns_backups_compare_the_values_they_hold(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, books: str
) -> None:
    migration = ["ALTER TABLE tag DROP COLUMN name"]
    info = store.create(mariadb.dsn, books, data="at-risk", migration=migration)
    # Rows added since hold nothing a COLUMNS backup had: counted, but the held values are equal.
    run_sql(root, books, "INSERT INTO tag VALUES (3, 'new')")
    (tag,) = checked(store, mariadb.dsn, info.id).tables
    assert tag.scope == "columns" and tag.equal and tag.rows_outside == 1
    run_sql(root, books, "UPDATE tag SET name = 'b' WHERE id = 2")
    assert not checked(store, mariadb.dsn, info.id).equal
