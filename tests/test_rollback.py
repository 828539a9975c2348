"""RollbackPlanner on the real MariaDB: plan, execute and verify the way back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pymysql
import pytest
from conftest import CORPUS, corpus_entries, load_corpus, run_sql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_snapshot_support import create_texts

from schemasync_backup import Snapshot
from schemasync_backup.errors import (
    ConcurrentRollbackError,
    RollbackRefusedError,
    RollbackStepError,
    StalePlanError,
)
from schemasync_backup.model.snapshot import Table
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.create_table import parse, without_auto_increment
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.fixture
def shop(mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str) -> Iterator[str]:
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE {q(fresh_db)}")
    load_sample(mariadb.dsn, fresh_db)
    yield fresh_db


def texts(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    """SHOW CREATE texts, without the AUTO_INCREMENT counters a rollback does not rewind."""
    return {key: without_auto_increment(text) if key[0] == "table" else text
            for key, text in create_texts(snapshot).items()}


def realistic_migration(snapshot: Snapshot) -> list[str]:
    """A migration such as applications ship, built to fit whatever schema it is given."""
    tables = [t for t in snapshot.tables if t.kind == "BASE TABLE"]
    programs = " ".join(v.create_sql for v in snapshot.views) + " ".join(
        p.create_sql for p in (*snapshot.routines, *snapshot.triggers, *snapshot.events))
    in_keys = {(t.name, part.column) for t in tables for index in t.indexes for part in index.parts}
    in_fks = {(t.name, c) for t in tables for fk in t.foreign_keys for c in fk.columns}
    in_fks |= {(fk.referenced_table, c) for t in tables for fk in t.foreign_keys for c in fk.referenced_columns}
    generated = " ".join(c.generated or "" for t in tables for c in t.columns)
    checks = " ".join(check.clause for t in tables for check in t.checks)

    def free(table: str, column: str) -> bool:
        return ((table, column) not in in_keys | in_fks and column not in programs and column not in generated
                and column not in checks)

    statements: list[str] = []
    busy: set[str] = set()
    candidates = [(t, c) for t in tables for c in t.columns if free(t.name, c.name) and len(t.columns) > 2]
    if candidates:
        table, column = candidates[0]
        statements.append(f"ALTER TABLE {q(table.name)} DROP COLUMN {q(column.name)}, "
                          f"ADD COLUMN `migration_note` varchar(40) DEFAULT NULL")
        busy.add(table.name)
    widen = [(t, c) for t, c in candidates if t.name not in busy and re.match(r"varchar\(\d+\)", c.type)]
    if widen:
        table, column = widen[0]
        line = parse(table.create_sql).column_line(column.name)
        wider = re.sub(r"varchar\((\d+)\)", lambda m: f"varchar({int(m.group(1)) + 10})", line, count=1)
        statements.append(f"ALTER TABLE {q(table.name)} MODIFY COLUMN {wider}")
        busy.add(table.name)
    for table in tables:
        fk_first = {fk.columns[0] for fk in table.foreign_keys}
        droppable = [i for i in table.indexes if i.kind in ("INDEX", "UNIQUE") and i.parts[0].column not in fk_first]
        if droppable and table.name not in busy:
            statements.append(f"ALTER TABLE {q(table.name)} DROP INDEX {q(droppable[0].name)}")
            busy.add(table.name)
            break
    for table in tables:
        column = next((c for c in table.columns if re.match(r"(big|small|tiny)?int", c.type)), None)
        if column and table.name not in busy:
            statements.append(f"ALTER TABLE {q(table.name)} ADD INDEX `migration_idx` ({q(column.name)})")
            busy.add(table.name)
            break
    parents = {fk.referenced_table for t in tables for fk in t.foreign_keys}
    droppable_tables = [t for t in tables if t.name not in parents | busy and f"`{t.name}`" not in programs
                        and t.name not in programs]
    if droppable_tables:
        statements.append(f"DROP TABLE {q(droppable_tables[-1].name)}")
        busy.add(droppable_tables[-1].name)
    return statements + _foreign_key_migration(tables, busy) + _program_migration(snapshot)


def _foreign_key_migration(tables: list[Table], busy: set[str]) -> list[str]:
    statements = []
    with_fk = [t for t in tables if t.foreign_keys and t.name not in busy]
    if with_fk:
        fk = with_fk[0].foreign_keys[0]
        statements.append(f"ALTER TABLE {q(with_fk[0].name)} DROP FOREIGN KEY {q(fk.name)}")
        if len(with_fk) > 1:
            other = with_fk[1].foreign_keys[0]
            statements.append(
                f"ALTER TABLE {q(with_fk[1].name)} ADD CONSTRAINT `migration_fk` FOREIGN KEY "
                f"({', '.join(map(q, other.columns))}) REFERENCES {q(other.referenced_table)} "
                f"({', '.join(map(q, other.referenced_columns))})")
    partitioned = [t for t in tables if t.partitioning and t.name not in busy]
    if partitioned:
        statements.append(f"ALTER TABLE {q(partitioned[0].name)} REMOVE PARTITIONING")
    return statements


def _program_migration(snapshot: Snapshot) -> list[str]:
    statements = []
    if snapshot.views:
        view = snapshot.views[0]
        statements.append(f"ALTER ALGORITHM=TEMPTABLE VIEW {q(view.name)} AS {view.definition}")
    if snapshot.triggers:
        statements.append(f"DROP TRIGGER {q(snapshot.triggers[0].name)}")
    if snapshot.routines:
        routine = snapshot.routines[0]
        statements.append(f"ALTER {routine.kind} {q(routine.name)} COMMENT 'changed by a migration'")
    return statements


@pytest.mark.corpus
@pytest.mark.parametrize("name", [entry[0] for entry in corpus_entries()] or ["none"])
def test_rollback_of_a_realistic_migration_on_every_corpus_schema(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, name: str
) -> None:
    entries = {entry[0]: entry[1:] for entry in corpus_entries()}
    if name not in entries:
        pytest.skip(f"corpus not found at {CORPUS}")
    database = f"rb_{name}"
    load_corpus(mariadb, database, *entries[name])
    info = store.create(mariadb.dsn, database)
    original = store.snapshot(info.id)
    migration = realistic_migration(original)
    assert len(migration) >= 4, migration
    with root.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
    run_sql(root, database, *migration)
    assert Snapshot.capture(mariadb.dsn, database).schema_hash != info.schema_hash

    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert not plan.is_empty and not plan.preflight, plan.preflight
    result = planner.execute(mariadb.dsn, plan, force=True)
    assert result.verified, planner.compare(mariadb.dsn, info.id)
    after = Snapshot.capture(mariadb.dsn, database)
    assert after.schema_hash == info.schema_hash
    assert texts(after) == texts(original)
    assert planner.validate(mariadb.dsn, info.id).matches
    assert planner.plan(mariadb.dsn, info.id).is_empty
    pre = store.get(result.pre_rollback_backup_id or "")
    assert pre.pinned and pre.tags["rollback_to"] == info.id
    run_sql(root, "mysql", f"DROP DATABASE {q(database)}")


def test_destructive_steps_are_measured_and_refused_without_force(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop,
            "CREATE TABLE scratch (id INT PRIMARY KEY)", "INSERT INTO scratch VALUES (1), (2), (3)",
            "ALTER TABLE customer ADD COLUMN nickname VARCHAR(20)",
            "INSERT INTO customer (email, full_name, nickname) VALUES ('a@x', 'A', 'ace'), ('b@x', 'B', NULL)")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    warnings = "\n".join(plan.warnings)
    assert "`scratch`" in warnings and "3 rows at risk" in warnings
    assert "`nickname` is dropped with its values: 1 row at risk" in warnings
    assert {step.object_name for step in plan.destructive_steps} == {"scratch", "customer"}
    with pytest.raises(RollbackRefusedError, match="2 destructive step"):
        planner.execute(mariadb.dsn, plan)
    assert "DROP TABLE `scratch`" in plan.to_sql() and "(DESTRUCTIVE)" in plan.to_sql()
    assert plan.to_dict()["destructive_steps"] == 2

    before = Snapshot.capture(mariadb.dsn, shop).schema_hash
    dry = planner.execute(mariadb.dsn, plan, dry_run=True)
    assert dry.dry_run and dry.steps_run == 0
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash == before
    # A person who reviewed the destructive steps consents to them; preflight problems still need force.
    with pytest.raises(RollbackRefusedError, match="preflight"):
        planner.execute(mariadb.dsn, attrs.evolve(plan, preflight=("definer missing",)), destructive_confirmed=True)
    assert planner.execute(mariadb.dsn, plan, destructive_confirmed=True).verified


def test_stale_plan_and_concurrent_rollbacks_are_refused(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop, "ALTER TABLE product ADD INDEX ix_extra (status)")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    with root.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (f"schemasync_rollback:{shop}",))
        with pytest.raises(ConcurrentRollbackError, match="another rollback"):
            planner.execute(mariadb.dsn, plan)
        cursor.execute("SELECT RELEASE_LOCK(%s)", (f"schemasync_rollback:{shop}",))
    run_sql(root, shop, "ALTER TABLE product ADD INDEX ix_more (title)")
    with pytest.raises(StalePlanError, match="plan again"):
        planner.execute(mariadb.dsn, plan)
    assert planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id)).verified


def test_failed_step_leaves_recovery_info_and_planning_again_converges(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop,
            "ALTER TABLE order_line DROP FOREIGN KEY fk_line_product", "ALTER TABLE product ADD COLUMN extra INT",
            "INSERT INTO customer (id, email, full_name) VALUES (1, 'c@x', 'C')",
            "INSERT INTO `order` (id, customer_id) VALUES (1, 1)",
            "SET FOREIGN_KEY_CHECKS = 0",
            "INSERT INTO order_line (order_id, line_no, sku) VALUES (1, 1, 'NO-SUCH-SKU')",
            "SET FOREIGN_KEY_CHECKS = 1")
    planner = RollbackPlanner(store)
    nothing = planner.recovery_info(info.id)
    assert not nothing.ran and nothing.status == "not run" and nothing.steps == ()
    assert str(nothing) == f"no rollback of backup {info.id} has run: nothing to recover"
    plan = planner.plan(mariadb.dsn, info.id)
    with pytest.raises(RollbackStepError, match="foreign key constraint fails") as caught:
        planner.execute(mariadb.dsn, plan, force=True)
    # The message names the commands an operator runs, not the library's methods.
    assert f"see `rollback recovery-info --backup-id {info.id}` and `rollback manual-steps" in caught.value.message
    assert "recovery_info(" not in caught.value.message
    recovery = planner.recovery_info(info.id)
    assert recovery.status == "failed" and recovery.failed_step is not None
    assert recovery.failed_step["number"] == caught.value.step
    assert "fk_line_product" in recovery.failed_step["sql"]
    assert "foreign key constraint fails" in recovery.failed_step["error"]
    assert any("fk_line_product" in sql for sql in planner.manual_steps(info.id))
    assert recovery.done == caught.value.step - 1

    run_sql(root, shop, "DELETE FROM order_line WHERE sku = 'NO-SUCH-SKU'")
    again = planner.plan(mariadb.dsn, info.id)
    assert len(again.steps) < len(plan.steps)
    assert planner.execute(mariadb.dsn, again, force=True).verified
    assert planner.recovery_info(info.id).status == "completed"


def test_missing_definer_is_a_preflight_problem_until_rewritten(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    run_sql(root, shop, "CREATE USER IF NOT EXISTS 'ghost'@'localhost'",
            "CREATE DEFINER='ghost'@'localhost' SQL SECURITY DEFINER VIEW haunted AS SELECT 1 AS one")
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop, "DROP VIEW haunted", "DROP USER 'ghost'@'localhost'")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert any("`ghost`@`localhost`" in problem and "rewrite" in problem for problem in plan.preflight)
    with pytest.raises(RollbackRefusedError, match="preflight"):
        planner.execute(mariadb.dsn, plan, force=False)
    rewritten = planner.plan(mariadb.dsn, info.id, definer_policy={"view": "rewrite"})
    assert not rewritten.preflight
    assert any("SQL SECURITY DEFINER" in warning for warning in rewritten.warnings)
    planner.execute(mariadb.dsn, rewritten)
    haunted = next(view for view in Snapshot.capture(mariadb.dsn, shop).views if view.name == "haunted")
    assert haunted.create_sql.startswith("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@")


def test_rollback_recreates_a_dropped_database(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, "mysql", f"DROP DATABASE {q(shop)}")
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert plan.steps[0].phase == "create database"
    assert planner.execute(mariadb.dsn, plan).verified


def test_corrupted_backup_is_not_a_target_unless_forced(
    mariadb: ThrowawayServer, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    store.set_status(info.id, "CORRUPTED", "test")
    with pytest.raises(RollbackRefusedError, match="CORRUPTED"):
        RollbackPlanner(store).plan(mariadb.dsn, info.id)
    assert RollbackPlanner(store).plan(mariadb.dsn, info.id, force=True).is_empty


# --- property: random schemas, random migrations, rollback always returns -----------------------

NAMES = st.sampled_from(["plain", "select", "with`tick", "quo'te", "dq\"name", "ünïcødé", "spa ce", "order", "名前"])
TYPES = st.sampled_from(["INT", "BIGINT UNSIGNED", "VARCHAR(30)", "VARCHAR(200) CHARACTER SET latin1", "TEXT",
                         "DECIMAL(8,2)", "DATETIME(3)", "ENUM('a','b','c')", "JSON", "DATE"])
OPS = st.lists(st.tuples(st.sampled_from(["add", "drop", "modify", "index", "unindex", "comment", "table",
                                          "droptable", "reorder"]), st.integers(0, 50), TYPES), max_size=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(columns=st.lists(st.tuples(NAMES, TYPES), min_size=2, max_size=6, unique_by=lambda c: c[0].lower()),
       ops=OPS)
def test_random_migrations_always_roll_back(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, tmp_path_factory: pytest.TempPathFactory,
    columns: list[tuple[str, str]], ops: list[tuple[str, int, str]],
) -> None:
    database = "prop_rollback"
    run_sql(root, "mysql", f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    definitions = ", ".join(f"{q(name)} {kind}" for name, kind in columns)
    run_sql(root, database, f"CREATE TABLE `t``1` (id INT PRIMARY KEY, {definitions}, KEY k1 (id, {q(columns[0][0])}"
                            f"{'(10)' if any(word in columns[0][1] for word in ('CHAR', 'TEXT', 'JSON')) else ''}))",
            "CREATE TABLE other (id INT PRIMARY KEY, ref INT, KEY (ref))")
    store = BackupStore.open(str(tmp_path_factory.mktemp("prop")))
    info = store.create(mariadb.dsn, database)
    names = [name for name, _ in columns]
    for op, pick, kind in ops:
        name = names[pick % len(names)]
        statement = {
            "add": f"ALTER TABLE `t``1` ADD COLUMN {q(name + str(pick))} {kind}",
            "drop": f"ALTER TABLE `t``1` DROP COLUMN {q(name)}",
            "modify": f"ALTER TABLE `t``1` MODIFY COLUMN {q(name)} {kind}",
            "index": f"ALTER TABLE `t``1` ADD INDEX {q('ix' + str(pick))} (id)",
            "unindex": "ALTER TABLE `t``1` DROP INDEX k1",
            "comment": f"ALTER TABLE other COMMENT {pymysql.converters.escape_string(repr(name))!r}",
            "table": f"CREATE TABLE {q('new' + name)} (x INT)",
            "droptable": "DROP TABLE other",
            "reorder": f"ALTER TABLE `t``1` MODIFY COLUMN {q(name)} {dict(columns)[name]} FIRST",
        }[op]
        try:
            run_sql(root, database, statement)
        except pymysql.MySQLError:
            continue  # an invalid random migration is not a migration; skip it
    planner = RollbackPlanner(store)
    result = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id), force=True)
    assert result.verified, planner.compare(mariadb.dsn, info.id)
    assert texts(Snapshot.capture(mariadb.dsn, database)) == texts(store.snapshot(info.id))


def test_preflight_names_the_privileges_the_executing_user_lacks(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str
) -> None:
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop, "ALTER TABLE product ADD INDEX ix_extra (status)",
            "CREATE USER IF NOT EXISTS 'reader'@'127.0.0.1' IDENTIFIED BY 'pw'",
            f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON {q(shop)}.* TO 'reader'@'127.0.0.1'",
            "GRANT SELECT ON mysql.proc TO 'reader'@'127.0.0.1'")
    plan = RollbackPlanner(store).plan(mariadb.dsn_for(shop, "reader", "pw"), info.id)
    assert any("lacks ALTER, INDEX" in problem and "GRANT ALTER, INDEX" in problem for problem in plan.preflight)
    with pytest.raises(RollbackRefusedError, match="preflight"):
        RollbackPlanner(store).execute(mariadb.dsn_for(shop, "reader", "pw"), plan)
    run_sql(root, shop, "DROP USER 'reader'@'127.0.0.1'")


def test_one_flavor_rule_for_capture_and_an_absent_target(store: BackupStore, mariadb: ThrowawayServer,
                                                           shop: str) -> None:
    """Rollback once told the flavor of a server with no target database by VERSION() alone (and
    invented sql_mode "" and lower_case_table_names 0); capture reads @@version_comment too."""
    from schemasync_backup.capture.connection import open_source
    from schemasync_backup.capture.reader import flavor_of

    assert flavor_of("10.11.6", "mariadb.org binary distribution") == "mariadb"  # a rewritten VERSION()
    assert flavor_of("10.11.6-MariaDB-log") == "mariadb" and flavor_of("8.0.36", "MySQL Community Server") == "mysql"
    captured = Snapshot.capture(mariadb.dsn, shop)
    with open_source(mariadb.dsn) as connection:
        live, server = RollbackPlanner(store)._live(connection, "absent_database", captured)
    assert live.tables == () and server == live.server == captured.server
