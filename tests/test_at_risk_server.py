"""at_risk against the real server: the type rules hold for what MariaDB actually does, and the SQL and
target-schema readings of sqldef's migrations agree.

For each type change, a column of the old type holds values at the edges of that type; the
ALTER runs in a non-strict mode (which truncates rather than refuses) and the values are
compared with a copy. A change at_risk calls lossless must keep every value; a narrowing must
lose the edge values. The snapshot is captured from the server, so the column types are the
server's own spelling, and the ALTER is the SQL the analysis reads.
"""

from __future__ import annotations

import contextlib

import pytest
from migration_pairs import database_for, load_state, sqldef_pairs
from test_snapshot_support import connect, scratch_database

from schemasync_backup import Snapshot
from schemasync_backup.model.at_risk import at_risk
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

_INT_EDGES = {"tinyint": ("-128", "127"), "int": ("-2147483648", "2147483647"),
              "bigint": ("-9223372036854775808", "9223372036854775807")}
#: Old type, the values it holds (SQL), and new types with whether they lose some of those values.
CASES: list[tuple[str, tuple[str, ...], tuple[tuple[str, bool], ...]]] = [
    ("tinyint", _INT_EDGES["tinyint"], (("smallint", False), ("tinyint unsigned", True), ("bool", False),
                                         ("int unsigned", True), ("mediumint", False))),
    ("int", _INT_EDGES["int"], (("bigint", False), ("integer", False), ("int(5)", False), ("mediumint", True),
                                 ("int unsigned", True), ("bigint unsigned", True), ("int NOT NULL", True))),
    ("int unsigned", ("0", "4294967295"), (("bigint", False), ("int", True), ("int unsigned zerofill", False),
                                           ("bigint unsigned", False))),
    ("bigint", _INT_EDGES["bigint"], (("int", True), ("bigint unsigned", True))),
    ("decimal(10,2)", ("-99999999.99", "99999999.99", "0.01"),
     (("decimal(12,2)", False), ("decimal(12,3)", False), ("numeric(11,2)", False), ("decimal(8,2)", True),
      ("decimal(10,1)", True), ("decimal(10,2) unsigned", True))),
    ("varchar(50)", ("REPEAT('x', 50)", "'é😀  '", "''"),
     (("varchar(100)", False), ("varchar(10)", True), ("text", False), ("tinytext", False), ("char(50)", True),
      ("varchar(50) CHARACTER SET latin1", True), ("varchar(50) CHARACTER SET utf8mb3", True),
      ("varchar(50) COLLATE utf8mb4_bin", False), ("long varchar", False), ("national varchar(50)", True))),
    ("char(10)", ("'abcdefghij'", "'a'"), (("char(5)", True), ("varchar(10)", False), ("char(20)", False))),
    ("text", ("REPEAT('y', 65535)", "'😀'"), (("mediumtext", False), ("longtext", False), ("tinytext", True),
                                             ("varchar(300)", True))),
    ("tinytext", ("REPEAT('z', 255)",), (("varchar(255)", False), ("varchar(254)", True), ("text", False))),
    ("varbinary(10)", ("x'00ff00ff00ff00ff00ff'", "x'01'"),
     (("varbinary(20)", False), ("varbinary(5)", True), ("binary(10)", True), ("blob", False))),
    ("binary(4)", ("x'01020304'", "x'01'"), (("varbinary(4)", False), ("binary(8)", True), ("binary(2)", True))),
    ("enum('a','b','c')", ("'a'", "'c'"),
     (("enum('a','b','c','d')", False), ("enum('c','b','a')", False), ("enum('a','b')", True))),
    ("set('x','y','z')", ("'x,z'", "'y'"), (("set('x','y','z','w')", False), ("set('x','y')", True))),
    ("datetime(6)", ("'2024-01-02 03:04:05.123456'",), (("datetime(6)", False), ("datetime(3)", True))),
    ("time", ("'12:34:56'",), (("time(2)", False),)),
    ("float", ("3.5",), (("double", False),)),
    ("double", ("0.1", "1e300"), (("float", True), ("double precision", False))),
    ("bit(8)", ("b'10101010'",), (("bit(16)", False), ("bit(4)", True))),
    ("year", ("2024",), (("year(4)", False),)),
    ("varchar(20) CHARACTER SET latin1", ("'é'",),
     (("varchar(20) CHARACTER SET utf8mb4", False), ("varchar(20)", False), ("varchar(20) CHARACTER SET ascii", True))),
    ("varchar(20) CHARACTER SET ascii", ("'abc'",), (("varchar(20) CHARACTER SET latin1", False),)),
    ("varchar(20) CHARACTER SET utf8mb3", ("'é'",), (("varchar(20) CHARACTER SET utf8mb4", False),)),
    ("varchar(20) CHARACTER SET ucs2", ("'é'",), (("varchar(20) CHARACTER SET utf8mb3", False),)),
]
CHANGES = [(old, values, new, lost) for old, values, news in CASES for new, lost in news]


@pytest.mark.parametrize(("old", "values", "new", "lost"), CHANGES,
                         ids=[f"{old} -> {new}" for old, _, new, _ in CHANGES])
def test_the_type_rules_hold_for_what_the_server_does(mariadb: ThrowawayServer, old: str, values: tuple[str, ...],
                                                       new: str, lost: bool) -> None:
    with scratch_database(mariadb) as database, contextlib.closing(connect(mariadb, database)) as connection, \
            connection.cursor() as cursor:
        for name in ("t", "o"):
            cursor.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, c {old})")
        rows = ", ".join(f"({number}, {value})" for number, value in enumerate((*values, "NULL")))
        cursor.execute(f"INSERT INTO t VALUES {rows}")
        cursor.execute("INSERT INTO o SELECT * FROM t")
        snapshot = Snapshot.capture(connection, database)
        alter = f"ALTER TABLE t MODIFY c {new}"
        found = at_risk(snapshot, alter)
        cursor.execute("SET SESSION sql_mode = ''")
        cursor.execute(alter)
        cursor.execute(f"SELECT COUNT(*) FROM t JOIN o USING (id) WHERE NOT ({_kept(old, new)})")
        (changed,) = cursor.fetchone()
    assert found.tables == ()
    assert found.columns == ((("t", ("c",)),) if lost else ()), found.reasons
    assert bool(changed) == lost, f"{changed} of {len(values) + 1} values changed"


def _kept(old: str, new: str) -> str:
    """SQL that holds for a row that kept its value: bytes compare as bytes, characters as characters (whatever
    the character set spells them in), numbers and dates as such (a decimal's scale is no change)."""
    types = f"{old} {new}"
    if "binary" in types or "blob" in types:
        return "HEX(t.c) <=> HEX(o.c)"
    if any(word in types for word in ("char", "text", "enum", "set")):
        return "HEX(CONVERT(t.c USING utf8mb4)) <=> HEX(CONVERT(o.c USING utf8mb4))"
    return "t.c <=> o.c"


PAIRS = [pair for pair in sqldef_pairs() if pair.get("up_applies") and pair.get("up_reproduces_desired")]


@pytest.mark.corpus
@pytest.mark.skipif(not PAIRS, reason="needs ../shared/corpus/migrations")
def test_the_sql_and_the_target_agree_on_sqldefs_migrations(mariadb: ThrowawayServer) -> None:
    """Reading a migration's SQL finds what comparing with its result finds, except that the SQL shows renames
    (which keep the data) that the comparison cannot tell from a drop; and the SQL reads without fallbacks."""
    disagreements = []
    for pair in PAIRS:
        database = database_for(pair)
        load_state(mariadb, database, str(pair["current"]))
        current = Snapshot.capture(mariadb.dsn, database)
        load_state(mariadb, database, str(pair["desired"]))
        target = Snapshot.capture(mariadb.dsn, database)
        from_sql, from_target = at_risk(current, str(pair["up"])), at_risk(current, target)
        # A trigger's or event's body that destroys is not followed into its branches: that fallback is meant.
        fell_back = [reason for reason in from_sql.reasons
                     if reason.startswith("statement not understood") and "body holds" not in reason]
        renames = any(word in str(pair["up"]).upper() for word in ("RENAME", "CHANGE COLUMN"))
        same = (from_sql.tables, from_sql.columns) == (from_target.tables, from_target.columns)
        if fell_back or not (same or (renames and _within(from_sql, from_target))):
            disagreements.append(f"{pair['id']}:\n  sql:    {from_sql}\n  target: {from_target}")
    assert disagreements == []


def _within(smaller: object, larger: object) -> bool:
    """Whether everything ``smaller`` backs up, ``larger`` backs up too."""
    def items(found: object) -> set[tuple[str, str | None]]:
        whole = {(table, None) for table in found.tables}  # type: ignore[attr-defined]
        return whole | {(table, column) for table, columns in found.columns for column in columns}  # type: ignore[attr-defined]

    big = items(larger)
    return all(item in big or (item[0], None) in big for item in items(smaller))
