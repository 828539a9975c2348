"""A hypothesis state machine on the real server: migrations and rollbacks interleave at random.

Rules change the live schema (hostile identifiers included), take new backups, or roll back to any
backup taken so far; after every rollback the live schema must hash exactly as that backup, and print
the same SHOW CREATE texts.
"""

from __future__ import annotations

import itertools
import tempfile

import pymysql
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_rollback import texts

from schemasync_backup import Snapshot
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

NAMES = st.sampled_from(["plain", "select", "with`tick", "quo'te", "ünïcødé", "spa ce", "名前", "order"])
TYPES = st.sampled_from(["INT", "VARCHAR(40)", "DECIMAL(6,2)", "DATE", "ENUM('x','y')", "TEXT", "BIGINT UNSIGNED"])
DATABASE = "state_machine"
_tables = itertools.count()
ROLLBACKS: list[str] = []


def make_machine(server: ThrowawayServer) -> type[RuleBasedStateMachine]:
    class RollbackMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.connection = pymysql.connect(unix_socket=str(server.socket_path), user="root", autocommit=True,
                                              charset="utf8mb4")
            self.run(f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}")
            self.run(f"CREATE TABLE {DATABASE}.`base` (id INT PRIMARY KEY, note VARCHAR(20), KEY k_note (note))")
            self.store = BackupStore.open(tempfile.mkdtemp(prefix="state-machine-"))
            self.planner = RollbackPlanner(self.store)
            self.backups: list[str] = [self.store.create(server.dsn, DATABASE).id]

        def run(self, *statements: str) -> bool:
            try:
                with self.connection.cursor() as cursor:
                    for statement in statements:
                        cursor.execute(statement)
            except pymysql.MySQLError:
                return False  # an invalid random migration changes nothing worth checking
            return True

        @rule()
        def backup(self) -> None:
            self.backups.append(self.store.create(server.dsn, DATABASE).id)

        @rule(name=NAMES, kind=TYPES)
        def add_column(self, name: str, kind: str) -> None:
            self.run(f"ALTER TABLE {DATABASE}.`base` ADD COLUMN {q(name)} {kind}")

        @rule(name=NAMES)
        def drop_column(self, name: str) -> None:
            self.run(f"ALTER TABLE {DATABASE}.`base` DROP COLUMN {q(name)}")

        @rule(name=NAMES, kind=TYPES)
        def modify_column(self, name: str, kind: str) -> None:
            self.run(f"ALTER TABLE {DATABASE}.`base` MODIFY COLUMN {q(name)} {kind} FIRST")

        @rule(name=NAMES)
        def add_table(self, name: str) -> None:
            table = f"{name}{next(_tables)}"
            self.run(f"CREATE TABLE {DATABASE}.{q(table)} (id INT PRIMARY KEY, base_id INT, "
                     f"CONSTRAINT {q('fk ' + table)} FOREIGN KEY (base_id) REFERENCES {DATABASE}.`base` (id))")

        @rule(name=NAMES)
        def add_view(self, name: str) -> None:
            self.run(f"CREATE OR REPLACE VIEW {DATABASE}.{q('v ' + name)} AS SELECT id, note FROM {DATABASE}.`base`")

        @rule()
        def swap_index(self) -> None:
            self.run(f"ALTER TABLE {DATABASE}.`base` DROP INDEX k_note",
                     f"ALTER TABLE {DATABASE}.`base` ADD INDEX k_note (id, note)")

        @precondition(lambda self: bool(self.backups))
        @rule(data=st.data())
        def roll_back(self, data: st.DataObject) -> None:
            backup_id = data.draw(st.sampled_from(self.backups))
            plan = self.planner.plan(server.dsn, backup_id)
            result = self.planner.execute(server.dsn, plan, force=True)
            assert result.verified, self.planner.compare(server.dsn, backup_id)
            assert texts(Snapshot.capture(server.dsn, DATABASE)) == texts(self.store.snapshot(backup_id))
            assert self.planner.plan(server.dsn, backup_id).is_empty
            ROLLBACKS.append(backup_id)

        @invariant()
        def backups_stay_valid(self) -> None:
            for backup_id in self.backups[-1:]:
                assert self.store.get(backup_id).status == "COMPLETED"

        def teardown(self) -> None:
            if hasattr(self, "connection"):
                self.connection.close()

    return RollbackMachine


def test_random_migrations_and_rollbacks_interleaved(mariadb: ThrowawayServer) -> None:
    machine = make_machine(mariadb)
    # Derandomized, without the example database: every machine and every CI run plays the same
    # 30 programs, so the count below is a fact about the test, not about luck.
    machine.TestCase.settings = settings(max_examples=30, stateful_step_count=12, deadline=None, derandomize=True,
                                         database=None, suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()
    assert len(ROLLBACKS) >= 10, f"the machine must actually roll back, many times (did {len(ROLLBACKS)})"
