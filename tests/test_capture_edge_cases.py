"""Schemas that capture used to get wrong, on the real server: Aria and MyISAM table options the
information_schema reports differently from SHOW CREATE TABLE, routines made under
ALLOW_INVALID_DATES, views of a definer that does not exist, and MERGE tables over the tables of
another database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_snapshot_support import assert_restores, connect, execute, literal, scratch_database

from schemasync_backup import Snapshot
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.errors import QueryError
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

#: MyISAM refuses TRANSACTIONAL (and every engine an option it does not know) unless told to keep
#: it, and not in a strict mode.
_KEEP_BAD_OPTIONS = "SET SESSION sql_mode = 'IGNORE_BAD_TABLE_OPTIONS'"
#: Tables whose options information_schema and SHOW CREATE TABLE report differently.
_OPTION_TABLES = {
    "aria": "ENGINE=Aria",
    "aria_no_checksum": "ENGINE=Aria PAGE_CHECKSUM=0",
    "aria_checksum": "ENGINE=Aria PAGE_CHECKSUM=1",
    "aria_not_transactional": "ENGINE=Aria TRANSACTIONAL=0",
    "aria_transactional": "ENGINE=Aria TRANSACTIONAL=1 PAGE_CHECKSUM=0",
    "aria_dynamic": "ENGINE=Aria ROW_FORMAT=DYNAMIC",
    "aria_versioned": "ENGINE=Aria WITH SYSTEM VERSIONING",
    "aria_partitioned": "ENGINE=Aria PAGE_CHECKSUM=0 PARTITION BY HASH (x) PARTITIONS 2",
    "myisam_not_transactional": "ENGINE=MyISAM TRANSACTIONAL=0",
    "myisam_transactional": "ENGINE=MyISAM TRANSACTIONAL=1 PAGE_CHECKSUM=0",
    # The option words inside the comment and the value must not count, nor end the option early.
    "myisam_unknown_option": "ENGINE=MyISAM TRANSACTIONAL=0 `colour`='red */ blue' "
                             "COMMENT='/* TRANSACTIONAL=1 */ PAGE_CHECKSUM=0'",
    "innodb_not_transactional": "ENGINE=InnoDB TRANSACTIONAL=0",
}


def _option_tables() -> list[str]:
    statements = [_KEEP_BAD_OPTIONS]
    statements += [f"CREATE TABLE {q(name)} (x int) {options}" for name, options in _OPTION_TABLES.items()]
    # An Aria table turned MyISAM keeps its TRANSACTIONAL, which SHOW CREATE then puts in a comment.
    statements += ["CREATE TABLE converted (x int) ENGINE=Aria TRANSACTIONAL=0", "ALTER TABLE converted ENGINE=MyISAM"]
    return [*statements, "CREATE SEQUENCE aria_sequence ENGINE=Aria"]


@pytest.fixture
def database(mariadb: ThrowawayServer) -> Iterator[str]:
    with scratch_database(mariadb) as name:
        yield name


def test_aria_and_myisam_options_restore_with_the_same_hash(mariadb: ThrowawayServer, database: str) -> None:
    execute(mariadb, database, *_option_tables())
    snapshot = Snapshot.capture(mariadb.dsn, database)
    assert "/* TRANSACTIONAL=0 */" in snapshot.table("myisam_not_transactional").create_sql
    assert "PAGE_CHECKSUM=1" in snapshot.table("aria").create_sql
    # Restored through restore_snapshot and through the mariadb client: same texts, same hash.
    assert_restores(mariadb, snapshot)


def test_a_rollback_that_recreates_aria_and_myisam_tables_is_verified(
    mariadb: ThrowawayServer, database: str, tmp_path: Path
) -> None:
    execute(mariadb, database, *_option_tables())
    store = BackupStore.open(str(tmp_path / "backups"))
    info = store.create(mariadb.dsn, database)
    execute(mariadb, database, *(f"DROP TABLE {q(name)}" for name in [*_OPTION_TABLES, "converted", "aria_sequence"]))
    planner = RollbackPlanner(store)
    assert planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id)).verified
    assert planner.plan(mariadb.dsn, info.id).is_empty


@pytest.mark.parametrize("change", [
    "ALTER TABLE aria PAGE_CHECKSUM=0",
    "ALTER TABLE aria TRANSACTIONAL=0",
    # Already in effect, but now given: SHOW CREATE prints it, and it stays when ROW_FORMAT changes.
    "ALTER TABLE aria_checksum TRANSACTIONAL=1",
    "ALTER TABLE myisam_not_transactional TRANSACTIONAL=1",
    "ALTER TABLE myisam_transactional PAGE_CHECKSUM=1",
    "ALTER TABLE myisam_unknown_option `colour`='green'",
])
def test_a_real_option_change_changes_the_hash(mariadb: ThrowawayServer, database: str, change: str) -> None:
    execute(mariadb, database, *_option_tables())
    before = Snapshot.capture(mariadb.dsn, database)
    execute(mariadb, database, _KEEP_BAD_OPTIONS, change)
    assert Snapshot.capture(mariadb.dsn, database).schema_hash != before.schema_hash


def test_routines_made_under_allow_invalid_dates_restore(mariadb: ThrowawayServer, database: str) -> None:
    execute(
        mariadb, database,
        "CREATE TABLE t (d date)",
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES,STRICT_TRANS_TABLES'",
        "CREATE PROCEDURE p() INSERT INTO t VALUES ('2024-02-31')",
        "CREATE FUNCTION f() RETURNS date RETURN '2024-02-30'",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.d = '2024-04-31'",
    )
    snapshot = Snapshot.capture(mariadb.dsn, database)
    # information_schema.ROUTINES spells the mode INVALID_DATES, which SET sql_mode refuses.
    assert {routine.sql_mode for routine in snapshot.routines} == {"STRICT_TRANS_TABLES,INVALID_DATES"}
    assert_restores(mariadb, snapshot)
    restored = Snapshot.capture(mariadb.dsn, database + "_r")
    assert [r.sql_mode for r in restored.routines] == [r.sql_mode for r in snapshot.routines]
    assert [t.sql_mode for t in restored.triggers] == [t.sql_mode for t in snapshot.triggers]


def _views_of_a_missing_definer(source: str, other: str) -> list[str]:
    """Views the server prints with the source database's name in them, and views that must keep another's."""
    gone = "DEFINER='departed'@'localhost'"
    qualified = f"{q(source)}.`t`."
    return [
        "CREATE TABLE t (c int, `we``ird` int)",
        f"CREATE TABLE {q(source)} (c int)",  # a table named like its database
        "CREATE SEQUENCE s",
        "CREATE FUNCTION f(a int) RETURNS int RETURN a + 1",
        f"CREATE TABLE {q(other)}.t (c int)",
        "CREATE USER IF NOT EXISTS 'departed'@'localhost'",
        f"CREATE {gone} VIEW plain AS SELECT t.c, t.`we``ird` FROM t",
        f"CREATE {gone} VIEW named_like_it AS SELECT {q(source)}.c FROM {q(source)}",
        f"CREATE {gone} VIEW aliased_like_it AS SELECT {q(source)}.c FROM t AS {q(source)}",
        f"CREATE {gone} VIEW derived AS SELECT d.c FROM (SELECT c FROM t) AS d",
        f"CREATE {gone} VIEW crossing AS SELECT t.c, o.c AS oc FROM t JOIN {q(other)}.t AS o",
        f"CREATE {gone} VIEW quoting AS SELECT {literal(qualified)} AS text, "
        f"{literal(q(source))} AS name FROM t",
        f"CREATE {gone} VIEW calling AS SELECT nextval(s) AS n, f(1) AS one, {q(source)}.f(2) AS two",
        # With its definer present, a view that reads another database prints every name qualified.
        f"CREATE VIEW present AS SELECT t.c, o.c AS oc FROM t JOIN {q(other)}.t AS o",
        "DROP USER 'departed'@'localhost'",
    ]


def _show_create_view(server: ThrowawayServer, database: str, view: str) -> str:
    with contextlib.closing(connect(server, database)) as connection, connection.cursor() as cursor:
        cursor.execute(f"SHOW CREATE VIEW {q(view)}")
        return str(cursor.fetchone()[1])


def test_views_of_a_missing_definer_restore_under_another_name(mariadb: ThrowawayServer, database: str) -> None:
    source, other = database + "_src`x", database + "_ext"
    execute(mariadb, database, f"CREATE DATABASE {q(source)}", f"CREATE DATABASE {q(other)}")
    execute(mariadb, source, *_views_of_a_missing_definer(source, other))
    assert f"{q(source)}.`t`.`c`" in _show_create_view(mariadb, source, "plain")
    snapshot = Snapshot.capture(mariadb.dsn, source)
    views = {view.name: view for view in snapshot.views}
    assert views["plain"].definition == "select `t`.`c` AS `c`,`t`.`we``ird` AS `we``ird` from `t`"
    assert views["named_like_it"].definition == f"select {q(source)}.`c` AS `c` from {q(source)}"
    assert views["aliased_like_it"].definition == f"select {q(source)}.`c` AS `c` from `t` {q(source)}"
    assert f"join {q(other)}.`t` `o`" in views["crossing"].definition
    assert f"join {q(other)}.`t` `o`" in views["present"].definition
    assert views["quoting"].definition.startswith("select " + literal(f"{q(source)}.`t`."))
    assert views["calling"].definition == "select nextval(`s`) AS `n`,`f`(1) AS `one`,`f`(2) AS `two`"
    # Restored under other names (restore_snapshot and the mariadb client): same texts, same hash.
    assert_restores(mariadb, snapshot)
    for view in ("plain", "crossing", "calling", "present"):
        assert q(source) not in _show_create_view(mariadb, source + "_r", view), view


def _merge_tables(other: str) -> list[str]:
    return [
        f"CREATE TABLE {q(other)}.part1 (x int) ENGINE=MyISAM",
        f"CREATE TABLE {q(other)}.part2 (x int) ENGINE=MyISAM",
        "CREATE TABLE own (x int) ENGINE=MyISAM",
        f"CREATE TABLE merged (x int) ENGINE=MRG_MyISAM UNION=({q(other)}.part1, {q(other)}.part2) "
        "INSERT_METHOD=LAST",
        f"CREATE TABLE mixed (x int) ENGINE=MRG_MyISAM UNION=(own, {q(other)}.part1)",
    ]


def test_merge_tables_over_another_databases_tables_restore(mariadb: ThrowawayServer, database: str) -> None:
    other = database + "_ext"
    execute(mariadb, database, f"CREATE DATABASE {q(other)}", *_merge_tables(other))
    snapshot = Snapshot.capture(mariadb.dsn, database)
    assert f"UNION=(`own`,{q(other)}.`part1`)" in snapshot.table("mixed").create_sql
    assert_restores(mariadb, snapshot)


def test_a_merge_table_whose_union_table_is_gone_is_named(mariadb: ThrowawayServer, database: str) -> None:
    other = database + "_ext"
    execute(mariadb, database, f"CREATE DATABASE {q(other)}", *_merge_tables(other),
            f"DROP TABLE {q(other)}.part2")
    with pytest.raises(QueryError, match=r"MERGE table `merged`.*UNION") as raised:
        Snapshot.capture(mariadb.dsn, database)
    assert raised.value.subject == "merged"
    assert raised.value.code == 1168
    assert f"'{other}.part2'" in raised.value.message  # the server's word on which one


def test_a_restore_whose_merge_tables_miss_their_union_tables_is_named(
    mariadb: ThrowawayServer, database: str
) -> None:
    other = database + "_ext"
    execute(mariadb, database, f"CREATE DATABASE {q(other)}", *_merge_tables(other))
    snapshot = Snapshot.capture(mariadb.dsn, database)
    execute(mariadb, database, f"DROP DATABASE {q(other)}")
    # The server creates a MERGE table without opening its UNION: the restore succeeds, the capture cannot.
    restore_snapshot(snapshot, mariadb.dsn, database + "_r")
    with pytest.raises(QueryError, match="MERGE table `merged`"):
        Snapshot.capture(mariadb.dsn, database + "_r")
