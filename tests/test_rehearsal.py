"""The rehearsal: every plan runs first in a scratch database built from what it touches."""

from __future__ import annotations

from pathlib import Path

import attrs
import pymysql
import pytest
from conftest import run_sql

from schemasync_backup import BackupInfo, RehearsalFailedError, RollbackPlanner, Snapshot
from schemasync_backup.rollback.plan import RehearsalStatus, RollbackStep, StepPhase
from schemasync_backup.rollback.rehearsal import SCRATCH_PREFIX, rehearse
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

PASSWORD = "rehearsal-pass-1"


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


def _scratch_databases(root: pymysql.connections.Connection) -> list[str]:
    with root.cursor() as cursor:
        cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                       (SCRATCH_PREFIX.replace("_", "\\_") + "%",))
        return [row[0] for row in cursor.fetchall()]


def _backed_up_then_changed(mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore,
                            database: str, change: str) -> BackupInfo:
    """A backup of a one-table database, then ``change`` made live."""
    run_sql(root, database, "CREATE TABLE t (id int PRIMARY KEY)")
    info = store.create(mariadb.dsn, database)
    run_sql(root, database, change)
    return info


def _many_tables(root: pymysql.connections.Connection, database: str, count: int) -> None:
    run_sql(root, database, "CREATE TABLE parent (id int PRIMARY KEY)",
            "CREATE TABLE child (id int PRIMARY KEY, pid int, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES parent (id))",
            *(f"CREATE TABLE t{n} (id int PRIMARY KEY, v varchar(10))" for n in range(count)),
            "CREATE VIEW v0 AS SELECT id FROM t0")


def test_a_plan_is_rehearsed_on_only_what_it_touches(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    _many_tables(root, fresh_db, 30)
    info = store.create(mariadb.dsn, fresh_db)
    run_sql(root, fresh_db, "ALTER TABLE t5 ADD COLUMN extra int", "ALTER TABLE parent COMMENT 'changed'")
    plan = RollbackPlanner(store).plan(mariadb.dsn, info.id)
    assert plan.rehearsal.status == RehearsalStatus.PASSED, plan.rehearsal
    # t5, parent and child (whose foreign key names parent): not the other 29 tables nor the view.
    assert plan.rehearsal.objects_built == 3
    assert "rehearsal passed (3 object(s)" in plan.summary()
    assert plan.to_dict()["rehearsal"]["status"] == "passed"
    assert _scratch_databases(root) == []


def test_a_step_the_server_refuses_fails_the_rehearsal_and_execute_refuses_the_plan(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    info = _backed_up_then_changed(mariadb, root, store, fresh_db, "ALTER TABLE t ADD COLUMN extra int")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    broken = RollbackStep(StepPhase.ALTER_TABLE, "table", "t", "ALTER TABLE `t` DROP COLUMN `missing`")
    steps = (*plan.steps, broken)
    live, goal = Snapshot.capture(mariadb.dsn, fresh_db), store.snapshot(info.id)
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True) as connection:
        connection.select_db(fresh_db)
        rehearsal = rehearse(connection, live, attrs.evolve(goal, database=fresh_db), steps)
        # The caller's session comes back as it was: its database and its sql_mode.
        with connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE(), @@SESSION.sql_mode")
            assert cursor.fetchone() == (fresh_db, mariadb_default_mode(root))
    assert rehearsal.failed and rehearsal.failed_step == 2
    assert "1091" in (rehearsal.error or "") and "missing" in (rehearsal.error or "")
    assert _scratch_databases(root) == []
    refused = attrs.evolve(plan, steps=steps, rehearsal=rehearsal)
    assert "REHEARSAL FAILED" in refused.summary()
    with pytest.raises(RehearsalFailedError, match="step 2 failed") as caught:
        planner.execute(mariadb.dsn, refused)
    assert caught.value.rehearsal == rehearsal
    assert "extra" in Snapshot.capture(mariadb.dsn, fresh_db).table("t").create_sql  # untouched


def mariadb_default_mode(root: pymysql.connections.Connection) -> str:
    with root.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.sql_mode")
        return str(cursor.fetchone()[0])


def test_a_step_that_ends_elsewhere_fails_the_rehearsal_with_the_difference(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    info = _backed_up_then_changed(mariadb, root, store, fresh_db, "ALTER TABLE t COMMENT 'live'")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    wrong = attrs.evolve(plan.steps[0], sql="ALTER TABLE `t` COMMENT='not the backup'")
    live, goal = Snapshot.capture(mariadb.dsn, fresh_db), store.snapshot(info.id)
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True) as connection:
        rehearsal = rehearse(connection, live, attrs.evolve(goal, database=fresh_db), [wrong])
    assert rehearsal.failed and rehearsal.failed_step is None
    assert len(rehearsal.differences) == 1 and "not the backup" in rehearsal.differences[0]
    # Forced, it runs (the person who forces it has read the differences).
    planner.execute(mariadb.dsn, attrs.evolve(plan, steps=(wrong,), rehearsal=rehearsal), force=True)


def test_a_scratch_database_left_by_a_crash_is_dropped_by_the_next_plan_but_not_one_in_use(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    info = _backed_up_then_changed(mariadb, root, store, fresh_db, "ALTER TABLE t ADD COLUMN extra int")
    crashed, running = SCRATCH_PREFIX + "0123456789abcdef", SCRATCH_PREFIX + "fedcba9876543210"
    holder = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
    try:
        with root.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {quote_identifier(crashed)}")
            cursor.execute(f"CREATE DATABASE {quote_identifier(running)}")
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (running,))
        RollbackPlanner(store).plan(mariadb.dsn, info.id)
        assert _scratch_databases(root) == [running]
    finally:
        holder.close()
        with root.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(running)}")


def test_without_the_privilege_the_rehearsal_is_skipped_and_says_which_grant(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    info = _backed_up_then_changed(mariadb, root, store, fresh_db, "ALTER TABLE t ADD COLUMN extra int")
    with root.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'no_scratch'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cursor.execute(f"GRANT ALL ON {quote_identifier(fresh_db)}.* TO 'no_scratch'@'%'")
        cursor.execute("GRANT SELECT ON mysql.* TO 'no_scratch'@'%'")
    try:
        plan = RollbackPlanner(store).plan(mariadb.dsn_for(fresh_db, "no_scratch", PASSWORD), info.id)
    finally:
        with root.cursor() as cursor:
            cursor.execute("DROP USER 'no_scratch'@'%'")
    assert plan.rehearsal.status == RehearsalStatus.SKIPPED
    assert "GRANT ALL ON `\\_schemasync\\_rehearsal\\_%`.*" in plan.rehearsal.reason
    assert "rehearsal skipped" in plan.summary()
    assert PASSWORD not in plan.to_json()


def test_the_rehearsal_can_run_on_another_server_or_not_at_all(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str
) -> None:
    info = _backed_up_then_changed(mariadb, root, store, fresh_db, "ALTER TABLE t ADD COLUMN extra int")
    planner = RollbackPlanner(store)
    elsewhere = planner.plan(mariadb.dsn, info.id, rehearse_on=mariadb.dsn)
    assert elsewhere.rehearsal.passed
    skipped = planner.plan(mariadb.dsn, info.id, rehearse=False)
    assert skipped.rehearsal.status == RehearsalStatus.SKIPPED
    assert "rehearsal skipped: not asked for" in skipped.summary()
    assert planner.execute(mariadb.dsn, skipped, destructive_confirmed=True).verified
