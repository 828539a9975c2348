"""at_risk: exactly the data a migration would destroy, from its SQL or from the target schema.

Pure: Snapshots built by hand. Every statement kind, multi-clause ALTERs, quoted, qualified and
case variants, renames followed through, the fallback for statements the analysis cannot read,
the key rule for column backups, the target-Snapshot mode, and a property over generated
single-table migrations. tests/test_at_risk_server.py checks the type rules on the server.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemasync_backup.model.at_risk import AtRisk, at_risk, row_key
from schemasync_backup.model.snapshot import (
    Column,
    ForeignKey,
    Index,
    IndexPart,
    Routine,
    ServerInfo,
    Snapshot,
    Table,
)
from schemasync_backup.sql.script import split

UTF8 = {"charset": "utf8mb4", "collation": "utf8mb4_general_ci"}


def text(name: str, type_: str = "varchar(50)", nullable: bool = True, **charset: str) -> Column:
    return Column(name, type_, nullable, **(charset or UTF8))


def number(name: str, type_: str = "int(11)", nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


ID = Column("id", "int(11)", False)
PRIMARY = Index("PRIMARY", "PRIMARY", (IndexPart("id"),))


def table(name: str, *columns: Column, keyed: bool = True, **options: object) -> Table:
    return Table(name, (ID, *columns), indexes=(PRIMARY,) if keyed else (),
                 **{"charset": "utf8mb4", "collation": "utf8mb4_general_ci", **options})  # type: ignore[arg-type]


def snapshot(*tables: Table, lower_case_table_names: int = 0, routines: tuple[Routine, ...] = ()) -> Snapshot:
    return Snapshot("app", "utf8mb4", "utf8mb4_general_ci", ServerInfo("mariadb", "11.4.2", "", lower_case_table_names),
                    tables=tables, routines=routines)


USERS = table("users", text("name"), number("age"), text("bio", "text"))
ORDERS = table("orders", number("user_id"), number("total", "decimal(10,2)"))
LOGS = table("logs", text("message", "text"), keyed=False)
APP = snapshot(USERS, ORDERS, LOGS)


def risk(migration: str | list[str] | Snapshot, current: Snapshot = APP) -> tuple[object, object]:
    found = at_risk(current, migration)
    return found.tables, found.columns


# --- whole tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "DROP TABLE users", "DROP TABLE IF EXISTS `users`", "drop table app.users", "DROP TABLE `app`.`users` CASCADE",
    "DROP TABLES missing, users, also_missing", "TRUNCATE users", "TRUNCATE TABLE `users`",
    "CREATE OR REPLACE TABLE users (id int)", "DELETE FROM users",
    "DELETE FROM users WHERE id IN (SELECT user_id FROM orders)",
    "DELETE LOW_PRIORITY QUICK IGNORE FROM users WHERE age > 3",
    "DELETE u FROM users AS u JOIN orders o ON o.user_id = u.id",
    "UPDATE users SET age = age + 1", "UPDATE users u JOIN orders o ON o.user_id = u.id SET u.age = 1",
    "UPDATE LOW_PRIORITY IGNORE users SET age = 0", "REPLACE INTO users (id, name) VALUES (1, 'a')",
    "INSERT INTO users (id) VALUES (1) ON DUPLICATE KEY UPDATE age = 2",
    "ALTER TABLE users DROP PARTITION p0", "ALTER TABLE users TRUNCATE PARTITION p1, p2",
    "ALTER TABLE users TRUNCATE PARTITION ALL", "ALTER TABLE users DISCARD TABLESPACE",
    "ALTER TABLE users DROP SYSTEM VERSIONING", "ALTER TABLE users ENGINE=BLACKHOLE",
    "ALTER IGNORE TABLE users ADD UNIQUE KEY (name)", "ALTER IGNORE TABLE users ADD CONSTRAINT u PRIMARY KEY (name)",
    "SET STATEMENT max_statement_time=60 FOR DELETE FROM users", "ANALYZE FORMAT=JSON DELETE FROM users",
    "WITH gone AS (SELECT id FROM orders) DELETE FROM users WHERE id IN (SELECT id FROM gone)",
])
def test_statements_that_destroy_a_whole_table(statement: str) -> None:
    assert risk(statement) == (("users",), ())


def test_a_statement_names_each_table_it_destroys() -> None:
    found = at_risk(APP, "DROP TABLE IF EXISTS users, app.orders, other.logs, missing")
    assert found.tables == ("users", "orders")
    assert found.reasons == ("DROP TABLE `users`", "DROP TABLE `app`.`orders`")


def test_only_the_tables_a_delete_or_update_writes_are_at_risk() -> None:
    assert risk("DELETE FROM orders WHERE user_id IN (SELECT id FROM users)") == (("orders",), ())
    assert risk("UPDATE users u JOIN orders o ON o.user_id = u.id SET o.total = 0") == (("orders",), ())
    assert risk("DELETE o FROM orders o JOIN users u ON o.user_id = u.id") == (("orders",), ())
    assert risk("DELETE FROM users, orders USING users JOIN orders JOIN logs") == (("users", "orders"), ())
    # An unqualified SET column may belong to any table the UPDATE joins.
    assert risk("UPDATE users JOIN orders ON orders.user_id = users.id SET age = 1") == (("users", "orders"), ())


def test_drop_database_destroys_every_table_of_the_current_database_only() -> None:
    assert risk("DROP DATABASE app") == (("users", "orders", "logs"), ())
    assert risk("DROP SCHEMA IF EXISTS `app`") == (("users", "orders", "logs"), ())
    assert risk("CREATE OR REPLACE DATABASE app") == (("users", "orders", "logs"), ())
    assert risk("DROP DATABASE other") == ((), ())


def test_temporary_tables_and_other_databases_hold_none_of_the_current_data() -> None:
    for statement in ("DROP TEMPORARY TABLE users", "CREATE OR REPLACE TEMPORARY TABLE users (id int)",
                      "DROP TABLE other.users", "TRUNCATE other.users", "DROP TABLE missing",
                      "USE other; DROP TABLE users"):
        assert at_risk(APP, statement) == AtRisk((), (), ()), statement
    assert risk("USE other; DROP TABLE app.users") == (("users",), ())


def test_foreign_keys_carry_a_delete_or_update_to_the_rows_that_reference_it() -> None:
    def shop(on_delete: str = "RESTRICT", on_update: str = "RESTRICT") -> Snapshot:
        to_users = ForeignKey("fk", ("user_id",), "users", ("id",), on_update=on_update, on_delete=on_delete)
        to_orders = ForeignKey("fk2", ("order_id",), "orders", ("id",), on_delete="CASCADE")
        return snapshot(USERS, table("orders", number("user_id"), foreign_keys=(to_users,)),
                        table("items", number("order_id"), foreign_keys=(to_orders,)))

    cascading = at_risk(shop("CASCADE"), "DELETE FROM users WHERE id = 1")
    assert cascading.tables == ("users", "orders", "items")
    assert cascading.reasons[1:] == ("ON DELETE CASCADE of `orders` from `users` deletes its rows",
                                     "ON DELETE CASCADE of `items` from `orders` deletes its rows")
    # SET NULL changes the referencing column, which no key of `items` references.
    assert risk("DELETE FROM users", shop("SET NULL")) == (("users",), (("orders", ("user_id",)),))
    assert risk("UPDATE users SET id = id + 1", shop(on_update="CASCADE")) == (("users",), (("orders", ("user_id",)),))
    # DROP and TRUNCATE fire no foreign keys (the server refuses them instead).
    assert risk("TRUNCATE users", shop("CASCADE")) == (("users",), ())
    # Keys that carry an update round in a circle stop where they began.
    to_d = ForeignKey("c_d", ("user_id",), "d", ("user_id",), on_update="CASCADE")
    to_c = ForeignKey("d_c", ("user_id",), "c", ("user_id",), on_update="CASCADE")
    ring = snapshot(USERS, table("c", number("user_id"), foreign_keys=(
        ForeignKey("c_users", ("user_id",), "users", ("id",), on_delete="SET NULL"), to_d)),
                    table("d", number("user_id"), foreign_keys=(to_c,)))
    assert risk("DELETE FROM users", ring) == (("users",), (("c", ("user_id",)), ("d", ("user_id",))))


# --- renames are followed, not destroyed --------------------------------------------------------


def test_a_renamed_table_keeps_its_rows_and_a_later_drop_counts_against_them() -> None:
    assert risk("RENAME TABLE users TO people") == ((), ())
    assert risk("ALTER TABLE users RENAME TO people") == ((), ())
    replaced = at_risk(APP, "RENAME TABLE users TO users_old; CREATE TABLE users (id int); DROP TABLE users_old")
    assert replaced.tables == ("users",)
    assert replaced.reasons == ("DROP TABLE `users_old` (the current `users`)",)
    # A swap: the table dropped under the name `users` holds the current `orders`.
    assert risk("RENAME TABLE users TO tmp, orders TO users, tmp TO orders; DROP TABLE users") == (("orders",), ())
    assert risk("ALTER TABLE users RENAME other.users; DROP TABLE other.users") == (("users",), ())
    assert risk("ALTER TABLE users RENAME TO people, DROP COLUMN age") == ((), (("users", ("age",)),))
    # A table the migration creates holds no current data, whatever happens to it.
    assert risk("CREATE TABLE fresh (id int); ALTER TABLE fresh DROP COLUMN id; DROP TABLE fresh") == ((), ())


def test_a_renamed_column_keeps_its_values_and_a_later_change_counts_against_them() -> None:
    assert risk("ALTER TABLE users CHANGE name full_name varchar(50)") == ((), ())
    assert risk("ALTER TABLE users RENAME COLUMN name TO full_name") == ((), ())
    assert risk("ALTER TABLE users RENAME COLUMN name TO full_name; ALTER TABLE users DROP full_name") == (
        (), (("users", ("name",)),))
    assert risk("ALTER TABLE users CHANGE COLUMN name full_name varchar(10)") == ((), (("users", ("name",)),))
    # A column added and dropped again held nothing current; a widening then a narrowing still loses values.
    assert risk("ALTER TABLE users ADD COLUMN x int; ALTER TABLE users DROP COLUMN x") == ((), ())
    assert risk("ALTER TABLE users MODIFY name varchar(100); ALTER TABLE users MODIFY name varchar(60)") == ((), ())
    assert risk("ALTER TABLE users MODIFY name varchar(100); ALTER TABLE users MODIFY name varchar(20)") == (
        (), (("users", ("name",)),))


# --- columns ----------------------------------------------------------------------------------------


def test_drop_column_in_any_position_among_other_clauses() -> None:
    found = at_risk(APP, "ALTER TABLE users ADD COLUMN z int AFTER id, DROP COLUMN age, ADD INDEX i (name), "
                         "DROP `bio`, ALGORITHM=INPLACE, LOCK=NONE, COMMENT 'x'")
    assert (found.tables, found.columns) == ((), (("users", ("age", "bio")),))
    assert found.reasons == ("ALTER TABLE `users` DROP COLUMN `age`", "ALTER TABLE `users` DROP COLUMN `bio`")


def test_a_mixed_alter_reports_each_loss_and_ignores_the_harmless_clauses() -> None:
    found = at_risk(APP, """
        ALTER TABLE `users`
          ADD COLUMN email varchar(200) NOT NULL DEFAULT '' COMMENT 'a, b; c' AFTER name,
          MODIFY COLUMN name varchar(20) CHARACTER SET utf8mb4 NOT NULL DEFAULT 'x',
          CHANGE bio biography mediumtext,
          DROP COLUMN IF EXISTS age,
          ADD CONSTRAINT c CHECK (age > 0),
          DROP INDEX i, DROP FOREIGN KEY fk, RENAME INDEX a TO b,
          ALTER COLUMN name SET DEFAULT 'y',
          ENGINE = InnoDB ROW_FORMAT=DYNAMIC,
          ORDER BY name, id
    """)
    assert (found.tables, found.columns) == ((), (("users", ("name", "age")),))
    assert found.reasons == ("column `users`.`name` becomes NOT NULL and narrows from varchar(50) to varchar(20)",
                             "ALTER TABLE `users` DROP COLUMN `age`")


@pytest.mark.parametrize(("old", "new", "lost"), [
    ("varchar(50)", "varchar(10)", True), ("varchar(50)", "varchar(100)", False), ("varchar(50)", "VARCHAR(50)", False),
    ("char(10)", "char(5)", True), ("char(10)", "varchar(10)", False), ("varchar(10)", "char(10)", True),
    ("varbinary(10)", "varbinary(5)", True), ("binary(8)", "varbinary(8)", False), ("binary(8)", "binary(16)", True),
    ("text", "varchar(100)", True), ("text", "tinytext", True), ("tinytext", "text", False),
    ("text", "mediumtext", False), ("tinytext", "varchar(255)", False), ("varchar(60)", "tinytext", False),
    ("varchar(100)", "tinytext", True), ("blob", "tinyblob", True), ("blob", "longblob", False),
    ("int(11)", "smallint(6)", True), ("int(11)", "bigint", False), ("int(11)", "INTEGER", False),
    ("int(11)", "int(10) unsigned", True), ("int(10) unsigned", "bigint", False), ("int(10) unsigned", "int", True),
    ("tinyint(3) unsigned", "tinyint", True), ("tinyint(1)", "BOOL", False), ("bigint(20)", "serial", True),
    ("smallint(6)", "int4", False), ("mediumint(9)", "middleint", False),
    ("decimal(10,2)", "decimal(8,2)", True), ("decimal(10,2)", "decimal(10,1)", True),
    ("decimal(10,2)", "decimal(12,3)", False), ("decimal(10,2)", "NUMERIC(10,2)", False),
    ("decimal(10,2)", "decimal(10,2) unsigned", True), ("decimal(10,0)", "dec", False),
    ("enum('a','b','c')", "enum('a','b')", True), ("enum('a','b')", "enum('a','b','c')", False),
    ("enum('a','b')", "ENUM('b', \"a\")", False), ("enum('a','b')", "set('a','b')", True),
    ("set('x','y')", "set('x')", True), ("set('x','y')", "set('x','y','z')", False),
    ("datetime(6)", "datetime", True), ("datetime", "datetime(3)", False), ("time", "time(2)", False),
    ("float", "double", False), ("double", "float", True), ("double", "double precision", False),
    ("bit(8)", "bit(4)", True), ("bit(1)", "bit", False), ("year(4)", "year", False),
    ("int(11)", "varchar(20)", True), ("date", "datetime", True), ("longtext", "json", False),
])
def test_a_modified_column_is_at_risk_exactly_when_its_type_loses_values(old: str, new: str, lost: bool) -> None:
    characters = any(word in old for word in ("char", "text", "enum", "set"))
    current = snapshot(table("t", Column("c", old, True, **(UTF8 if characters else {}))))
    expected = (("t", ("c",)),) if lost else ()
    assert risk(f"ALTER TABLE t MODIFY c {new}", current) == ((), expected)
    assert risk(f"ALTER TABLE t CHANGE COLUMN `c` `d` {new}", current) == ((), expected)


def test_a_column_that_becomes_not_null_loses_its_nulls() -> None:
    assert risk("ALTER TABLE users MODIFY age int NOT NULL") == ((), (("users", ("age",)),))
    assert risk("ALTER TABLE users MODIFY age int(11) NULL DEFAULT NULL") == ((), ())
    assert risk("ALTER TABLE users MODIFY age int DEFAULT NULL NOT NULL") == ((), (("users", ("age",)),))


def test_a_character_set_that_may_lack_characters_puts_the_column_at_risk() -> None:
    latin = snapshot(table("t", text("a"), text("b", charset="latin1", collation="latin1_swedish_ci"),
                           number("n"), charset="latin1", collation="latin1_swedish_ci"))
    assert risk("ALTER TABLE users MODIFY name varchar(50) CHARACTER SET latin1") == ((), (("users", ("name",)),))
    assert risk("ALTER TABLE users MODIFY name varchar(50) COLLATE latin1_bin") == ((), (("users", ("name",)),))
    assert risk("ALTER TABLE users MODIFY name varchar(50) CHARSET utf8mb4 COLLATE utf8mb4_bin") == ((), ())
    assert risk("ALTER TABLE t MODIFY b varchar(50) CHARACTER SET utf8mb4", latin) == ((), ())
    # Without a character set the column takes the table's, which may lack characters it holds.
    assert risk("ALTER TABLE t MODIFY a varchar(50)", latin) == ((), (("t", ("a",)),))
    assert risk("ALTER TABLE t MODIFY b varchar(60)", latin) == ((), ())
    assert risk("ALTER TABLE t DEFAULT CHARSET=utf8mb4, MODIFY b varchar(60)", latin) == ((), ())
    assert risk("ALTER TABLE users MODIFY name national varchar(50)") == ((), (("users", ("name",)),))
    found = at_risk(APP, "ALTER TABLE users CONVERT TO CHARACTER SET latin1 COLLATE latin1_general_ci")
    assert (found.tables, found.columns) == ((), (("users", ("name", "bio")),))
    assert found.reasons[0] == "column `users`.`name` changes character set from utf8mb4 to latin1"
    assert risk("ALTER TABLE t CONVERT TO CHARSET utf8mb4", latin) == ((), ())


def test_generated_columns_hold_no_values_of_their_own() -> None:
    current = snapshot(table("t", number("a"), Column("g", "int(11)", True, generated="`a` + 1")))
    assert risk("ALTER TABLE t DROP COLUMN g", current) == ((), ())
    assert risk("ALTER TABLE t MODIFY g tinyint AS (a) VIRTUAL", current) == ((), ())
    assert risk("ALTER TABLE t MODIFY a int AS (id + 1) PERSISTENT", current) == ((), (("t", ("a",)),))


# --- a migration that destroys nothing --------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "CREATE TABLE t (id int PRIMARY KEY, name varchar(10))", "CREATE TABLE IF NOT EXISTS users (id int)",
    "CREATE TABLE copy LIKE users", "CREATE TABLE copy AS SELECT * FROM users", "ALTER TABLE users ADD COLUMN x int",
    "ALTER TABLE users ADD COLUMN (x int, y varchar(3) DEFAULT 'a,b')", "ALTER TABLE users ADD INDEX (name)",
    "ALTER TABLE users ADD UNIQUE KEY u (name), ADD FULLTEXT (bio), ADD PRIMARY KEY (id)",
    "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE",
    "ALTER TABLE users MODIFY name varchar(255) DEFAULT '' COMMENT 'widened'",
    "ALTER TABLE users ALTER COLUMN age SET DEFAULT 3, ALTER COLUMN name DROP DEFAULT",
    "ALTER TABLE users ENGINE=Aria, AUTO_INCREMENT=10, DEFAULT CHARSET=utf8mb4", "ALTER TABLE users FORCE",
    "ALTER TABLE users ADD PARTITION (PARTITION p3 VALUES LESS THAN (30))", "ALTER TABLE users REMOVE PARTITIONING",
    "ALTER TABLE users PARTITION BY HASH (id) PARTITIONS 4", "ALTER TABLE users COALESCE PARTITION 2",
    "ALTER TABLE users REORGANIZE PARTITION p0 INTO (PARTITION a VALUES LESS THAN (5), PARTITION b VALUES LESS THAN (9)"
    ")",
    "ALTER TABLE users EXCHANGE PARTITION p0 WITH TABLE archive", "ALTER TABLE users ADD SYSTEM VERSIONING",
    "ALTER TABLE users DROP PRIMARY KEY, DROP INDEX name, DROP KEY k, DROP CHECK c, DROP CONSTRAINT d",
    "ALTER TABLE users RENAME INDEX a TO b, ORDER BY name DESC", "ALTER TABLE users ADD UNIQUE KEY (name)",
    "CREATE VIEW v AS SELECT * FROM users",
    "CREATE OR REPLACE ALGORITHM=MERGE DEFINER=`a`@`%` SQL SECURITY INVOKER VIEW v AS SELECT 1",
    "DROP VIEW IF EXISTS v", "CREATE UNIQUE INDEX i ON users (name)", "DROP INDEX i ON users",
    "INSERT INTO users (id, name) VALUES (1, 'DROP TABLE users')", "INSERT IGNORE INTO users SELECT * FROM users",
    "SELECT * FROM users", "WITH c AS (SELECT * FROM users) SELECT * FROM c", "SET FOREIGN_KEY_CHECKS = 0",
    "START TRANSACTION", "BEGIN", "COMMIT",
    "ANALYZE TABLE users", "OPTIMIZE TABLE users", "CREATE DATABASE other", "ALTER DATABASE app CHARACTER SET utf8mb4",
    "GRANT SELECT ON app.* TO someone", "CREATE SEQUENCE s", "DROP PROCEDURE IF EXISTS p",
    "CREATE PROCEDURE p() BEGIN DELETE FROM users; END",
    "CREATE DEFINER=root@localhost FUNCTION f() RETURNS int RETURN 1",
    "CREATE TRIGGER tr BEFORE UPDATE ON users FOR EACH ROW SET NEW.age = 1",
    "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO INSERT INTO logs VALUES (1, 'x')", "-- only a comment",
])
def test_statements_that_destroy_nothing(statement: str) -> None:
    assert at_risk(APP, statement) == AtRisk((), (), ())


def test_a_migration_that_destroys_nothing_backs_up_nothing() -> None:
    migration = ["CREATE TABLE tags (id int PRIMARY KEY, name varchar(20))",
                 "ALTER TABLE users ADD COLUMN tag_id int, ADD INDEX (tag_id), MODIFY name varchar(80)",
                 "ALTER TABLE orders MODIFY total decimal(12,2), MODIFY user_id bigint",
                 "CREATE VIEW user_tags AS SELECT u.name, t.name AS tag FROM users u JOIN tags t ON t.id = u.tag_id",
                 "INSERT INTO tags VALUES (1, 'new');"]
    found = at_risk(APP, migration)
    assert found.is_empty and found == AtRisk((), (), ())
    assert at_risk(APP, ";\n".join(migration)) == found
    assert at_risk(APP, []) == found


# --- names: quoted, qualified, case ----------------------------------------------------------------


def test_names_quoted_qualified_and_in_other_cases() -> None:
    weird = snapshot(table("we`ird", text("col umn")), table("Mixed", number("Value")))
    assert risk("ALTER TABLE `app`.`we``ird` DROP COLUMN `col umn`", weird) == ((), (("we`ird", ("col umn",)),))
    assert risk("ALTER TABLE Mixed DROP COLUMN VALUE", weird) == ((), (("Mixed", ("Value",)),))  # columns: any case
    # With lower_case_table_names=0 table and database names are case-sensitive.
    assert risk("DROP TABLE mixed; DROP TABLE APP.Mixed", weird) == ((), ())
    insensitive = snapshot(table("Mixed", number("Value")), lower_case_table_names=2)
    assert risk("DROP TABLE APP.MIXED", insensitive) == (("Mixed",), ())
    assert risk("USE APP; TRUNCATE mixed", snapshot(table("mixed"), lower_case_table_names=1)) == (("mixed",), ())


# --- splitting one script ---------------------------------------------------------------------------


def test_a_script_is_split_respecting_quotes_comments_and_compound_bodies() -> None:
    script = """
        -- DROP TABLE users; (a comment)
        /* DROP TABLE orders; */
        # DROP TABLE logs;
        INSERT INTO logs VALUES (1, 'it''s; DROP TABLE users'), (2, "a \\"; DROP TABLE orders");
        CREATE PROCEDURE purge()
        BEGIN
          DECLARE done INT DEFAULT IF(1 > 0, 0, 1);
          IF NOT done THEN DELETE FROM users; END IF;
          WHILE done < 3 DO SET done = done + 1; END WHILE;
          CASE WHEN done THEN SELECT CASE 1 WHEN 1 THEN 'a' END; END CASE;
        END;
        /*!50001 DROP TABLE orders */;
        DROP TABLE logs
    """
    assert [statement.text.split()[0] for statement in split(script)] == ["INSERT", "CREATE", "DROP", "DROP"]
    found = at_risk(APP, script)
    assert found.tables == ("orders", "logs")
    assert found.reasons == ("DROP TABLE `orders`", "DROP TABLE `logs`")


def test_a_procedure_runs_only_when_called() -> None:
    procedure = "CREATE PROCEDURE purge() BEGIN DELETE FROM orders WHERE total = 0; END"
    assert risk(procedure) == ((), ())
    found = at_risk(APP, [procedure, "CALL purge()"])
    assert found.tables == ("orders",)
    assert found.reasons == ("statement not understood (procedure purge holds DELETE statements): CALL purge(); "
                             "backing up the tables it names (`orders`)",)
    captured = snapshot(USERS, ORDERS, routines=(Routine("tidy", "PROCEDURE", body="BEGIN SELECT 1; END"),))
    assert risk("CALL tidy()", captured) == ((), ())
    assert risk("CALL unknown()", captured) == (("users", "orders"), ())


def test_bodies_that_run_on_their_own_are_read_for_statements_that_destroy() -> None:
    assert risk("CREATE TRIGGER t AFTER DELETE ON users FOR EACH ROW DELETE FROM orders WHERE user_id = OLD.id") == (
        ("orders",), ())
    assert risk("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN UPDATE logs SET message = ''; END") == (("logs",), ())
    assert risk("BEGIN NOT ATOMIC DROP TABLE users; END") == (("users",), ())
    assert risk("IF (SELECT COUNT(*) FROM orders) = 0 THEN DROP TABLE orders; END IF; DROP TABLE logs") == (
        ("orders", "logs"), ())


# --- the fallback: never silence ---------------------------------------------------------------------


def test_a_statement_the_analysis_cannot_read_backs_up_the_tables_it_names() -> None:
    found = at_risk(APP, "FROBNICATE TABLE users WITH orders")
    assert found.tables == ("users", "orders")
    assert found.reasons == ("statement not understood (no rule for FROBNICATE statements): FROBNICATE TABLE users "
                             "WITH orders; backing up the tables it names (`orders`, `users`)",)
    assert risk("ALTER TABLE users FROBNICATE age") == (("users",), ())  # an unknown clause, whatever the others
    assert risk("ALTER TABLE users DROP COLUMN age, FROBNICATE") == (("users",), ())
    assert risk("DELETE users FROM users WHERE ((") == (("users",), ())  # sqlglot cannot read it
    assert risk("LOAD DATA INFILE '/tmp/x' REPLACE INTO TABLE logs") == (("logs",), ())


def test_a_statement_that_names_no_table_backs_up_every_table() -> None:
    found = at_risk(APP, "CALL maintenance()")
    assert found.tables == ("users", "orders", "logs")
    assert found.reasons == ("statement not understood (it calls a procedure the analysis does not know): "
                             "CALL maintenance(); it names no table, so backing up every table",)
    assert risk("EXECUTE stmt") == (("users", "orders", "logs"), ())


def test_text_that_ends_inside_a_quote_or_an_open_block_falls_back() -> None:
    unterminated = at_risk(APP, "UPDATE users SET name = 'oops; DROP TABLE orders")
    assert unterminated.tables == ("users", "orders")
    assert unterminated.reasons[0].startswith("statement not understood (it ends inside a quoted string or a comment)")
    # The body never closes, so the split cannot be trusted: the DROP after it must not vanish into it.
    assert risk("CREATE PROCEDURE p() BEGIN SELECT 1; DROP TABLE logs") == (("logs",), ())


def test_a_fallback_that_names_only_new_tables_still_says_so() -> None:
    found = at_risk(APP, "CREATE TABLE scratch (id int); FROBNICATE scratch")
    assert found.is_empty
    assert found.reasons == ("statement not understood (no rule for FROBNICATE statements): FROBNICATE scratch; "
                             "it names only tables that hold no current data (any more)",)


# --- the key columns are put back by ---------------------------------------------------------------


def test_columns_of_a_table_without_a_key_are_backed_up_with_the_whole_table() -> None:
    found = at_risk(APP, "ALTER TABLE logs DROP COLUMN message")
    assert (found.tables, found.columns) == (("logs",), ())
    assert found.reasons[-1] == ("table `logs` has no PRIMARY KEY or UNIQUE key of NOT NULL columns outside the "
                                 "columns at risk to put their values back by: backing up the whole table")
    # The key's own columns cannot put the rows back.
    assert risk("ALTER TABLE users DROP COLUMN age, DROP COLUMN id") == (("users",), ())


def test_a_unique_key_of_not_null_columns_is_a_key_too() -> None:
    unique = Index("email", "UNIQUE", (IndexPart("email"),))
    keyed = snapshot(Table("t", (text("email", nullable=False), number("n")), indexes=(unique,)))
    nullable = snapshot(Table("t", (text("email"), number("n")), indexes=(unique,)))
    assert risk("ALTER TABLE t DROP n", keyed) == ((), (("t", ("n",)),))
    assert risk("ALTER TABLE t DROP n", nullable) == (("t",), ())
    assert row_key(keyed.tables[0]) == ("email",)
    assert row_key(nullable.tables[0]) is None


def test_row_key_prefers_the_primary_key_and_avoids_keys_over_the_columns_at_risk() -> None:
    indexes = (Index("u", "UNIQUE", (IndexPart("code"),)), PRIMARY, Index("i", "INDEX", (IndexPart("n"),)),
               Index("e", "UNIQUE", (IndexPart(None, expression="`n` + 1"),)))
    keyed = Table("t", (ID, Column("code", "char(3)", False), number("n")), indexes=indexes)
    assert row_key(keyed) == ("id",)
    assert row_key(keyed, avoiding=("ID",)) == ("code",)
    assert row_key(keyed, avoiding=("id", "code")) is None


# --- against a target Snapshot -----------------------------------------------------------------------


def test_against_a_target_snapshot() -> None:
    target = snapshot(table("USERS", Column("name", "varchar(20)", True, **UTF8), number("age", "bigint(20)")),
                      table("orders", number("user_id"), number("total", "decimal(10,2)"),
                            text("note", charset="latin1", collation="latin1_swedish_ci")),
                      lower_case_table_names=1)
    current = snapshot(USERS, table("orders", number("user_id"), number("total", "decimal(10,2)"), text("note")),
                       LOGS, lower_case_table_names=1)
    found = at_risk(current, target)
    assert (found.tables, found.columns) == (("logs",), (("users", ("name", "bio")), ("orders", ("note",))))
    assert found.reasons == ("column `users`.`name` narrows from varchar(50) to varchar(20)",
                             "column `users`.`bio` is not in the target",
                             "column `orders`.`note` changes character set from utf8mb4 to latin1",
                             "table `logs` is not in the target")
    assert at_risk(current, current).is_empty


def test_a_target_does_not_guess_renames() -> None:
    renamed = snapshot(table("users", text("full_name"), number("age"), text("bio", "text")), ORDERS, LOGS)
    assert risk(renamed) == ((), (("users", ("name",)),))
    assert risk(snapshot(table("people", text("name"), number("age"), text("bio", "text")), ORDERS, LOGS)) == (
        ("users",), ())


def test_a_target_without_a_partition_drops_its_rows() -> None:
    def partitioned(*names: str) -> Snapshot:
        partitions = (f"PARTITION `{name}` VALUES LESS THAN ({10 * (i + 1)}) ENGINE = InnoDB"
                      for i, name in enumerate(names))
        clause = "PARTITION BY RANGE (`id`)\n(" + ",\n ".join(partitions) + ")"
        return snapshot(table("t", partitioning=clause))

    found = at_risk(partitioned("p0", "p1"), partitioned("p0"))
    assert (found.tables, found.reasons) == (("t",), ("partition `p1` of table `t` is not in the target",))
    assert at_risk(partitioned("p0"), partitioned("p0", "p1")).is_empty
    assert at_risk(partitioned("p0", "p1"), snapshot(table("t"))).is_empty  # REMOVE PARTITIONING keeps every row


# --- the property: exactly the dropped and the narrowed columns ------------------------------------

#: The grammar's types, each with the types it changes into without losing a value (itself included).
WIDENS_TO = {
    "tinyint(4)": {"tinyint(4)", "smallint(6)", "int(11)", "bigint(20)"},
    "smallint(6)": {"smallint(6)", "int(11)", "bigint(20)"},
    "int(11)": {"int(11)", "bigint(20)"},
    "bigint(20)": {"bigint(20)"},
    "int(10) unsigned": {"int(10) unsigned", "bigint(20)"},
    "varchar(10)": {"varchar(10)", "varchar(50)", "text"},
    "varchar(50)": {"varchar(50)", "text"},
    "text": {"text"},
    "decimal(5,2)": {"decimal(5,2)", "decimal(10,2)"},
    "decimal(10,2)": {"decimal(10,2)"},
    "enum('a','b')": {"enum('a','b')", "enum('a','b','c')"},
    "enum('a','b','c')": {"enum('a','b','c')"},
}
TYPES = sorted(WIDENS_TO)
#: Types of one kind, among which narrowing and widening mean something.
FAMILIES = [[t for t in TYPES if t.startswith(("tinyint", "smallint", "int", "bigint"))],
            [t for t in TYPES if t.startswith(("varchar", "text"))], [t for t in TYPES if t.startswith("decimal")],
            [t for t in TYPES if t.startswith("enum")]]


def fates(type_: str) -> st.SearchStrategy[object]:
    """What happens to a current column of ``type_``: kept, dropped, or modified once or twice (the first time
    maybe with CHANGE, which renames it too), mostly into a type of its own kind."""
    family = next(family for family in FAMILIES if type_ in family)
    definitions = st.tuples(st.sampled_from(family) | st.sampled_from(TYPES), st.booleans())
    return st.just("kept") | st.just("dropped") | st.tuples(st.lists(definitions, min_size=1, max_size=2),
                                                           st.booleans())


COLUMNS = st.sampled_from(TYPES).flatmap(lambda type_: st.tuples(st.tuples(st.just(type_), st.booleans()),
                                                                 fates(type_)))
DEFINITIONS = st.tuples(st.sampled_from(TYPES), st.booleans())  # a type, and whether NOT NULL


@settings(database=None, derandomize=True, max_examples=600, deadline=None)
@given(columns=st.lists(COLUMNS, min_size=1, max_size=5),
       added=st.lists(st.tuples(DEFINITIONS, st.booleans()), max_size=2), one_statement=st.booleans())
def test_property_the_at_risk_columns_are_the_dropped_and_the_narrowed_ones(
        columns: list[tuple[tuple[str, bool], object]], added: list[tuple[tuple[str, bool], bool]],
        one_statement: bool) -> None:
    current = Table("t", (ID, *(Column(f"c{i}", type_, not not_null) for i, ((type_, not_null), _) in
                               enumerate(columns))), indexes=(PRIMARY,), charset="utf8mb4")
    clauses: list[list[str]] = []  # the changes of each column, in order
    expected = []
    for number_, ((added_type, not_null), dropped) in enumerate(added):
        clauses.append([f"ADD COLUMN n{number_} {added_type}{' NOT NULL' if not_null else ''}"]
                       + ([f"DROP COLUMN n{number_}"] if dropped else []))
    for column, (_, fate) in zip(current.columns[1:], columns, strict=True):
        if fate == "kept":
            continue
        if fate == "dropped":
            clauses.append([f"DROP COLUMN {column.name}"])
            expected.append(column.name)
            continue
        steps, renamed = fate  # type: ignore[misc]
        name, changes = column.name, []
        for type_, not_null in steps:
            definition = f"{type_}{' NOT NULL' if not_null else ''}"
            if renamed and not changes:
                changes.append(f"CHANGE COLUMN {name} r{name} {definition}")
                name = f"r{name}"
            else:
                changes.append(f"MODIFY COLUMN {name} {definition}")
        clauses.append(changes)
        # Until a change loses values they are the current ones, which every later type must hold too.
        if any(type_ not in WIDENS_TO[column.type] or (column.nullable and not_null) for type_, not_null in steps):
            expected.append(column.name)
    # One ALTER may name each column once; otherwise each change is a statement of its own.
    if one_statement and all(len(changes) == 1 for changes in clauses):
        statements = [f"ALTER TABLE t {', '.join(changes[0] for changes in clauses)}"]
    else:
        statements = [f"ALTER TABLE t {change}" for changes in clauses for change in changes]
    found = at_risk(snapshot(current), statements)
    assert (found.tables, found.columns) == ((), ((("t", tuple(expected)),) if expected else ()))
