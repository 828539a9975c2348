"""Restores on the real server, through restore_snapshot and through the mariadb client, of the
schemas that are hard to get right; and what the schema hash must ignore."""

from __future__ import annotations

import contextlib

import pymysql
import pytest
from test_snapshot_support import (
    assert_restores,
    connect,
    create_texts,
    execute,
    literal,
    load_with_client,
    scratch_database,
)

from schemasync_backup import Snapshot
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.ddl.snapshot_script import split_foreign_keys
from schemasync_backup.model.canonical import canonical_form
from schemasync_backup.model.snapshot import Column, ForeignKey, Table
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

#: Names a quoting bug would break: every quote, reserved words, unicode, the client's
#: delimiters and comment markers, a newline, a backslash, a name that is a client command.
HOSTILE = ["select", "ta`ble", "it's", 'say "hi"', "sp ace ü 日本", "semi;colon", "dash--dash #x /*y*/",
           "new\nline", "back\\slash", "DELIMITER", "$$", "<&>"]


def test_hostile_names_everywhere(mariadb: ThrowawayServer, fresh_db: str) -> None:
    statements = []
    for number, name in enumerate(HOSTILE):
        table, column, view = q(f"{name}{number}"), q(f"{name}c"), q(f"{name}v{number}")
        statements += [
            f"CREATE TABLE {table} ({column} int PRIMARY KEY, {q(name + 'x')} varchar(10) COMMENT {literal(name)},"
            f" KEY {q(name + 'k')} ({q(name + 'x')}), CONSTRAINT {q(name + 'ck')} CHECK ({column} > 0))"
            f" COMMENT {literal(name)}",
            f"CREATE VIEW {view} AS SELECT {column} AS {q(name + 'a')} FROM {table}",
            f"CREATE TRIGGER {q(name + 'tr')} BEFORE INSERT ON {table} FOR EACH ROW SET NEW.{column} = NEW.{column}",
            f"CREATE PROCEDURE {q(name + 'p')}(IN {q(name + 'arg')} int) SELECT {q(name + 'arg')}",
            f"CREATE FUNCTION {q(name + 'f')}({q(name + 'arg')} int) RETURNS int RETURN {q(name + 'arg')} + 1",
            f"CREATE EVENT {q(name + 'e')} ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DO DELETE FROM {table}",
        ]
    execute(mariadb, fresh_db, *statements)
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert len(snapshot.tables) == len(snapshot.views) == len(snapshot.events) == len(HOSTILE)
    assert {t.name for t in snapshot.tables} == {f"{name}{number}" for number, name in enumerate(HOSTILE)}
    assert_restores(mariadb, snapshot)


def test_the_client_script_with_a_hostile_database_name(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, "CREATE TABLE t (id int)", "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END")
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    target = fresh_db + "_c `it's`;\n-- x"
    try:
        load_with_client(mariadb, snapshot.to_sql(database=target))
        assert Snapshot.capture(mariadb.dsn, target).schema_hash == snapshot.schema_hash
        # Into an existing database: the script selects it with USE.
        execute(mariadb, fresh_db, f"CREATE DATABASE {q(target + '2')}")
        load_with_client(mariadb, snapshot.to_sql(database=target + "2", create_database=False))
        assert Snapshot.capture(mariadb.dsn, target + "2").schema_hash == snapshot.schema_hash
    finally:
        execute(mariadb, fresh_db, f"DROP DATABASE IF EXISTS {q(target)}", f"DROP DATABASE IF EXISTS {q(target + '2')}")


def test_view_chain_restores_in_dependency_order(mariadb: ThrowawayServer, fresh_db: str) -> None:
    # The names sort in reverse of the order the views must be created in.
    execute(
        mariadb, fresh_db,
        "CREATE TABLE base (id int)",
        "CREATE VIEW c_view AS SELECT id FROM base",
        "CREATE VIEW b_view AS SELECT id FROM c_view",
        "CREATE VIEW a_view AS SELECT id, 'b_view' AS c_view FROM b_view",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    creates = [s for s in snapshot.to_statements() if " VIEW " in s]
    assert [s.split(" VIEW ")[1].split()[0] for s in creates] == ["`c_view`", "`b_view`", "`a_view`"]
    assert_restores(mariadb, snapshot)


def test_a_column_named_like_a_view_is_no_dependency(mariadb: ThrowawayServer, fresh_db: str) -> None:
    # Read naively, each definition names the other view: a cycle, broken in name order, wrongly.
    execute(
        mariadb, fresh_db,
        "CREATE TABLE base (x_view int)",
        "CREATE VIEW y_view AS SELECT x_view, base.x_view AS x2 FROM base",
        "CREATE VIEW x_view AS SELECT x_view AS y_view FROM y_view",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert_restores(mariadb, snapshot)


def test_circular_foreign_keys(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(
        mariadb, fresh_db,
        "CREATE TABLE a (id int PRIMARY KEY, b_id int, parent int, KEY (b_id), KEY (parent))",
        "CREATE TABLE b (id int PRIMARY KEY, a_id int, KEY (a_id),"
        " CONSTRAINT b_to_a FOREIGN KEY (a_id) REFERENCES a (id) ON DELETE CASCADE, CONSTRAINT pos CHECK (id > 0))",
        "ALTER TABLE a ADD CONSTRAINT a_to_b FOREIGN KEY (b_id) REFERENCES b (id) ON UPDATE SET NULL,"
        " ADD CONSTRAINT a_self FOREIGN KEY (parent) REFERENCES a (id)",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    alters = [s for s in snapshot.to_statements() if s.startswith("ALTER TABLE")]
    assert len(alters) == 2
    assert "CONSTRAINT `pos` CHECK" in split_foreign_keys(snapshot.table("b"))[0]
    assert_restores(mariadb, snapshot)


def test_split_foreign_keys_keeps_checks_and_the_partition_clause() -> None:
    create = (
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `p` int(11) DEFAULT NULL,\n"
        "  `odd\n``name` json DEFAULT NULL CHECK (json_valid(`odd\n``name`)),\n"
        "  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n"
        "  CONSTRAINT `fk, one` FOREIGN KEY (`p`, `id`) REFERENCES `other`.`parent` (`a`, `b`) ON DELETE CASCADE,\n"
        "  CONSTRAINT `chk` CHECK (`p` > 0),\n"
        "  CONSTRAINT `fk2` FOREIGN KEY (`p`) REFERENCES `t` (`id`)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4\n PARTITION BY HASH (`id`)\nPARTITIONS 2"
    )
    table = Table(
        "t", (Column("id", "int(11)", False),),
        foreign_keys=(
            ForeignKey("fk, one", ("p", "id"), "parent", ("a", "b")), ForeignKey("fk2", ("p",), "t", ("id",))
        ),
        create_sql=create,
    )
    kept, alter = split_foreign_keys(table)
    assert kept == (
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `p` int(11) DEFAULT NULL,\n"
        "  `odd\n``name` json DEFAULT NULL CHECK (json_valid(`odd\n``name`)),\n"
        "  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  CONSTRAINT `chk` CHECK (`p` > 0)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4\n PARTITION BY HASH (`id`)\nPARTITIONS 2"
    )
    assert alter == (
        "ALTER TABLE `t`\n"
        "  ADD CONSTRAINT `fk, one` FOREIGN KEY (`p`, `id`) REFERENCES `other`.`parent` (`a`, `b`) ON DELETE CASCADE,\n"
        "  ADD CONSTRAINT `fk2` FOREIGN KEY (`p`) REFERENCES `t` (`id`)"
    )


def test_foreign_keys_on_odd_tables(mariadb: ThrowawayServer, fresh_db: str) -> None:
    """FKs next to column CHECKs, JSON, a newline in a name, system versioning and a partitioned neighbour."""
    execute(
        mariadb, fresh_db,
        "CREATE TABLE parent (id int PRIMARY KEY) WITH SYSTEM VERSIONING",
        "CREATE TABLE child (id int PRIMARY KEY, `par\nent` int CHECK (`par\nent` > 0), doc json,"
        " CONSTRAINT `f,k` FOREIGN KEY (`par\nent`) REFERENCES parent (id), CONSTRAINT c CHECK (id > 0))"
        " WITH SYSTEM VERSIONING",
        "CREATE TABLE parted (id int PRIMARY KEY, CHECK (id < 1000)) PARTITION BY HASH (id) PARTITIONS 3",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    kept, alter = split_foreign_keys(snapshot.table("child"))
    assert alter is not None
    assert "FOREIGN KEY" not in kept
    assert "CHECK (`par\nent` > 0)" in kept
    assert snapshot.table("parted").partitioning == "PARTITION BY HASH (`id`)\nPARTITIONS 3"
    assert_restores(mariadb, snapshot)


def test_event_time_zones_restore(mariadb: ThrowawayServer, fresh_db: str) -> None:
    with contextlib.closing(connect(mariadb, fresh_db)) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id int)")
        for number, zone in enumerate(("+05:00", "-03:30", "SYSTEM")):
            cursor.execute(f"SET time_zone = '{zone}'")
            cursor.execute(f"CREATE EVENT e{number} ON SCHEDULE EVERY 1 HOUR STARTS '2031-01-01 00:00:00' "
                           "ENDS '2032-01-01 00:00:00' DO DELETE FROM t")
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert [e.time_zone for e in snapshot.events] == ["+05:00", "-03:30", "SYSTEM"]
    assert_restores(mariadb, snapshot)


def test_objects_made_under_another_client_charset(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, "CREATE TABLE t (id int, s varchar(10) CHARACTER SET latin1)")
    with contextlib.closing(pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", charset="latin1",
                                            database=fresh_db, autocommit=True)) as connection, \
            connection.cursor() as cursor:
        cursor.execute("CREATE PROCEDURE `pé`() BEGIN SELECT 'café' = 'CAFÉ'; END")
        cursor.execute("CREATE TRIGGER `trè` BEFORE INSERT ON t FOR EACH ROW SET NEW.s = 'né'")
        cursor.execute("CREATE VIEW `vü` AS SELECT 'ü' AS `ü`")
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert {r.charset_client for r in snapshot.routines} == {"latin1"}
    assert "'café'" in snapshot.routines[0].create_sql
    assert_restores(mariadb, snapshot)


def test_comments_in_bodies_survive_the_client(mariadb: ThrowawayServer, fresh_db: str) -> None:
    # The mariadb client strips comments it sees outside string literals (--skip-comments is its default).
    execute(
        mariadb, fresh_db,
        "CREATE TABLE t (id int)",
        "CREATE PROCEDURE p()\nBEGIN\n  -- it's; a comment\n  # another\n  /* and ; more */ SELECT 1;\nEND",
        "CREATE FUNCTION f() RETURNS int RETURN 1 -- trailing comment",
        "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW BEGIN /* c */ SET @a = 1; END",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DO BEGIN # c\n DELETE FROM t; END",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert "-- it's; a comment" in snapshot.routines[1].create_sql
    assert_restores(mariadb, snapshot)


def test_no_backslash_escapes_objects(mariadb: ThrowawayServer, fresh_db: str) -> None:
    with contextlib.closing(connect(mariadb, fresh_db)) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id int)")
        cursor.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES'")
        cursor.execute("CREATE PROCEDURE p() COMMENT 'a\nb\\c''d' BEGIN -- c\n SELECT 'x\\y'; END")
        cursor.execute("CREATE FUNCTION f() RETURNS varchar(5) COMMENT 'tab\there' RETURN 'a\\b'")
        cursor.execute("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 'b\\c'")
        cursor.execute("CREATE EVENT e ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' COMMENT 'x\ny\\z' "
                       "DO SET @a = 'b\\c'")
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert {r.name: r.comment for r in snapshot.routines} == {"p": "a\nb\\c'd", "f": "tab\there"}
    assert snapshot.events[0].comment == "x\ny\\z"
    assert_restores(mariadb, snapshot)


def test_sequences_keep_their_options(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, "CREATE SEQUENCE s START WITH 5 INCREMENT BY 3 MAXVALUE 1000 CYCLE",
            "SELECT NEXT VALUE FOR s")
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert snapshot.table("s").create_sql.startswith("CREATE SEQUENCE `s` start with 5")
    assert_restores(mariadb, snapshot)
    execute(mariadb, fresh_db, "ALTER SEQUENCE s INCREMENT BY 4")
    assert Snapshot.capture(mariadb.dsn, fresh_db).schema_hash != snapshot.schema_hash


def test_restore_leaves_the_callers_session_as_it_was(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(
        mariadb, fresh_db,
        "CREATE TABLE t (id int)",
        "SET SESSION sql_mode = 'ANSI_QUOTES'",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 1",
        "SET time_zone = '+02:00'",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DO DELETE FROM t",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    with contextlib.closing(connect(mariadb)) as connection, connection.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = 'TRADITIONAL', time_zone = '-01:00', foreign_key_checks = 0")
        cursor.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone, @@SESSION.foreign_key_checks")
        before = cursor.fetchone()
        restore_snapshot(snapshot, connection, fresh_db + "_s")
        cursor.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone, @@SESSION.foreign_key_checks")
        assert cursor.fetchone() == before
        cursor.execute(f"DROP DATABASE {q(fresh_db + '_s')}")


def test_volatile_things_do_not_change_the_hash(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v varchar(10), KEY (v))")
    before = Snapshot.capture(mariadb.dsn, fresh_db)
    execute(mariadb, fresh_db, "INSERT INTO t (v) VALUES " + ", ".join(f"('{n}')" for n in range(500)),
            "ANALYZE TABLE t", "OPTIMIZE TABLE t")
    after = Snapshot.capture(mariadb.dsn, fresh_db)
    assert after.table("t").auto_increment == 501
    assert after.table("t").create_sql != before.table("t").create_sql  # AUTO_INCREMENT=501
    assert after.schema_hash == before.schema_hash


def test_spelled_out_defaults_hash_like_inherited_ones(mariadb: ThrowawayServer) -> None:
    with scratch_database(mariadb) as plain, scratch_database(mariadb) as explicit:
        execute(mariadb, plain, "CREATE TABLE t (id int, s varchar(5), j json, n int(11))")
        execute(
            mariadb, explicit,
            "CREATE TABLE t (id int(11), s varchar(5) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci,"
            " j json, n int) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
        )
        first, second = Snapshot.capture(mariadb.dsn, plain), Snapshot.capture(mariadb.dsn, explicit)
        assert first.database != second.database
        assert first.schema_hash == second.schema_hash
        # A collation that differs from the inherited one is a real difference.
        execute(mariadb, explicit, "ALTER TABLE t MODIFY s varchar(5) COLLATE utf8mb4_bin")
        assert Snapshot.capture(mariadb.dsn, explicit).schema_hash != first.schema_hash


def test_json_columns_are_json_in_the_canonical_form(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, "CREATE TABLE t (`my doc` json, other longtext)")
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    assert snapshot.table("t").column("my doc").type == "longtext"
    form = canonical_form(snapshot)["tables"]["t"]
    assert [column[1] for column in form["columns"]] == ["json", "longtext"]
    assert form["checks"] == {}


def test_same_schema_in_two_databases(mariadb: ThrowawayServer, fresh_db: str) -> None:
    script = [
        "CREATE TABLE t (id int PRIMARY KEY, parent int, FOREIGN KEY (parent) REFERENCES t (id))",
        "CREATE VIEW v AS SELECT id FROM t",
        "CREATE FUNCTION f() RETURNS int RETURN (SELECT COUNT(*) FROM t)",
    ]
    with scratch_database(mariadb) as other:
        execute(mariadb, fresh_db, *script)
        execute(mariadb, other, *script)
        first, second = Snapshot.capture(mariadb.dsn, fresh_db), Snapshot.capture(mariadb.dsn, other)
        assert first.schema_hash == second.schema_hash
        assert create_texts(first) == create_texts(second)
