"""The canonical form and schema hash on hand-built snapshots: no server needed.

MySQL 8 and MariaDB spell one schema differently; these snapshots are what capture builds from
each server's information_schema, written out by hand.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from schemasync_backup.model.canonical import canonical_default, canonical_form, canonical_type
from schemasync_backup.model.snapshot import (
    CheckConstraint,
    Column,
    Event,
    ForeignKey,
    Index,
    IndexPart,
    Parameter,
    Routine,
    ServerInfo,
    Snapshot,
    Table,
    Trigger,
    View,
)

MARIADB = ServerInfo(flavor="mariadb", version="10.11.19", sql_mode="STRICT_TRANS_TABLES", lower_case_table_names=0)
MYSQL = ServerInfo(flavor="mysql", version="8.0.36", sql_mode="ONLY_FULL_GROUP_BY", lower_case_table_names=0)


def _snapshot(table: Table, *, server: ServerInfo = MARIADB, **changes: Any) -> Snapshot:
    base = Snapshot(database="shop", charset="utf8mb4", collation="utf8mb4_general_ci", server=server,
                    tables=(table,), captured_at="2026-01-01T00:00:00+00:00")
    return attrs.evolve(base, **changes)


def _mariadb_orders() -> Table:
    """``orders`` as MariaDB reports it: display widths, longtext JSON, lowercase functions."""
    return Table(
        name="orders",
        columns=(
            Column("id", "int(11)", nullable=False, auto_increment=True),
            Column("flag", "tinyint(1)", nullable=False, default="0"),
            Column("doc", "longtext", nullable=True, default="NULL", charset="utf8mb4", collation="utf8mb4_bin"),
            Column("made", "timestamp", nullable=False, default="current_timestamp()",
                   on_update="current_timestamp()"),
            Column("note", "varchar(20)", nullable=True, default="NULL", charset="utf8mb4",
                   collation="utf8mb4_general_ci"),
        ),
        indexes=(Index("PRIMARY", "PRIMARY", (IndexPart("id"),), algorithm="BTREE"),),
        checks=(CheckConstraint("doc", "json_valid(`doc`)", column="doc"),),
        engine="InnoDB",
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
        row_format="Dynamic",
        auto_increment=17,
        create_sql="CREATE TABLE `orders` (...) AUTO_INCREMENT=17",
    )


def _mysql_orders() -> Table:
    """The same table as MySQL 8 reports it."""
    return Table(
        name="orders",
        columns=(
            Column("id", "int", nullable=False, auto_increment=True),
            Column("flag", "tinyint(1)", nullable=False, default="0"),
            Column("doc", "json", nullable=True, default="NULL"),
            Column("made", "timestamp", nullable=False, default="CURRENT_TIMESTAMP", on_update="CURRENT_TIMESTAMP"),
            Column("note", "varchar(20)", nullable=True, default="NULL", charset="utf8mb4",
                   collation="utf8mb4_general_ci"),
        ),
        indexes=(Index("PRIMARY", "PRIMARY", (IndexPart("id"),), algorithm="BTREE"),),
        engine="InnoDB",
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
        row_format="Dynamic",
        auto_increment=3,
        create_sql="CREATE TABLE `orders` (...) /* MySQL spelling */",
    )


def test_mysql8_and_mariadb_spellings_hash_the_same() -> None:
    mariadb = _snapshot(_mariadb_orders())
    mysql = _snapshot(_mysql_orders(), server=MYSQL, database="other", captured_at="2030-05-05T05:05:05+00:00")
    assert canonical_form(mariadb) == canonical_form(mysql)
    assert mariadb.schema_hash == mysql.schema_hash


def test_mariadb_json_alias_is_json_without_its_check() -> None:
    form = canonical_form(_snapshot(_mariadb_orders()))["tables"]["orders"]
    doc = next(column for column in form["columns"] if column[0] == "doc")
    assert doc[1] == "json"
    assert form["checks"] == {}


def test_json_alias_is_recognised_for_a_column_name_with_spaces() -> None:
    table = _mariadb_orders()
    renamed = attrs.evolve(
        table,
        columns=tuple(attrs.evolve(c, name="my doc") if c.name == "doc" else c for c in table.columns),
        checks=(CheckConstraint("my doc", "json_valid(`my doc`)", column="my doc"),),
    )
    mysql = _mysql_orders()
    mysql = attrs.evolve(
        mysql, columns=tuple(attrs.evolve(c, name="my doc") if c.name == "doc" else c for c in mysql.columns)
    )
    assert _snapshot(renamed).schema_hash == _snapshot(mysql, server=MYSQL).schema_hash


def test_a_real_json_check_of_another_column_is_kept() -> None:
    table = _mariadb_orders()
    extra = attrs.evolve(table, checks=(*table.checks, CheckConstraint("note_json", "json_valid(`note`)")))
    assert _snapshot(extra).schema_hash != _snapshot(table).schema_hash


@pytest.mark.parametrize(
    ("reported", "canonical"),
    [
        ("int(11)", "int"),
        ("INT", "int"),
        ("int(10) unsigned", "int unsigned"),
        ("bigint(20)", "bigint"),
        ("smallint(6)", "smallint"),
        ("mediumint(9)", "mediumint"),
        ("tinyint(4)", "tinyint"),
        ("tinyint(1)", "tinyint(1)"),
        ("tinyint(1) unsigned", "tinyint(1) unsigned"),
        ("int(5) unsigned zerofill", "int(5) unsigned zerofill"),
        ("year(4)", "year"),
        ("decimal(10,2)", "decimal(10,2)"),
        ("varchar(255)", "varchar(255)"),
        ("ENUM('A','b''c')", "enum('A','b''c')"),
    ],
)
def test_canonical_type(reported: str, canonical: str) -> None:
    assert canonical_type(reported) == canonical


def test_display_width_folds_but_zerofill_width_and_enum_case_do_not() -> None:
    assert canonical_type("int(11)") == canonical_type("int")
    assert canonical_type("tinyint(1)") != canonical_type("tinyint(4)")
    assert canonical_type("int(5) zerofill") != canonical_type("int(8) zerofill")
    assert canonical_type("enum('a')") != canonical_type("enum('A')")


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("CURRENT_TIMESTAMP", "current_timestamp()"),
        ("current_timestamp()", "current_timestamp()"),
        ("now()", "current_timestamp()"),
        ("CURRENT_TIMESTAMP(3)", "current_timestamp(3)"),
        ("current_timestamp(3)", "current_timestamp(3)"),
        ("localtimestamp", "current_timestamp()"),
        ("'CURRENT_TIMESTAMP'", "'CURRENT_TIMESTAMP'"),
        (None, None),
    ],
)
def test_canonical_default(spelling: str | None, canonical: str | None) -> None:
    assert canonical_default(spelling) == canonical


def test_volatile_and_inherited_things_do_not_change_the_hash() -> None:
    table = _mariadb_orders()
    base = _snapshot(table)
    explicit = attrs.evolve(
        table,
        columns=tuple(attrs.evolve(c, collation="utf8mb4_general_ci") if c.name == "note" else c
                      for c in table.columns),
    )
    inherited = attrs.evolve(
        table, columns=tuple(attrs.evolve(c, collation=None) if c.name == "note" else c for c in table.columns),
        collation=None,
    )
    same = [
        _snapshot(attrs.evolve(table, auto_increment=99999, create_sql="CREATE TABLE x AUTO_INCREMENT=99999")),
        _snapshot(attrs.evolve(table, row_format="Compact")),
        _snapshot(table, captured_at="2031-01-01T00:00:00+00:00", database="copy_of_shop"),
        _snapshot(table, server=attrs.evolve(MARIADB, version="11.4.2", sql_mode="")),
        _snapshot(explicit),
        _snapshot(inherited),
    ]
    assert {snapshot.schema_hash for snapshot in same} == {base.schema_hash}


def _full() -> Snapshot:
    table = _mariadb_orders()
    child = Table(
        name="lines",
        columns=(Column("id", "int(11)", nullable=False), Column("order_id", "int(11)", nullable=True)),
        indexes=(Index("PRIMARY", "PRIMARY", (IndexPart("id"),)), Index("order_id", "INDEX", (IndexPart("order_id"),))),
        foreign_keys=(ForeignKey("fk", ("order_id",), "orders", ("id",), on_delete="CASCADE"),),
        checks=(CheckConstraint("positive", "`id` > 0"),),
        comment="order lines",
    )
    return _snapshot(
        table,
        tables=(child, table),
        views=(View("v", "select `orders`.`id` AS `id` from `orders`"),),
        triggers=(Trigger("t", "orders", "BEFORE", "INSERT", 1, "SET NEW.flag = 1"),),
        routines=(
            Routine("f", "FUNCTION", (Parameter("x", "int(11)"),), returns="varchar(5)",
                    returns_collation="latin1_swedish_ci", body="RETURN 'x'"),
            Routine("p", "PROCEDURE", (Parameter("s", "varchar(5)", "IN", "latin1_swedish_ci"),), body="SELECT 1"),
        ),
        events=(Event("e", "EVERY 1 DAY STARTS '2030-01-01 00:00:00'", "DELETE FROM lines"),),
    )


def _change_table(snapshot: Snapshot, name: str, **changes: Any) -> Snapshot:
    return attrs.evolve(snapshot, tables=tuple(
        attrs.evolve(t, **changes) if t.name == name else t for t in snapshot.tables
    ))


def _changes() -> dict[str, Snapshot]:
    full = _full()
    lines = full.table("lines")
    orders = full.table("orders")
    routine_f, routine_p = full.routines
    return {
        "add column": _change_table(full, "lines", columns=(*lines.columns, Column("qty", "int(11)", True))),
        "drop column": _change_table(full, "orders", columns=orders.columns[:-1]),
        "column type": _change_table(full, "lines", columns=(lines.columns[0], Column("order_id", "bigint(20)", True))),
        "column collation": _change_table(full, "orders", columns=tuple(
            attrs.evolve(c, collation="utf8mb4_bin") if c.name == "note" else c for c in orders.columns)),
        "column order": _change_table(full, "lines", columns=lines.columns[::-1]),
        "drop index": _change_table(full, "lines", indexes=lines.indexes[:1]),
        "index descending": _change_table(full, "lines", indexes=(
            lines.indexes[0], Index("order_id", "INDEX", (IndexPart("order_id", descending=True),)))),
        "index prefix": _change_table(full, "lines", indexes=(
            lines.indexes[0], Index("order_id", "INDEX", (IndexPart("order_id", prefix_length=3),)))),
        "unique": _change_table(full, "lines", indexes=(
            lines.indexes[0], Index("order_id", "UNIQUE", (IndexPart("order_id"),)))),
        "fk rule": _change_table(full, "lines", foreign_keys=(
            ForeignKey("fk", ("order_id",), "orders", ("id",), on_delete="SET NULL"),)),
        "drop fk": _change_table(full, "lines", foreign_keys=()),
        "check": _change_table(full, "lines", checks=(CheckConstraint("positive", "`id` >= 0"),)),
        "table comment": _change_table(full, "lines", comment="changed"),
        "table collation": _change_table(full, "lines", collation="utf8mb4_unicode_ci"),
        "partitioning": _change_table(full, "lines", partitioning="PARTITION BY HASH (`id`) PARTITIONS 2"),
        "options": _change_table(full, "lines", create_options="row_format=COMPRESSED"),
        "view body": attrs.evolve(full, views=(View("v", "select `orders`.`id` + 1 AS `id` from `orders`"),)),
        "trigger body": attrs.evolve(
            full, triggers=(Trigger("t", "orders", "BEFORE", "INSERT", 1, "SET NEW.flag = 2"),)
        ),
        "routine body": attrs.evolve(full, routines=(attrs.evolve(routine_f, body="RETURN 'y'"), routine_p)),
        "routine return charset": attrs.evolve(full, routines=(
            attrs.evolve(routine_f, returns_collation="utf8mb4_general_ci"), routine_p)),
        "parameter charset": attrs.evolve(full, routines=(routine_f, attrs.evolve(
            routine_p, parameters=(Parameter("s", "varchar(5)", "IN", "utf8mb4_general_ci"),)))),
        "event schedule": attrs.evolve(full, events=(
            Event("e", "EVERY 2 DAY STARTS '2030-01-01 00:00:00'", "DELETE FROM lines"),)),
        "sequence options": attrs.evolve(full, tables=(*full.tables, Table(
            "s", (), kind="SEQUENCE", create_sql="CREATE SEQUENCE `s` start with 1 increment by 2 ENGINE=InnoDB"))),
        "database charset": attrs.evolve(full, charset="latin1", collation="latin1_swedish_ci"),
    }


@pytest.mark.parametrize("change", list(_changes()))
def test_a_real_change_changes_the_hash(change: str) -> None:
    assert _changes()[change].schema_hash != _full().schema_hash


def test_every_change_hashes_differently() -> None:
    hashes = [snapshot.schema_hash for snapshot in _changes().values()]
    assert len(set(hashes)) == len(hashes)


def test_sequence_options_are_hashed() -> None:
    def sequence(increment: int) -> Table:
        return Table("s", (), kind="SEQUENCE",
                     create_sql=f"CREATE SEQUENCE `s` start with 1 increment by {increment} ENGINE=InnoDB")

    assert _snapshot(sequence(1)).schema_hash != _snapshot(sequence(2)).schema_hash
    assert _snapshot(sequence(1)).schema_hash == _snapshot(sequence(1), database="elsewhere").schema_hash
