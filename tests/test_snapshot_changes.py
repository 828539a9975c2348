"""Every kind of real change to a live schema changes the schema hash; undoing it restores it."""

from __future__ import annotations

import pytest
from test_snapshot_support import execute

from schemasync_backup import Snapshot
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

BASE = [
    "CREATE TABLE parent (id int PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'x' COMMENT 'the name', "
    "price decimal(8,2), KEY name_idx (name), CONSTRAINT price_ok CHECK (price >= 0)) COMMENT 'parents'",
    "CREATE TABLE child (id int PRIMARY KEY, parent_id int, KEY (parent_id), "
    "CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)",
    "CREATE VIEW names AS SELECT name FROM parent",
    "CREATE TRIGGER stamp BEFORE INSERT ON child FOR EACH ROW SET NEW.id = NEW.id",
    "CREATE PROCEDURE cleanup() DELETE FROM child WHERE parent_id IS NULL",
    "CREATE FUNCTION double_it(x int) RETURNS int DETERMINISTIC RETURN x * 2",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2031-01-01 00:00:00' DO CALL cleanup()",
]

CHANGES = [
    ("add column", ["ALTER TABLE parent ADD COLUMN extra int"]),
    ("drop column", ["ALTER TABLE parent DROP COLUMN extra", "ALTER TABLE child ADD COLUMN note text"]),
    ("column type", ["ALTER TABLE child MODIFY note mediumtext"]),
    ("column nullability", ["ALTER TABLE parent MODIFY price decimal(8,2) NOT NULL"]),
    ("column default", ["ALTER TABLE parent ALTER name SET DEFAULT 'y'"]),
    ("column comment", ["ALTER TABLE parent MODIFY name varchar(20) NOT NULL DEFAULT 'y' COMMENT 'changed'"]),
    ("column collation", ["ALTER TABLE parent MODIFY name varchar(20) COLLATE utf8mb4_bin NOT NULL DEFAULT 'y' "
                          "COMMENT 'changed'"]),
    ("column order", ["ALTER TABLE parent MODIFY price decimal(8,2) NOT NULL FIRST"]),
    ("invisible column", ["ALTER TABLE child MODIFY note mediumtext INVISIBLE"]),
    ("add index", ["ALTER TABLE parent ADD INDEX price_idx (price)"]),
    ("index to unique", ["ALTER TABLE parent DROP INDEX price_idx, ADD UNIQUE INDEX price_idx (price)"]),
    ("descending index", ["ALTER TABLE parent DROP INDEX price_idx, ADD UNIQUE INDEX price_idx (price DESC)"]),
    ("prefix index", ["ALTER TABLE parent DROP INDEX name_idx, ADD INDEX name_idx (name(5))"]),
    ("ignored index", ["ALTER TABLE parent ALTER INDEX name_idx IGNORED"]),
    ("fulltext index", ["ALTER TABLE child ADD FULLTEXT INDEX note_text (note)"]),
    ("drop index", ["ALTER TABLE child DROP INDEX note_text"]),
    # Two statements: InnoDB refuses to drop and re-add a same-named key in one ALTER after a rebuild.
    ("fk rule", ["ALTER TABLE child DROP FOREIGN KEY child_parent",
                 "ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) "
                 "ON DELETE SET NULL"]),
    ("drop fk", ["ALTER TABLE child DROP FOREIGN KEY child_parent"]),
    ("check clause", ["ALTER TABLE parent DROP CONSTRAINT price_ok, ADD CONSTRAINT price_ok CHECK (price > 0)"]),
    ("drop check", ["ALTER TABLE parent DROP CONSTRAINT price_ok"]),
    ("table comment", ["ALTER TABLE parent COMMENT 'changed'"]),
    ("row format", ["ALTER TABLE parent ROW_FORMAT=COMPACT"]),
    ("partitioning", ["ALTER TABLE child PARTITION BY HASH (id) PARTITIONS 2"]),
    ("partition count", ["ALTER TABLE child PARTITION BY HASH (id) PARTITIONS 3"]),
    ("table charset", ["ALTER TABLE parent CONVERT TO CHARACTER SET latin1"]),
    ("view body", ["CREATE OR REPLACE VIEW names AS SELECT name FROM parent WHERE id > 0"]),
    ("view security", ["CREATE OR REPLACE SQL SECURITY INVOKER VIEW names AS SELECT name FROM parent WHERE id > 0"]),
    ("trigger body", ["DROP TRIGGER stamp",
                      "CREATE TRIGGER stamp BEFORE INSERT ON child FOR EACH ROW SET NEW.id = NEW.id + 1"]),
    ("trigger timing", ["DROP TRIGGER stamp",
                        "CREATE TRIGGER stamp AFTER INSERT ON child FOR EACH ROW SET @a = 1"]),
    ("routine body", ["DROP FUNCTION double_it",
                      "CREATE FUNCTION double_it(x int) RETURNS int DETERMINISTIC RETURN x + x"]),
    ("routine parameter", ["DROP FUNCTION double_it",
                           "CREATE FUNCTION double_it(x bigint) RETURNS int DETERMINISTIC RETURN x + x"]),
    ("routine characteristic", ["ALTER FUNCTION double_it NO SQL"]),
    ("routine comment", ["ALTER PROCEDURE cleanup COMMENT 'tidy'"]),
    ("event schedule", ["ALTER EVENT nightly ON SCHEDULE EVERY 2 DAY STARTS '2031-01-01 00:00:00'"]),
    ("event status", ["ALTER EVENT nightly DISABLE"]),
    ("event body", ["ALTER EVENT nightly DO DELETE FROM child"]),
    ("add table", ["CREATE TABLE added (id int)"]),
    ("engine", ["ALTER TABLE added ENGINE=Aria"]),
    ("drop table", ["DROP TABLE added"]),
]


def test_every_change_changes_the_hash(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, *BASE)
    previous = Snapshot.capture(mariadb.dsn, fresh_db).schema_hash
    for label, statements in CHANGES:
        execute(mariadb, fresh_db, *statements)
        current = Snapshot.capture(mariadb.dsn, fresh_db).schema_hash
        assert current != previous, label
        previous = current


def test_undoing_a_change_gives_the_hash_back(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(mariadb, fresh_db, *BASE)
    base = Snapshot.capture(mariadb.dsn, fresh_db)
    execute(mariadb, fresh_db, "ALTER TABLE parent ADD COLUMN extra int", "ALTER TABLE parent COMMENT 'changed'")
    assert Snapshot.capture(mariadb.dsn, fresh_db).schema_hash != base.schema_hash
    execute(mariadb, fresh_db, "ALTER TABLE parent DROP COLUMN extra", "ALTER TABLE parent COMMENT 'parents'")
    assert Snapshot.capture(mariadb.dsn, fresh_db).schema_hash == base.schema_hash
