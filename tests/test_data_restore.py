"""Data steps on several connections at once, and rollbacks stopped in their data steps run again (real MariaDB)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest
from conftest import run_sql

from schemasync_backup import RollbackPlanner
from schemasync_backup.cli import main as cli
from schemasync_backup.errors import InvalidInputError, RollbackStepError
from schemasync_backup.rollback.plan import RollbackPlan, StepPhase
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

TABLES = (
    "CREATE TABLE parent (id int PRIMARY KEY, name varchar(40) NOT NULL, note text)",
    "CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, amount decimal(10,2), "
    "CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id))",
    "CREATE TABLE log (at int, what varchar(30))",  # no key: its chunks load in order, on one connection
    "INSERT INTO parent SELECT seq, CONCAT('name ', seq), IF(seq % 7 = 0, NULL, REPEAT('n', seq % 50)) "
    "FROM seq_1_to_3000",
    "INSERT INTO child SELECT seq, 1 + seq % 3000, seq / 100 FROM seq_1_to_4000",
    "INSERT INTO log SELECT seq % 10, CONCAT('event ', seq) FROM seq_1_to_2000",
)
#: Small chunks: each table comes in dozens of them.
CHUNK_BYTES = 8192
QUERIES = {"parent": "SELECT * FROM parent ORDER BY id", "child": "SELECT * FROM child ORDER BY id",
           "log": "SELECT * FROM log ORDER BY at, what"}


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.fixture
def tables(root: pymysql.connections.Connection, fresh_db: str) -> str:
    run_sql(root, fresh_db, *TABLES)
    return fresh_db


def contents(root: pymysql.connections.Connection, database: str) -> dict[str, list[tuple[Any, ...]]]:
    root.select_db(database)
    found = {}
    with root.cursor() as cursor:
        for table, sql in QUERIES.items():
            cursor.execute(sql)
            found[table] = list(cursor.fetchall())
    return found


def dropped(mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, database: str
            ) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
    """A backup with every row of ``database``, the rows, and the tables dropped since."""
    before = contents(root, database)
    info = store.create(mariadb.dsn, database, data="all", chunk_bytes=CHUNK_BYTES)
    run_sql(root, database, "DROP TABLE child", "DROP TABLE parent", "DROP TABLE log")
    return info.id, before


def journal(store: BackupStore, backup_id: str, run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(store.get_document(f"journals/{backup_id}/{run_id}.json"))
    return document


def data_steps(plan: RollbackPlan) -> dict[str, tuple[StepPhase, int]]:
    return {step.object_name: (step.phase, len(step.data.chunks)) for step in plan.steps if step.data is not None}


@pytest.mark.parametrize("parallel", [1, 3])
def test_data_steps_load_on_several_connections(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str, parallel: int
) -> None:
    backup_id, before = dropped(mariadb, root, store, tables)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, backup_id)
    chunks = data_steps(plan)
    assert {name: phase for name, (phase, _) in chunks.items()} == dict.fromkeys(QUERIES, StepPhase.RELOAD_TABLE)
    assert all(count > 5 for _, count in chunks.values()), chunks
    result = planner.execute(mariadb.dsn, plan, parallel=parallel)
    assert result.verified and contents(root, tables) == before
    assert result.run_id is not None
    recorded = {entry["object_name"]: entry for entry in journal(store, backup_id, result.run_id)["steps"]
                if entry["data"] is not None}
    for name, (_, count) in chunks.items():
        assert recorded[name]["status"] == "done"
        assert recorded[name]["chunks_done"] == list(range(1, count + 1))
        assert recorded[name]["loaded"] == {"rows": len(before[name]), "chunks": count, "verified": count,
                                            "skipped": 0}


def test_empty_tables_reload_in_parallel(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str
) -> None:
    run_sql(root, tables, "DELETE FROM child", "DELETE FROM log")
    backup_id, before = dropped(mariadb, root, store, tables)
    planner = RollbackPlanner(store)
    result = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id), parallel=2)
    assert result.verified and contents(root, tables) == before and before["log"] == []


def test_parallel_is_at_least_one(mariadb: ThrowawayServer, store: BackupStore, tables: str) -> None:
    info = store.create(mariadb.dsn, tables)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id, rehearse=False)
    for wrong in (0, -2, True):
        with pytest.raises(InvalidInputError, match="parallel must be"):
            planner.execute(mariadb.dsn, plan, parallel=wrong)


def _hide_chunk(store: BackupStore, backup_id: str, table: str, number: int) -> tuple[str, bytes]:
    """Remove a chunk's object from the store (a damaged backup); its path and bytes, to put it back."""
    index = store.data_index(backup_id)
    assert index is not None
    chunk = next(t for t in index.tables if t.table == table).chunks[number - 1]
    record = next(r for r in store.manifest(backup_id).objects if r.address == chunk.address)
    path = store.files.object_path(record)
    kept = store.files.fs.cat_file(path)
    store.files.fs.rm(path)
    return path, kept


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_run_stopped_by_a_damaged_chunk_resumes_with_every_row_once(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str, parallel: int
) -> None:
    backup_id, before = dropped(mariadb, root, store, tables)
    path, kept = _hide_chunk(store, backup_id, "parent", 3)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, backup_id)
    with pytest.raises(RollbackStepError, match=r"\(reload table table `parent`\) at chunk 3 of \d+") as failed:
        planner.execute(mariadb.dsn, plan, parallel=parallel)
    info = planner.recovery_info(backup_id)
    assert info.status == "failed" and info.failed_step is not None
    assert info.failed_step["number"] == failed.value.step and info.failed_step["object_name"] == "parent"
    assert 3 not in info.failed_step["chunks_done"] and {1, 2} <= set(info.failed_step["chunks_done"])
    assert "chunk(s) done)" in str(info) and "chunk 3 of" in str(info)
    # Every data step ran at once: the others are done, or stopped with the chunks they finished.
    statuses = {step["object_name"]: step["status"] for step in info.steps if step["data"] is not None}
    assert statuses["parent"] == "failed" and set(statuses.values()) <= {"failed", "done", "stopped"}
    partly = contents(root, tables)["parent"]
    assert 0 < len(partly) < len(before["parent"])

    store.files.fs.pipe_file(path, kept)  # the chunk is found again
    again = planner.plan(mariadb.dsn, backup_id)
    resumed = [step for step in again.steps if step.sql.startswith("-- resumes")]
    assert {step.object_name for step in resumed} == {name for name, status in statuses.items() if status != "done"}
    assert all(step.phase == StepPhase.RELOAD_TABLE for step in resumed)
    assert any("of run" in note and "runs again" in note for note in again.notes)
    result = planner.execute(mariadb.dsn, again, parallel=parallel)
    assert result.verified and contents(root, tables) == before
    assert result.run_id is not None
    parent = next(s for s in journal(store, backup_id, result.run_id)["steps"] if s["object_name"] == "parent")
    assert parent["status"] == "done" and parent["loaded"]["skipped"] == len(info.failed_step["chunks_done"])
    assert parent["loaded"]["verified"] == len(parent["data"]["chunks"])
    assert parent["loaded"]["rows"] == len(before["parent"]) - len(partly)
    # Done is done: a third plan has nothing left to do.
    assert planner.plan(mariadb.dsn, backup_id).is_empty


def test_a_keyless_table_resumes_after_the_chunks_it_holds(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str
) -> None:
    backup_id, before = dropped(mariadb, root, store, tables)
    path, kept = _hide_chunk(store, backup_id, "log", 4)
    planner = RollbackPlanner(store)
    with pytest.raises(RollbackStepError, match=r"`log`\) at chunk 4 of"):
        planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id), parallel=2)
    assert planner.recovery_info(backup_id).failed_step["chunks_done"] == [1, 2, 3]  # type: ignore[index]
    store.files.fs.pipe_file(path, kept)
    result = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id), parallel=2)
    assert result.verified and contents(root, tables) == before
    assert result.run_id is not None
    log = next(s for s in journal(store, backup_id, result.run_id)["steps"] if s["object_name"] == "log")
    assert log["loaded"]["skipped"] == 3


def test_rows_that_are_not_the_backups_are_refused_not_mixed(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str
) -> None:
    backup_id, _ = dropped(mariadb, root, store, tables)
    path, kept = _hide_chunk(store, backup_id, "parent", 3)
    planner = RollbackPlanner(store)
    with pytest.raises(RollbackStepError):
        planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id))
    store.files.fs.pipe_file(path, kept)
    run_sql(root, tables, "UPDATE parent SET name = 'changed' WHERE id = 1")
    with pytest.raises(RollbackStepError, match=r"already holds .* in the key range of chunk 1, and they are not"):
        planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id))
    # Without resuming, the plan leaves the table's rows as they are.
    assert "parent" not in data_steps(planner.plan(mariadb.dsn, backup_id, resume=False))


def _kill_data_connections(mariadb: ThrowawayServer, store: BackupStore, backup_id: str, database: str,
                           spare: int) -> threading.Thread:
    """A thread that KILLs the rollback's data connections once the journal has three chunks done."""

    def watch() -> None:
        killer = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                runs = store.list_documents(f"journals/{backup_id}")
                steps = json.loads(store.get_document(f"journals/{backup_id}/{runs[-1]}"))["steps"] if runs else []
                if sum(len(step.get("chunks_done") or ()) for step in steps) >= 3:
                    with killer.cursor() as cursor:
                        # The data connections: in the database, not ours, not the one holding the rollback lock.
                        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID NOT IN "
                                       "(CONNECTION_ID(), %s, IFNULL(IS_USED_LOCK(%s), 0))",
                                       (database, spare, f"schemasync_rollback:{database}"))
                        for (number,) in cursor.fetchall():
                            cursor.execute(f"KILL {int(number)}")
                    return
                time.sleep(0.002)
        finally:
            killer.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_killed_data_connection_resumes_with_every_row_once(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str
) -> None:
    # More rows, so that the load is still running when the connections are killed.
    run_sql(root, tables, "INSERT INTO parent SELECT seq, 'more', NULL FROM seq_3001_to_40000")
    backup_id, before = dropped(mariadb, root, store, tables)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, backup_id)
    watcher = _kill_data_connections(mariadb, store, backup_id, tables, root.thread_id())
    with pytest.raises(RollbackStepError, match="at chunk"):
        planner.execute(mariadb.dsn, plan, parallel=2)
    watcher.join()
    info = planner.recovery_info(backup_id)
    assert info.status == "failed" and info.failed_step is not None and info.failed_step["data"] is not None
    result = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id), parallel=2)
    assert result.verified and contents(root, tables) == before


def test_a_refill_stopped_half_way_resumes(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str
) -> None:
    parent = contents(root, tables)["parent"]
    migration = ["ALTER TABLE parent DROP COLUMN note"]
    info = store.create(mariadb.dsn, tables, data="at-risk", migration=migration, chunk_bytes=4096)
    run_sql(root, tables, *migration)
    path, kept = _hide_chunk(store, info.id, "parent", 2)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert data_steps(plan)["parent"][0] == StepPhase.REFILL_COLUMNS
    with pytest.raises(RollbackStepError, match=r"\(refill columns table `parent`\) at chunk 2 of"):
        planner.execute(mariadb.dsn, plan, destructive_confirmed=True, parallel=2)
    store.files.fs.pipe_file(path, kept)
    again = planner.plan(mariadb.dsn, info.id)
    assert [(s.phase, s.columns) for s in again.steps] == [(StepPhase.REFILL_COLUMNS, ("note",))]
    assert planner.execute(mariadb.dsn, again, parallel=2).verified
    assert contents(root, tables)["parent"] == parent


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main([*args, "--config", str(config)], stdout=out, stderr=err, stdin=io.StringIO(""))
    return rc, out.getvalue(), err.getvalue()


def test_rollback_execute_parallel_on_the_command_line(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, tmp_path: Path, tables: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MYSQL_SCHEMA_SYNC_CONFIG", "MYSQL_SCHEMA_SYNC_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MYSQL_SCHEMA_SYNC_LOG_FILE", str(tmp_path / "backup.log"))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "database": {"host": "127.0.0.1", "port": mariadb.port, "username": "root", "database": tables},
        "backup": {"storage": {"provider": "local", "local": {"base_path": str(tmp_path / "store")}}}}))
    before = contents(root, tables)
    rc, out, err = _cli(config, "backup", "create", "--data", "all", "--format", "json")
    assert rc == 0, err
    with_data = json.loads(out)["id"]
    rc, out, err = _cli(config, "backup", "create", "--format", "json")
    assert rc == 0, err
    schema_only = json.loads(out)["id"]
    run_sql(root, tables, "DROP TABLE child", "DROP TABLE log")
    rc, out, err = _cli(config, "rollback", "execute", "--backup-id", with_data, "--force", "--parallel", "2")
    assert rc == 0, err
    assert "no data to load" not in err and contents(root, tables) == before
    run_sql(root, tables, "CREATE TABLE extra (id int)")
    rc, out, err = _cli(config, "rollback", "execute", "--backup-id", schema_only, "--force", "--parallel", "2",
                        "--batch-size", "50")
    assert rc == 0, err
    assert "--parallel and --batch-size: no data to load" in err
    rc, _, err = _cli(config, "rollback", "execute", "--backup-id", schema_only, "--parallel", "0")
    assert rc != 0 and "at least 1" in err


def test_a_forged_journal_steers_no_sql_and_no_text(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, tables: str
) -> None:
    """The journal is a document in the store: a resumed step's SQL is written from the backup, and
    what the journal says of the run is repeated only in the form the planner writes it."""
    backup_id, before = dropped(mariadb, root, store, tables)
    path, kept = _hide_chunk(store, backup_id, "log", 4)
    planner = RollbackPlanner(store)
    with pytest.raises(RollbackStepError):
        planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, backup_id))
    run_id = planner.recovery_info(backup_id).run_id
    document = journal(store, backup_id, run_id)
    document["run_id"] = "run-1\nDROP DATABASE everything"
    for step in document["steps"]:
        if step["data"] is not None and step["status"] != "done":
            step["sql"] = "DROP TABLE parent; -- forged"
            step["columns"] = ["id`; DROP TABLE parent; --"]
    store.put_document(f"journals/{backup_id}/{run_id}.json", json.dumps(document).encode())
    store.files.fs.pipe_file(path, kept)
    again = planner.plan(mariadb.dsn, backup_id)
    resumed = [step for step in again.steps if step.sql.startswith("-- resumes")]
    assert resumed and all("DROP" not in step.sql and "forged" not in step.sql for step in resumed)
    assert not any("DROP DATABASE" in note for note in again.notes)
    assert any("of the latest run" in note for note in again.notes)
    assert planner.execute(mariadb.dsn, again).verified and contents(root, tables) == before
