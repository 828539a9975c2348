"""Backups that carry data, and rollbacks that give it back, on the real MariaDB."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
from conftest import run_sql

from schemasync_backup import RollbackPlanner, Snapshot, Validator
from schemasync_backup.errors import InvalidInputError, SchemaObjectNotFoundError
from schemasync_backup.formats.data_index import DataMode, DataScope
from schemasync_backup.rollback.plan import StepPhase
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

SHOP = (
    "CREATE TABLE customer (id int PRIMARY KEY, name varchar(50) NOT NULL, note text, born date)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, total decimal(12,2), "
    "CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customer (id))",
    "CREATE TABLE audit (at datetime(3), what varchar(20))",
    "INSERT INTO customer VALUES (1, 'Ann', 'tab\\there', '2001-02-03'), (2, 'Bob', NULL, NULL), "
    "(3, 'Chloé', '', '0000-00-00')",
    "INSERT INTO orders VALUES (10, 1, 12.50), (11, 1, 0.01), (12, 3, 99999.99)",
    "INSERT INTO audit VALUES ('2026-01-01 10:00:00.123', 'x'), ('2026-01-01 10:00:00.123', 'x')",
)


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.fixture
def shop(root: pymysql.connections.Connection, fresh_db: str) -> str:
    run_sql(root, fresh_db, "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'", *SHOP)
    return fresh_db


def rows(root: pymysql.connections.Connection, database: str, sql: str) -> list[tuple[object, ...]]:
    root.select_db(database)
    with root.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def test_a_backup_says_what_data_it_holds(mariadb: ThrowawayServer, store: BackupStore, shop: str) -> None:
    schema_only = store.create(mariadb.dsn, shop)
    assert schema_only.data is None and store.data_index(schema_only.id) is None
    full = store.create(mariadb.dsn, shop, data="all")
    assert full.data is not None and (full.data.mode, full.data.tables, full.data.rows) == (DataMode.ALL, 3, 8)
    index = store.data_index(full.id)
    assert index is not None and {t.table for t in index.tables} == {"customer", "orders", "audit"}
    assert index.table("customer").key == ("id",) and index.table("audit").key == ()  # type: ignore[union-attr]
    named = store.create(mariadb.dsn, shop, data=["orders"])
    assert named.data is not None and (named.data.mode, named.data.tables, named.data.rows) == (DataMode.TABLES, 1, 3)
    assert store.list()[0].data == named.data
    assert Validator(store).validate(full.id).valid


def test_bad_data_requests_are_refused_before_anything_is_written(
    mariadb: ThrowawayServer, store: BackupStore, shop: str
) -> None:
    with pytest.raises(InvalidInputError, match="not one of 'none', 'all', 'at-risk'"):
        store.create(mariadb.dsn, shop, data="everything")
    with pytest.raises(InvalidInputError, match="needs migration="):
        store.create(mariadb.dsn, shop, data="at-risk")
    with pytest.raises(SchemaObjectNotFoundError, match="`nope`"):
        store.create(mariadb.dsn, shop, data=["orders", "nope"])
    assert store.list() == []


def test_at_risk_holds_exactly_what_the_migration_destroys(
    mariadb: ThrowawayServer, store: BackupStore, shop: str
) -> None:
    migration = ["ALTER TABLE customer DROP COLUMN note, ADD COLUMN email varchar(100)", "DROP TABLE audit",
                 "CREATE INDEX by_total ON orders (total)"]
    info = store.create(mariadb.dsn, shop, data="at-risk", migration=migration)
    index = store.data_index(info.id)
    assert index is not None and index.mode == DataMode.AT_RISK
    held = {t.table: t for t in index.tables}
    assert set(held) == {"customer", "audit"}
    assert held["customer"].scope == DataScope.COLUMNS and held["customer"].columns == ("id", "note")
    assert held["audit"].scope == DataScope.ROWS and held["audit"].rows == 2
    harmless = store.create(mariadb.dsn, shop, data="at-risk", migration="CREATE TABLE extra (id int);")
    assert harmless.data is not None and harmless.data.tables == 0


@pytest.mark.parametrize("method", ["load_data", "insert"])
def test_a_rollback_gives_back_dropped_tables_columns_and_narrowed_values(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str, method: str
) -> None:
    tables = ("customer", "orders", "audit")
    before = {table: rows(root, shop, f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables}
    migration = ["ALTER TABLE customer DROP COLUMN note", "ALTER TABLE customer MODIFY name varchar(2) NOT NULL",
                 "DROP TABLE orders", "TRUNCATE TABLE audit"]
    info = store.create(mariadb.dsn, shop, data="at-risk", migration=migration)
    run_sql(root, shop, "SET SESSION sql_mode = ''", *migration)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    phases = {(step.phase, step.object_name) for step in plan.steps if step.is_data}
    assert phases == {(StepPhase.REFILL_COLUMNS, "customer"), (StepPhase.RELOAD_TABLE, "orders"),
                      (StepPhase.RELOAD_TABLE, "audit")}
    assert "only `rollback execute` runs it" in plan.to_sql()
    result = planner.execute(mariadb.dsn, plan, destructive_confirmed=True, load_method=method, batch_size=2)
    assert result.verified
    after = {table: rows(root, shop, f"SELECT * FROM {table} ORDER BY 1, 2") for table in tables}
    assert after == before
    # This rollback destroyed nothing, so its pinned backup holds no data.
    assert result.pre_rollback_backup_id is not None
    assert store.get(result.pre_rollback_backup_id).data is None


def test_undoing_the_undo_gives_the_data_back_too(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop, "ALTER TABLE customer ADD COLUMN vip tinyint NOT NULL DEFAULT 0",
            "UPDATE customer SET vip = id % 2", "CREATE TABLE extra (id int PRIMARY KEY, v blob)",
            "INSERT INTO extra VALUES (1, x'00ff09'), (2, NULL)")
    migrated = {t: rows(root, shop, f"SELECT * FROM {t} ORDER BY 1") for t in ("customer", "extra")}
    planner = RollbackPlanner(store)
    result = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id), destructive_confirmed=True)
    assert result.pre_rollback_backup_id is not None
    pre = store.get(result.pre_rollback_backup_id)
    assert pre.pinned and pre.data is not None and pre.data.mode == DataMode.AT_RISK and pre.data.tables == 2
    redo = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, pre.id), destructive_confirmed=True)
    assert redo.verified
    assert {t: rows(root, shop, f"SELECT * FROM {t} ORDER BY 1") for t in ("customer", "extra")} == migrated


def test_a_column_the_backup_lacks_is_named_with_its_rows(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop, "ALTER TABLE customer DROP COLUMN note")
    plan = RollbackPlanner(store).plan(mariadb.dsn, info.id)
    assert "column customer.note: values not in the backup: 3 rows get the default" in plan.warnings


def test_a_dropped_database_comes_back_with_its_data(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    before = rows(root, shop, "SELECT * FROM orders ORDER BY id")
    info = store.create(mariadb.dsn, shop, data="all")
    run_sql(root, "mysql", f"DROP DATABASE `{shop}`")
    planner = RollbackPlanner(store)
    result = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id))
    assert result.verified and rows(root, shop, "SELECT * FROM orders ORDER BY id") == before
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash == info.schema_hash


def test_restore_test_restores_the_data_too(mariadb: ThrowawayServer, store: BackupStore, shop: str) -> None:
    info = store.create(mariadb.dsn, shop, data="all")
    result = Validator(store).restore_test(info.id, mariadb.dsn)
    assert result.passed and result.rows == 8 and result.chunks_verified == 3


def test_restore_test_proves_a_table_without_a_key_in_several_chunks(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    """Without a key a chunk has no range to be proven by: the table is proven whole, after its last chunk."""
    run_sql(root, fresh_db, "CREATE TABLE log (at int, line varchar(200))",
            "INSERT INTO log SELECT seq, REPEAT(CHAR(65 + seq % 26), 150) FROM seq_1_to_600")
    info = store.create(mariadb.dsn, fresh_db, data="all", chunk_bytes=16384)
    index = store.data_index(info.id)
    assert index is not None and len(index.tables[0].chunks) > 2
    result = Validator(store).restore_test(info.id, mariadb.dsn)
    assert result.passed and result.rows == 600 and result.chunks_verified == len(index.tables[0].chunks)


def test_a_missing_chunk_is_damage_and_no_restore_passes_without_it(
    mariadb: ThrowawayServer, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop, data=["orders"])
    index = store.data_index(info.id)
    assert index is not None
    chunk = index.tables[0].chunks[0]
    record = next(r for r in store.manifest(info.id).objects if r.address == chunk.address)
    store.files.fs.rm(store.files.object_path(record))
    assert Validator(store).validate(info.id).damaged
    with pytest.raises(Exception, match=r"missing|not found|No such file|damaged"):
        Validator(store).restore_test(info.id, mariadb.dsn)


def test_several_workers_store_the_same_data_as_one(mariadb: ThrowawayServer, store: BackupStore, shop: str) -> None:
    one = store.create(mariadb.dsn, shop, data="all")
    three = store.create(mariadb.dsn, shop, data="all", max_workers=3)
    assert store.data_index(three.id).tables == store.data_index(one.id).tables  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match="max_workers must be at least 1"):
        store.create(mariadb.dsn, shop, data="all", max_workers=0)
    assert len(store.list()) == 2
