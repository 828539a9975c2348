"""One DDL renderer: routines, views, triggers and events made under a latin1 (and a utf8mb4)
client, with non-ASCII names, bodies and comments, come back byte for byte, with the character
set they recorded, through rollback execute, the rollback script and the restore."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from test_snapshot_support import create_texts, load_with_client

from schemasync_backup import Snapshot
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.ddl.render import render
from schemasync_backup.model.snapshot import Routine
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

LATIN1 = [
    "CREATE TABLE `tàb` (id int, s varchar(20) CHARACTER SET latin1)",
    "CREATE PROCEDURE `pé`()\nBEGIN\n  -- note é; ü\n  /* block ß */ SELECT 'café' = 'CAFÉ';\nEND",
    "CREATE FUNCTION `fü`(x varchar(10)) RETURNS varchar(20) DETERMINISTIC\n"
    "RETURN CONCAT(x, 'ß') -- trailing é",
    "CREATE VIEW `vü` AS SELECT 'ü' AS `ü`, /* é */ 'straße' AS s",
    "CREATE TRIGGER `trè` BEFORE INSERT ON `tàb` FOR EACH ROW\nBEGIN\n  # note ß\n  SET NEW.s = 'né';\nEND",
    "CREATE EVENT `ée` ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DISABLE COMMENT 'ü'\n"
    "DO /* ß */ DELETE FROM `tàb` WHERE s = 'é'",
]
UTF8MB4 = [
    "CREATE PROCEDURE `p中文`()\nBEGIN\n  -- note 中文 é\n  SELECT '中文', /* ß */'ü' /* touches */;\nEND",
    "CREATE VIEW `v中文` AS SELECT '中文' AS `中`",
]


def connect(server: ThrowawayServer, database: str, charset: str) -> pymysql.connections.Connection:
    return pymysql.connect(unix_socket=str(server.socket_path), user="root", charset=charset, database=database,
                           autocommit=True)


@pytest.fixture
def schema(mariadb: ThrowawayServer, fresh_db: str) -> Iterator[str]:
    for charset, statements in (("latin1", LATIN1), ("utf8mb4", UTF8MB4)):
        with contextlib.closing(connect(mariadb, fresh_db, charset)) as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    yield fresh_db


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


def recorded(snapshot: Snapshot) -> dict[tuple[str, str], tuple[str, str]]:
    """Each program's client character set and connection collation."""
    found = {(r.kind, r.name): (r.charset_client, r.collation_connection) for r in snapshot.routines}
    for kind, items in (("view", snapshot.views), ("trigger", snapshot.triggers), ("event", snapshot.events)):
        found |= {(kind, item.name): (item.charset_client, item.collation_connection) for item in items}
    return found


def assert_same(original: Snapshot, copy: Snapshot) -> None:
    assert create_texts(copy) == create_texts(original)
    assert recorded(copy) == recorded(original)
    assert copy.schema_hash == original.schema_hash


def damage(server: ThrowawayServer, database: str) -> None:
    with contextlib.closing(connect(server, database, "utf8mb4")) as connection, connection.cursor() as cursor:
        for statement in ("DROP PROCEDURE `pé`", "DROP FUNCTION `fü`", "DROP PROCEDURE `p中文`",
                          "DROP TRIGGER `trè`", "DROP EVENT `ée`",
                          "CREATE OR REPLACE VIEW `vü` AS SELECT 1 AS x",
                          "CREATE OR REPLACE VIEW `v中文` AS SELECT 2 AS y"):
            cursor.execute(statement)


def test_the_backup_records_what_the_objects_were_made_under(mariadb: ThrowawayServer, schema: str) -> None:
    snapshot = Snapshot.capture(mariadb.dsn, schema)
    charsets = recorded(snapshot)
    assert charsets[("PROCEDURE", "pé")] == ("latin1", "latin1_swedish_ci")
    assert charsets[("view", "vü")][0] == charsets[("trigger", "trè")][0] == charsets[("event", "ée")][0] == "latin1"
    assert charsets[("PROCEDURE", "p中文")][0] == "utf8mb4"
    assert "-- note é; ü" in snapshot.routines[[r.name for r in snapshot.routines].index("pé")].create_sql


def test_rollback_execute_brings_them_back_byte_for_byte(
    mariadb: ThrowawayServer, schema: str, store: BackupStore,
) -> None:
    info = store.create(mariadb.dsn, schema)
    damage(mariadb, schema)
    planner = RollbackPlanner(store)
    plan = planner.plan(mariadb.dsn, info.id)
    assert not plan.preflight
    result = planner.execute(mariadb.dsn, plan, force=True)
    assert result.verified
    assert_same(store.snapshot(info.id), Snapshot.capture(mariadb.dsn, schema))
    # Nothing left the session in latin1 for what follows: a second plan is empty.
    assert planner.plan(mariadb.dsn, info.id).is_empty


def test_the_rollback_script_through_the_client_keeps_comments_and_characters(
    mariadb: ThrowawayServer, schema: str, store: BackupStore,
) -> None:
    info = store.create(mariadb.dsn, schema)
    damage(mariadb, schema)
    plan = RollbackPlanner(store).plan(mariadb.dsn, info.id)
    result = subprocess.run(
        ["mariadb", "--no-defaults", f"--socket={mariadb.socket_path}", "-uroot", "--batch", "--comments"],
        input=plan.to_sql().encode("utf-8"), capture_output=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    after = Snapshot.capture(mariadb.dsn, schema)
    assert after.schema_hash == plan.target_hash
    assert_same(store.snapshot(info.id), after)


def test_restore_and_its_script_give_the_same_objects(mariadb: ThrowawayServer, schema: str) -> None:
    snapshot = Snapshot.capture(mariadb.dsn, schema)
    copies = [schema + "_r", schema + "_c"]
    try:
        restore_snapshot(snapshot, mariadb.dsn, copies[0])
        load_with_client(mariadb, snapshot.to_sql(database=copies[1]))
        for copy in copies:
            assert_same(snapshot, Snapshot.capture(mariadb.dsn, copy))
    finally:
        with contextlib.closing(connect(mariadb, schema, "utf8mb4")) as connection, connection.cursor() as cursor:
            for copy in copies:
                cursor.execute(f"DROP DATABASE IF EXISTS {q(copy)}")


def test_restore_and_rollback_render_programs_alike(mariadb: ThrowawayServer, schema: str) -> None:
    snapshot = Snapshot.capture(mariadb.dsn, schema)
    statements = snapshot.to_statements()
    for routine in snapshot.routines:
        rendered = render(routine)
        start = statements.index(rendered.statements[0], statements.index(rendered.statements[1]) - 1)
        assert tuple(statements[start:start + len(rendered.statements)]) == rendered.statements


def test_text_the_charset_cannot_hold_is_sent_as_utf8mb4() -> None:
    routine = Routine(name="p", kind="PROCEDURE", charset_client="latin1", collation_connection="latin1_swedish_ci",
                      create_sql="CREATE DEFINER=`中`@`%` PROCEDURE `p`() SELECT 1")
    rendered = render(routine)
    assert rendered.charset_client == "utf8mb4"
    assert routine.create_sql in rendered.statements
    assert render(Routine(name="p", kind="PROCEDURE", charset_client="latin1", create_sql="CREATE PROCEDURE p() "
                          "SELECT 'é'")).charset_client == "latin1"
    assert render(Routine(name="p", kind="PROCEDURE", charset_client="latin1", create_sql="CREATE PROCEDURE p() "
                          "SELECT 'é'"), flavor="mysql").charset_client == "utf8mb4"
