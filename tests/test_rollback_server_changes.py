"""Every change the server can express rolls back to the backup's exact SHOW CREATE text, both ways.

Each case is a minimal pair found on real definitions (the state in the backup, then the live
state); each runs in both directions on the real MariaDB.
"""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
from migration_pairs import Outcome, load_state, roll_back

from schemasync_backup import RollbackPlanner, Snapshot
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

PAIRS = {
    "regular to generated": ("CREATE TABLE t (id int PRIMARY KEY, a int, b int)",
                             "CREATE TABLE t (id int PRIMARY KEY, a int GENERATED ALWAYS AS (1) VIRTUAL, b int)"),
    "virtual to stored": ("CREATE TABLE t (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a + 1) VIRTUAL)",
                          "CREATE TABLE t (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a + 1) STORED)"),
    "generated with an index": (
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a + 1) STORED, KEY kb (b))",
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, KEY kb (b))"),
    "system versioning": ("CREATE TABLE t (id int PRIMARY KEY, a int)",
                          "CREATE TABLE t (id int PRIMARY KEY, a int) WITH SYSTEM VERSIONING"),
    "versioned column change": ("CREATE TABLE t (id int PRIMARY KEY, a int) WITH SYSTEM VERSIONING",
                                "CREATE TABLE t (id int PRIMARY KEY, a bigint, b int) WITH SYSTEM VERSIONING"),
    "explicit period columns": (
        "CREATE TABLE t (id int PRIMARY KEY, a int)",
        "CREATE TABLE t (id int PRIMARY KEY, a int, rs timestamp(6) GENERATED ALWAYS AS ROW START, "
        "re timestamp(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME (rs, re)) WITH SYSTEM VERSIONING"),
    "sequence options": ("CREATE SEQUENCE s", "CREATE SEQUENCE s MAXVALUE 100"),
    "sequence and table": ("CREATE SEQUENCE s", "CREATE TABLE s (id int)"),
    "sequence engine": ("CREATE SEQUENCE s ENGINE=InnoDB", "CREATE SEQUENCE s ENGINE=Aria"),
    "numeric options": ("CREATE TABLE t (id int) ENGINE=MyISAM",
                        "CREATE TABLE t (id int) ENGINE=MyISAM KEY_BLOCK_SIZE=8 MIN_ROWS=5 MAX_ROWS=50 "
                        "AVG_ROW_LENGTH=10 CHECKSUM=1 DELAY_KEY_WRITE=1 COMMENT='x'"),
    "engine-defined options": ("CREATE TABLE t (id int) ENGINE=InnoDB",
                               "CREATE TABLE t (id int) ENGINE=InnoDB PAGE_COMPRESSED=1"),
    "leaving Aria": ("CREATE TABLE t (id int) ENGINE=InnoDB", "CREATE TABLE t (id int) ENGINE=Aria PAGE_CHECKSUM=1"),
    "table charset": ("CREATE TABLE t (a varchar(10), b text) DEFAULT CHARSET=latin1",
                      "CREATE TABLE t (a varchar(10), b text) DEFAULT CHARSET=utf8mb4"),
    "implicit foreign key index": (
        "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE q (id int PRIMARY KEY);"
        "CREATE TABLE c (id int PRIMARY KEY, pid int, FOREIGN KEY (pid) REFERENCES p (id))",
        "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE q (id int PRIMARY KEY);"
        "CREATE TABLE c (id int PRIMARY KEY, pid int, FOREIGN KEY (pid) REFERENCES q (id))"),
    "partitioning needs a key": (
        "CREATE TABLE t (id int NOT NULL, b int NOT NULL, PRIMARY KEY (id))",
        "CREATE TABLE t (id int NOT NULL, b int NOT NULL, PRIMARY KEY (id, b)) PARTITION BY HASH (b) PARTITIONS 4"),
    "partitioning change": (
        "CREATE TABLE t (id int NOT NULL, b int NOT NULL, PRIMARY KEY (id, b)) PARTITION BY HASH (b) PARTITIONS 2",
        "CREATE TABLE t (id int NOT NULL, b int NOT NULL, PRIMARY KEY (id)) PARTITION BY HASH (id) PARTITIONS 3"),
}


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("case", sorted(PAIRS))
def test_rolls_back_to_the_exact_text(mariadb: ThrowawayServer, store: BackupStore, case: str, reverse: bool) -> None:
    backup_sql, live_sql = PAIRS[case][::-1] if reverse else PAIRS[case]
    result = roll_back(mariadb, store, "server_changes", backup_sql, live_sql)
    assert result.outcome == Outcome.EXACT, result.detail


def test_a_sequence_keeps_its_value_when_the_backup_allows_it(mariadb: ThrowawayServer, store: BackupStore) -> None:
    database = "sequence_value"
    load_state(mariadb, database, "CREATE SEQUENCE s MAXVALUE 1000000 CACHE 0")
    info = store.save(Snapshot.capture(mariadb.dsn, database))
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=database, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("ALTER SEQUENCE s MAXVALUE 500")
        cursor.execute("SELECT SETVAL(s, 41)")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert len(plan.steps) == 1 and plan.steps[0].sql.startswith("ALTER SEQUENCE `s` start with 1 minvalue 1 "
                                                                 "maxvalue 1000000 increment by 1 ")
    assert not plan.steps[0].sql.endswith("RESTART") and not plan.destructive_steps
    planner.execute(mariadb.dsn, plan)
    with connection.cursor() as cursor:
        cursor.execute("SELECT NEXTVAL(s)")
        assert cursor.fetchone() == (42,)
    connection.close()


def test_a_sequence_past_the_backups_range_restarts_with_a_warning(
    mariadb: ThrowawayServer, store: BackupStore
) -> None:
    database = "sequence_restart"
    load_state(mariadb, database, "CREATE SEQUENCE s MAXVALUE 100 CACHE 0")
    info = store.save(Snapshot.capture(mariadb.dsn, database))
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=database, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("ALTER SEQUENCE s MAXVALUE 1000")
        cursor.execute("SELECT SETVAL(s, 500)")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert plan.steps[0].sql.endswith(" RESTART")
    assert "outside the backup's range 1..100" in (plan.steps[0].warning or "")
    planner.execute(mariadb.dsn, plan, destructive_confirmed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT NEXTVAL(s)")
        assert cursor.fetchone() == (1,)
    connection.close()


def test_an_engine_change_of_a_versioned_table_is_refused_at_plan_time(
    mariadb: ThrowawayServer, store: BackupStore
) -> None:
    result = roll_back(mariadb, store, "versioned_engine", "CREATE TABLE t (id int) ENGINE=Aria",
                       "CREATE TABLE t (id int) ENGINE=InnoDB WITH SYSTEM VERSIONING")
    assert result.outcome == Outcome.REFUSED
    assert "system-versioned" in result.detail and "4120" in result.detail


PREDICTED = {
    "unique over duplicates": ("CREATE TABLE t (id int PRIMARY KEY, a int, UNIQUE KEY ua (a))",
                               "CREATE TABLE t (id int PRIMARY KEY, a int)",
                               "INSERT INTO t VALUES (1, 7), (2, 7), (3, NULL), (4, NULL), (5, 8)",
                               "UNIQUE KEY `ua` is added over rows with duplicate values: 2 rows make the step fail"),
    "primary key over duplicates": ("CREATE TABLE t (id int NOT NULL, a int, PRIMARY KEY (id, a))",
                                    "CREATE TABLE t (id int NOT NULL, a int)",
                                    "INSERT INTO t VALUES (1, 1), (1, 1), (1, 1), (2, 1)",
                                    "PRIMARY KEY is added over rows with duplicate values: 3 rows make the step fail"),
    "list partitions": ("CREATE TABLE t (a int) PARTITION BY LIST (a) (PARTITION p0 VALUES IN (1, 2), "
                        "PARTITION p1 VALUES IN (3))",
                        "CREATE TABLE t (a int)", "INSERT INTO t VALUES (1), (3), (5), (NULL)",
                        "no partition of the backup's LIST partitioning takes: 2 rows make the step fail"),
    "range partitions": ("CREATE TABLE t (a int) PARTITION BY RANGE (a) (PARTITION p0 VALUES LESS THAN (10))",
                         "CREATE TABLE t (a int)", "INSERT INTO t VALUES (1), (NULL), (15)",
                         "no partition of the backup's RANGE partitioning takes: 1 row makes the step fail"),
}


@pytest.mark.parametrize("case", sorted(PREDICTED))
def test_data_that_would_fail_a_step_refuses_the_plan_with_counts(
    mariadb: ThrowawayServer, store: BackupStore, case: str
) -> None:
    backup_sql, live_sql, rows, expected = PREDICTED[case]
    database = "predicted"
    load_state(mariadb, database, backup_sql)
    info = store.save(Snapshot.capture(mariadb.dsn, database))
    load_state(mariadb, database, f"{live_sql}; {rows}")
    plan = RollbackPlanner(store).plan(mariadb.dsn, info.id)
    assert any(expected in problem and "would fail on the live data" in problem for problem in plan.preflight), \
        plan.preflight
    assert any(expected in warning for warning in plan.warnings)
    # Without the rows the same plan has nothing to refuse.
    load_state(mariadb, database, live_sql)
    assert not RollbackPlanner(store).plan(mariadb.dsn, info.id).preflight
