"""Faults between us and the server, on the real MariaDB: statements smuggled into DDL never run, a server
lost mid-operation is reported as such (and the journal says where), server errors are never connection
errors, and a rollback never changes a database other than the backup's, nor drops what a partial backup
does not hold, unless asked."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pymysql
import pytest
from conftest import run_sql
from test_cli import Session, cli_env, write_config

from schemasync_backup import (
    DatabaseConnectionError,
    DatabaseMismatchError,
    QueryError,
    RollbackConnectionLostError,
    RollbackRefusedError,
    RollbackStepError,
    SchemaSyncBackupError,
    Snapshot,
    Status,
    Validator,
)
from schemasync_backup.capture.connection import (
    LOST_CONNECTION,
    ConnectionSpec,
    connect,
    execute,
    query,
    query_many,
    translate_errors,
)
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.formats import manifest as manifest_module
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


def _exists(root: pymysql.connections.Connection, database: str) -> bool:
    with root.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
        return cursor.fetchone() is not None


def _tables(root: pymysql.connections.Connection, database: str) -> set[str]:
    with root.cursor() as cursor:
        cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
        return {row[0] for row in cursor.fetchall()}


@contextlib.contextmanager
def _database(root: pymysql.connections.Connection, name: str) -> Iterator[str]:
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {q(name)}")
        cursor.execute(f"CREATE DATABASE {q(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    try:
        yield name
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {q(name)}")


# --- 1. one statement per query ------------------------------------------------------------------


def _smuggling(snapshot: Snapshot, evil: str) -> Snapshot:
    """The snapshot with ``; CREATE DATABASE evil`` after its first table's CREATE text."""
    first, *rest = snapshot.tables
    carried = attrs.evolve(first, create_sql=f"{first.create_sql}; CREATE DATABASE {q(evil)}")
    return attrs.evolve(snapshot, tables=(carried, *rest))


def test_a_second_statement_in_create_sql_never_runs_on_restore(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str
) -> None:
    run_sql(root, fresh_db, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE b (id int PRIMARY KEY)")
    evil = f"{fresh_db}_evil"
    snapshot = _smuggling(Snapshot.capture(mariadb.dsn, fresh_db), evil)
    target = f"{fresh_db}_restored"
    try:
        with pytest.raises(QueryError) as caught:
            restore_snapshot(snapshot, mariadb.dsn, target)
        message = str(caught.value)
        assert caught.value.code == 1064
        assert f"restore of {q(target)} failed at statement" in message
        assert "more than one statement" in message and "validate the backup" in message
        assert not _exists(root, evil)
    finally:
        run_sql(root, "mysql", f"DROP DATABASE IF EXISTS {q(target)}")


def test_restore_test_of_a_backup_carrying_a_second_statement_fails_and_runs_none_of_it(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str, store: BackupStore
) -> None:
    run_sql(root, fresh_db, "CREATE TABLE a (id int PRIMARY KEY)")
    evil = f"{fresh_db}_evil2"
    info = store.save(_smuggling(Snapshot.capture(mariadb.dsn, fresh_db), evil))
    with pytest.raises(QueryError) as caught:
        Validator(store).restore_test(info.id, mariadb.dsn)
    assert "more than one statement" in str(caught.value)
    assert not _exists(root, evil)
    with root.cursor() as cursor:  # the scratch database is gone too
        cursor.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'ssb_restore_test_%'")
        assert cursor.fetchone() == (0,)


def test_no_helper_runs_two_statements_in_one_query(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str
) -> None:
    evil = f"{fresh_db}_evil3"
    connection = connect(ConnectionSpec.parse(mariadb.dsn_for(fresh_db)))
    try:
        for run in (lambda: query(connection, f"SELECT 1; CREATE DATABASE {q(evil)}"),
                    lambda: execute(connection, f"DO 1; CREATE DATABASE {q(evil)}"),
                    lambda: query_many(connection, ["SELECT 1", f"SELECT 2; CREATE DATABASE {q(evil)}"])):
            with pytest.raises(QueryError) as caught:
                run()
            assert caught.value.code == 1064
        assert not _exists(root, evil)
        # A failure inside a pipelined batch is reported once, and the connection stays usable.
        with pytest.raises(QueryError) as caught:
            query_many(connection, ["SELECT 1", "SHOW CREATE TABLE no_such_table", "SELECT 3"])
        assert caught.value.code == 1146
        assert query_many(connection, ["SELECT 1", "SELECT 2, 'x'"]) == [[(1,)], [(2, "x")]]
        many = query_many(connection, [f"SELECT {n}" for n in range(3000)])  # several windows
        assert [rows[0][0] for rows in many] == list(range(3000))
    finally:
        connection.close()


# --- 3. server errors are query errors, translated once ------------------------------------------


def test_a_server_error_in_the_4000_range_is_a_query_error_with_its_message_once(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str
) -> None:
    run_sql(root, fresh_db, "CREATE TABLE t (a int) WITH SYSTEM VERSIONING")
    connection = connect(ConnectionSpec.parse(mariadb.dsn_for(fresh_db)))
    try:
        for nested in (False, True):
            with pytest.raises(SchemaSyncBackupError) as caught:
                if nested:
                    with translate_errors("outer", database=fresh_db):
                        execute(connection, "ALTER TABLE t MODIFY a bigint")
                else:
                    execute(connection, "ALTER TABLE t MODIFY a bigint")
            error = caught.value
            assert type(error) is QueryError, f"{type(error).__name__}: {error}"
            assert error.code is not None and 4000 <= error.code < 5000
            assert str(error).count("Not allowed for system-versioned") == 1
            assert "connect" not in str(error)
            assert str(error).startswith("query failed on ")
        # The connection is fine after a server error.
        assert query(connection, "SELECT 1 AS one") == [{"one": 1}]
    finally:
        connection.close()


def test_a_connection_error_is_never_prefixed_twice(mariadb: ThrowawayServer) -> None:
    spec = attrs.evolve(ConnectionSpec.parse(mariadb.dsn), port=1)
    with pytest.raises(DatabaseConnectionError) as caught, translate_errors("outer"):
        connect(spec)
    assert str(caught.value).count("failed to connect to database") == 1


# --- 2. losing the server mid-operation ----------------------------------------------------------


def _kill_when(server: ThrowawayServer, sql: str, *, delay: float = 0.0) -> threading.Thread:
    """A thread that SIGKILLs ``server`` once a query matching ``sql`` (a processlist filter) shows."""
    monitor = pymysql.connect(unix_socket=str(server.socket_path), user="root", autocommit=True)

    def watch() -> None:
        deadline = time.monotonic() + 60
        try:
            with monitor.cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
                                   f"AND {sql}")
                    row = cursor.fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.002)
            time.sleep(delay)
        finally:
            process = server._process
            assert process is not None
            process.send_signal(signal.SIGKILL)
            process.wait()
            with contextlib.suppress(Exception):
                monitor.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_losing_the_server_during_a_rollback_step_marks_the_step_and_the_run_failed(
    tmp_path: Path, store: BackupStore
) -> None:
    with ThrowawayServer() as server:
        admin = pymysql.connect(unix_socket=str(server.socket_path), user="root", autocommit=True)
        with admin.cursor() as cursor:
            cursor.execute("CREATE DATABASE app")
        run_sql(admin, "app", "CREATE TABLE big (id int PRIMARY KEY, a bigint, b varchar(20))",
                "INSERT INTO big SELECT seq, seq, CONCAT('row ', seq) FROM seq_1_to_400000",
                *[f"CREATE TABLE small_{n} (id int PRIMARY KEY, v int)" for n in range(5)])
        backup = store.create(server.dsn, "app")
        # The migration: a narrower column, and a new table (so the rollback's first step drops it).
        run_sql(admin, "app", "ALTER TABLE big MODIFY a int", "CREATE TABLE aaa_new (id int)",
                *[f"ALTER TABLE small_{n} ADD COLUMN w int" for n in range(5)])
        admin.close()
        planner = RollbackPlanner(store)
        plan = planner.plan(server.dsn, backup.id)
        slow = next(number for number, step in enumerate(plan.steps, start=1) if step.object_name == "big")
        assert slow > 1 and plan.steps[0].phase == "drop table", plan.summary()

        killer = _kill_when(server, "INFO LIKE 'ALTER TABLE `big`%'")
        with pytest.raises(RollbackStepError) as caught:
            planner.execute(server.dsn, plan, force=True)
        killer.join(timeout=60)

    error = caught.value
    assert isinstance(error, RollbackConnectionLostError) and isinstance(error, DatabaseConnectionError)
    assert LOST_CONNECTION in str(error), str(error)
    assert "[0]" not in str(error)
    assert error.step == slow
    assert f"rollback step {slow} of {len(plan.steps)} (alter table table `big`)" in str(error)

    info = planner.recovery_info(backup.id)
    assert info.status == "failed"
    failed = info.failed_step
    assert failed is not None and failed["number"] == slow and failed["status"] == "failed"
    assert LOST_CONNECTION in failed["error"]
    assert [step["status"] for step in info.steps[: slow - 1]] == ["done"] * (slow - 1)
    assert f"step {slow} (alter table table `big`) failed: {LOST_CONNECTION}" in str(info)
    assert info.error is not None and LOST_CONNECTION in info.error
    assert planner.manual_steps(backup.id)[0].endswith(plan.steps[slow - 1].sql)


def test_losing_the_server_during_a_backup_is_a_connection_error_and_leaves_no_backup(
    store: BackupStore
) -> None:
    with ThrowawayServer() as server:
        admin = pymysql.connect(unix_socket=str(server.socket_path), user="root", autocommit=True)
        with admin.cursor() as cursor:
            cursor.execute("CREATE DATABASE wide")
        columns = ", ".join(f"c{n} varchar(20) COMMENT 'column {n}'" for n in range(12))
        run_sql(admin, "wide", *[f"CREATE TABLE t{n:04d} (id int PRIMARY KEY, {columns}, KEY k (c1, c2))"
                                 for n in range(1500)])
        admin.close()
        # Once the capture's connection is in (it connects to the database), let it start, then kill.
        killer = _kill_when(server, "DB = 'wide' AND USER = 'root'", delay=0.03)
        with pytest.raises(SchemaSyncBackupError) as caught:
            store.create(server.dsn_for("wide"), "wide")
        killer.join(timeout=60)

    error = caught.value
    assert type(error) is DatabaseConnectionError, f"{type(error).__name__}: {error}"
    assert str(error).startswith(LOST_CONNECTION), str(error)
    assert "failed to connect" not in str(error) and "[0]" not in str(error)
    assert [info for info in store.list() if info.status == Status.COMPLETED] == []


# --- 4. a rollback changes the backup's own database unless told otherwise ---------------------


def test_a_rollback_to_a_backup_of_another_database_is_refused_unless_the_target_is_named(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    employees = fresh_db
    run_sql(root, employees, "CREATE TABLE employee (id int PRIMARY KEY, name varchar(40))")
    backup = store.create(mariadb.dsn, employees)
    planner = RollbackPlanner(store)
    with _database(root, f"{fresh_db}_sakila") as sakila:
        run_sql(root, sakila, "CREATE TABLE actor (id int PRIMARY KEY)", "CREATE TABLE film (id int PRIMARY KEY)",
                "INSERT INTO actor VALUES (1), (2)")
        attempts = {
            "database=": lambda: planner.plan(mariadb.dsn, backup.id, database=sakila),
            "the DSN": lambda: planner.plan(mariadb.dsn_for(sakila), backup.id),
            "validate": lambda: planner.validate(mariadb.dsn, backup.id, database=sakila),
            "compare": lambda: planner.compare(mariadb.dsn, backup.id, database=sakila),
        }
        for how, attempt in attempts.items():
            with pytest.raises(DatabaseMismatchError) as caught:
                attempt()
            error = caught.value
            assert isinstance(error, RollbackRefusedError), how
            assert (error.subject, error.backup_database, error.target_database) == (backup.id, employees, sakila)
            message = str(error)
            assert f"database {q(sakila)}" in message and f"of database {q(employees)}" in message, message
            assert f"target_database={sakila!r}" in message and f"--target-database {sakila}" in message
        with pytest.raises(DatabaseMismatchError, match="disagree"):
            planner.plan(mariadb.dsn, backup.id, database=sakila, target_database=employees)
        assert _tables(root, sakila) == {"actor", "film"}

        plan = planner.plan(mariadb.dsn, backup.id, target_database=sakila)
        assert plan.database == sakila
        assert {step.object_name for step in plan.destructive_steps} == {"actor", "film"}
        same = planner.plan(mariadb.dsn, backup.id, database=sakila, target_database=sakila)
        assert same.steps == plan.steps
        assert _tables(root, sakila) == {"actor", "film"}
        # The backup's own database, named or not, needs no target_database.
        assert planner.plan(mariadb.dsn_for(employees), backup.id, database=employees).is_empty
        assert planner.validate(mariadb.dsn, backup.id).matches


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the console script gets in test_cli, for ``Session``."""
    for name in [name for name in os.environ if name.startswith("MYSQL_SCHEMA_SYNC_")]:
        monkeypatch.delenv(name)
    for name, value in cli_env(tmp_path / "backup.log").items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("in_process")
def test_cli_refuses_a_rollback_to_another_database_with_exit_2(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str, tmp_path: Path
) -> None:
    run_sql(root, fresh_db, "CREATE TABLE employee (id int PRIMARY KEY)")
    with _database(root, f"{fresh_db}_other") as other:
        run_sql(root, other, "CREATE TABLE actor (id int PRIMARY KEY)")
        cli = Session(write_config(tmp_path, mariadb, fresh_db, tmp_path / "store"))
        created = cli("backup", "create", "--format", "json")
        assert created.rc == 0, created.err
        backup_id = created.json()["backup_id"]
        for command in (["rollback", "plan"], ["rollback", "execute", "--force"], ["rollback", "compare"]):
            ran = cli(*command, "--backup-id", backup_id, "--database", other)
            assert ran.rc == 2, (command, ran)
            assert f"--target-database {other}" in ran.err and f"of database `{fresh_db}`" in ran.err, ran.err
        assert _tables(root, other) == {"actor"}
        planned = cli("rollback", "plan", "--backup-id", backup_id, "--target-database", other, "--format", "json")
        assert planned.rc == 0, planned.err
        assert planned.json()["database"] == other
        assert [step["object_name"] for step in planned.json()["steps"] if step["destructive"]] == ["actor"]
        ran = cli("rollback", "execute", "--backup-id", backup_id, "--database", other, "--target-database", other,
                  "--force")
        assert ran.rc == 0, ran.err
        assert _tables(root, other) == {"employee"}


# --- 5. partial backups keep what they do not hold -------------------------------------------------


def _mark_partial(store: BackupStore, backup_id: str) -> None:
    """What partial_recovery will do: the backup's manifest says partial, sealed again."""
    found = store.manifest(backup_id)
    sealed = manifest_module.seal(attrs.evolve(found, info=attrs.evolve(found.info, partial=True)))
    store.files.put_bytes(store.files.manifest_path(backup_id), manifest_module.dump(sealed))
    assert store.get(backup_id).partial


def test_a_rollback_to_a_partial_backup_keeps_live_objects_it_does_not_hold(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    run_sql(root, fresh_db, "CREATE TABLE kept_a (id int PRIMARY KEY)", "CREATE TABLE kept_b (id int PRIMARY KEY)",
            "CREATE TABLE lost (id int PRIMARY KEY)", "INSERT INTO lost VALUES (1)",
            "CREATE VIEW lost_view AS SELECT id FROM lost",
            "CREATE PROCEDURE lost_proc() SELECT 1",
            "CREATE TRIGGER lost_trigger BEFORE INSERT ON lost FOR EACH ROW SET NEW.id = NEW.id")
    full = Snapshot.capture(mariadb.dsn, fresh_db)
    salvaged = attrs.evolve(full, tables=tuple(t for t in full.tables if t.name.startswith("kept")),
                            views=(), routines=(), triggers=())
    backup = store.save(salvaged)
    _mark_partial(store, backup.id)
    run_sql(root, fresh_db, "ALTER TABLE kept_a ADD COLUMN note varchar(10)")
    planner = RollbackPlanner(store)

    plan = planner.plan(mariadb.dsn, backup.id)
    assert [(step.phase, step.object_name) for step in plan.steps] == [("alter table", "kept_a")], plan.summary()
    note = next(note for note in plan.notes if "partial" in note)
    assert note.startswith(f"4 live object(s) the backup does not hold are kept because backup {backup.id} is partial")
    assert "table `lost`" in note and "view `lost_view`" in note and "procedure `lost_proc`" in note
    assert "trigger `lost_trigger`" in note and "force" in note

    forced = planner.plan(mariadb.dsn, backup.id, force=True)
    dropped = {(step.phase, step.object_name) for step in forced.steps}
    assert {("drop table", "lost"), ("drop view", "lost_view"), ("drop routine", "lost_proc"),
            ("drop trigger", "lost_trigger")} <= dropped
    assert not any("partial" in note for note in forced.notes)

    result = planner.execute(mariadb.dsn, plan, force=True)  # the column the migration added goes
    assert result.verified, "the live schema is the backup's plus what was kept"
    assert _tables(root, fresh_db) == {"kept_a", "kept_b", "lost", "lost_view"}
    after = Snapshot.capture(mariadb.dsn, fresh_db)
    assert [c.name for c in after.table("kept_a").columns] == ["id"]
    assert {r.name for r in after.routines} == {"lost_proc"} and {t.name for t in after.triggers} == {"lost_trigger"}
