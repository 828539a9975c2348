"""The pure planner on plain values: build_steps(live, wanted) with Snapshots built by hand, no server.

Every data-at-risk branch (dropped column or table, narrowed integer, shortened string, ENUM/SET
values removed, NOT NULL added) with its count query, the order of the phases, and properties on
generated snapshots.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemasync_backup.model.snapshot import Column, ServerInfo, Snapshot, Table, Trigger, View
from schemasync_backup.rollback.plan import RollbackStep, apply_definer_policy, build_steps
from schemasync_backup.sql.quoting import DEFINER_CLAUSE, definer_of

SERVER = ServerInfo("mariadb", "11.4.0", "", 0)
OPTIONS = ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"


def col(name: str, type_: str, nullable: bool = True) -> tuple[Column, str]:
    """A column and its SHOW CREATE TABLE line."""
    return Column(name, type_, nullable), f"`{name}` {type_} " + ("DEFAULT NULL" if nullable else "NOT NULL")


def table(name: str, *columns: tuple[Column, str], keys: tuple[str, ...] = (), fks: tuple[str, ...] = ()) -> Table:
    lines = [line for _, line in columns] + list(keys) + list(fks)
    create = f"CREATE TABLE `{name}` (\n" + ",\n".join(f"  {line}" for line in lines) + "\n" + OPTIONS
    return Table(name, tuple(column for column, _ in columns), create_sql=create,
                 foreign_keys=())  # the planner reads foreign keys from the text


def snap(*tables: Table, views: tuple[View, ...] = (), triggers: tuple[Trigger, ...] = ()) -> Snapshot:
    return Snapshot("app", "utf8mb4", "utf8mb4_general_ci", SERVER, tables=tables, views=views, triggers=triggers)


def steps_for(live: Snapshot, wanted: Snapshot) -> list[RollbackStep]:
    steps, _ = build_steps(live, wanted, None)
    return steps


def only_alter(live: Table, wanted: Table) -> RollbackStep:
    steps = steps_for(snap(live), snap(wanted))
    assert [step.phase for step in steps] == ["alter table"], steps
    return steps[0]


ID = col("id", "int(11)", nullable=False)
PK = ("PRIMARY KEY (`id`)",)


# --- data at risk --------------------------------------------------------------------------------


def test_dropped_column_counts_its_values() -> None:
    step = only_alter(table("t", ID, col("note", "text"), keys=PK), table("t", ID, keys=PK))
    assert "DROP COLUMN `note`" in step.sql and step.destructive
    assert [(r.description, r.count_sql) for r in step.risks] == [
        ("column `note` is dropped with its values", "SELECT COUNT(*) FROM `t` WHERE `note` IS NOT NULL")]


@pytest.mark.parametrize(("before", "after", "low", "high"), [
    ("bigint(20)", "int(11)", -(2**31), 2**31 - 1),
    ("int(11)", "smallint(6)", -(2**15), 2**15 - 1),
    ("int(11)", "int(10) unsigned", 0, 2**32 - 1),
    ("mediumint(9)", "tinyint(4)", -128, 127),
    ("bigint(20) unsigned", "smallint(5) unsigned", 0, 2**16 - 1),
])
def test_narrowed_integer_counts_values_out_of_range(before: str, after: str, low: int, high: int) -> None:
    step = only_alter(table("t", ID, col("n", before), keys=PK), table("t", ID, col("n", after), keys=PK))
    assert f"MODIFY COLUMN `n` {after} DEFAULT NULL AFTER `id`" in step.sql
    assert step.destructive and len(step.risks) == 1
    risk = step.risks[0]
    assert risk.description == f"column `n` narrows from {before} to {after}; values out of range are lost"
    assert risk.count_sql == f"SELECT COUNT(*) FROM `t` WHERE (`n` < {low} OR `n` > {high})"


@pytest.mark.parametrize(("before", "after"), [("int(11)", "bigint(20)"), ("smallint(6)", "int(11)"),
                                               ("tinyint(3) unsigned", "int(10) unsigned")])
def test_widened_integer_risks_nothing(before: str, after: str) -> None:
    step = only_alter(table("t", ID, col("n", before), keys=PK), table("t", ID, col("n", after), keys=PK))
    assert "MODIFY COLUMN `n`" in step.sql and not step.destructive


def test_shortened_varchar_counts_longer_values_and_a_longer_one_risks_nothing() -> None:
    def text(type_: str) -> Table:
        return table("t", ID, col("s", type_), keys=PK)

    short = only_alter(text("varchar(50)"), text("varchar(10)"))
    assert [(r.description, r.count_sql) for r in short.risks] == [
        ("column `s` narrows from varchar(50) to varchar(10); longer values are truncated",
         "SELECT COUNT(*) FROM `t` WHERE CHAR_LENGTH(`s`) > 10")]
    longer = only_alter(text("varchar(10)"), text("varchar(50)"))
    assert "MODIFY COLUMN `s` varchar(50)" in longer.sql and not longer.destructive
    to_char = only_alter(text("text"), text("char(3)"))
    assert [r.count_sql for r in to_char.risks] == ["SELECT COUNT(*) FROM `t` WHERE CHAR_LENGTH(`s`) > 3"]


def test_enum_with_values_removed_counts_the_rows_holding_them() -> None:
    step = only_alter(table("t", ID, col("e", "enum('a','b','c')"), keys=PK),
                      table("t", ID, col("e", "enum('a','b')"), keys=PK))
    assert [(r.description, r.count_sql) for r in step.risks] == [
        ("column `e` loses ENUM values 'c'", "SELECT COUNT(*) FROM `t` WHERE `e` IN ('c')")]
    added = only_alter(table("t", ID, col("e", "enum('a','b')"), keys=PK),
                       table("t", ID, col("e", "enum('a','b','c')"), keys=PK))
    assert not added.destructive


def test_set_with_values_removed_counts_the_rows_holding_any_of_them() -> None:
    step = only_alter(table("t", ID, col("f", "set('x','y','z')"), keys=PK),
                      table("t", ID, col("f", "set('x')"), keys=PK))
    assert [(r.description, r.count_sql) for r in step.risks] == [
        ("column `f` loses SET values 'y', 'z'",
         "SELECT COUNT(*) FROM `t` WHERE FIND_IN_SET('y', `f`) OR FIND_IN_SET('z', `f`)")]


def test_enum_to_set_is_a_conversion() -> None:
    step = only_alter(table("t", ID, col("e", "enum('a')"), keys=PK), table("t", ID, col("e", "set('a')"), keys=PK))
    assert [r.description for r in step.risks] == [
        "column `e` changes type from enum('a') to set('a'); values are converted"]


def test_not_null_added_counts_the_nulls() -> None:
    step = only_alter(table("t", ID, col("n", "int(11)"), keys=PK),
                      table("t", ID, col("n", "int(11)", nullable=False), keys=PK))
    assert "MODIFY COLUMN `n` int(11) NOT NULL AFTER `id`" in step.sql
    assert [(r.description, r.count_sql) for r in step.risks] == [
        ("column `n` becomes NOT NULL; NULLs are rejected or replaced", "SELECT COUNT(*) FROM `t` WHERE `n` IS NULL")]
    both = only_alter(table("t", ID, col("n", "bigint(20)"), keys=PK),
                      table("t", ID, col("n", "int(11)", nullable=False), keys=PK))
    assert [r.count_sql.rsplit("WHERE ", 1)[1] for r in both.risks] == [
        "`n` IS NULL", f"(`n` < {-(2**31)} OR `n` > {2**31 - 1})"]


def test_changed_collation_counts_values_that_do_not_convert() -> None:
    def text(collation: str) -> tuple[Column, str]:
        charset = collation.split("_", maxsplit=1)[0]
        return (Column("s", "varchar(10)", True, charset=charset, collation=collation),
                f"`s` varchar(10) CHARACTER SET {charset} COLLATE {collation} DEFAULT NULL")

    step = only_alter(table("t", ID, text("utf8mb4_general_ci"), keys=PK), table("t", ID, text("latin1_swedish_ci"),
                                                                                  keys=PK))
    assert [(r.description, r.count_sql) for r in step.risks] == [
        ("column `s` changes character set/collation utf8mb4_general_ci -> latin1_swedish_ci",
         "SELECT COUNT(*) FROM `t` WHERE `s` <> CONVERT(`s` USING latin1)")]


def test_dropped_table_counts_its_rows_and_a_created_one_risks_nothing() -> None:
    kept, gone, new = table("a", ID, keys=PK), table("b", ID, keys=PK), table("c", ID, keys=PK)
    steps = steps_for(snap(kept, gone), snap(kept, new))
    assert [(s.phase, s.object_name, s.destructive) for s in steps] == [
        ("drop table", "b", True), ("create table", "c", False)]
    assert steps[0].sql == "DROP TABLE `b`"
    assert [(r.description, r.count_sql) for r in steps[0].risks] == [
        ("the table and all its rows are dropped", "SELECT COUNT(*) FROM `b`")]


def test_keys_after_the_first_difference_are_dropped_and_re_added_in_order() -> None:
    name, email = col("name", "varchar(20)"), col("email", "varchar(80)")
    live = table("t", ID, name, email, keys=(*PK, "KEY `by_name` (`name`)"))
    wanted = table("t", ID, name, email, keys=(*PK, "UNIQUE KEY `by_email` (`email`)", "KEY `by_name` (`name`)"))
    step = only_alter(live, wanted)
    assert step.sql == ("ALTER TABLE `t`\n  DROP INDEX `by_name`,\n  ADD UNIQUE KEY `by_email` (`email`),\n"
                        "  ADD KEY `by_name` (`name`)")
    assert not step.destructive
    back = only_alter(wanted, live)
    assert back.sql == ("ALTER TABLE `t`\n  DROP INDEX `by_email`,\n  DROP INDEX `by_name`,\n"
                        "  ADD KEY `by_name` (`name`)")


# --- order ---------------------------------------------------------------------------------------


def test_phases_come_in_dependency_order() -> None:
    parent = table("parent", ID, keys=PK)
    fk = "CONSTRAINT `child_parent` FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`)"
    child_live = table("child", ID, col("parent_id", "int(11)"), keys=PK, fks=(fk,))
    child_wanted = table("child", ID, col("parent_id", "bigint(20)"), keys=PK, fks=(fk.replace("`child_parent`",
                                                                                                 "`fk2`"),))
    view_sql = "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1"
    trig_sql = "CREATE DEFINER=`root`@`localhost` TRIGGER `tr` BEFORE INSERT ON `child` FOR EACH ROW SET @x = 1"
    live = snap(parent, child_live, table("old", ID, keys=PK),
                views=(View("v", "select 1", create_sql=view_sql),),
                triggers=(Trigger("tr", "child", "BEFORE", "INSERT", 1, "SET @x = 1", create_sql=trig_sql),))
    wanted = snap(parent, child_wanted,
                  views=(View("v", "select 2", create_sql=view_sql.replace("select 1", "select 2")),),
                  triggers=(Trigger("tr", "child", "BEFORE", "INSERT", 1, "SET @x = 2",
                                    create_sql=trig_sql.replace("@x = 1", "@x = 2")),))
    phases = [(s.phase, s.object_name) for s in steps_for(live, wanted)]
    assert phases == [("drop trigger", "tr"), ("drop view", "v"), ("drop foreign key", "child"),
                      ("drop table", "old"), ("alter table", "child"), ("add foreign key", "child"),
                      ("create view", "v"), ("create trigger", "tr")]


# --- the definer rule (one for the planner and the preflight) --------------------------------------

_DEFINED = [
    "CREATE DEFINER=`root`@`localhost` TRIGGER `t` BEFORE INSERT ON `x` FOR EACH ROW SET @a = 1",
    "CREATE ALGORITHM=UNDEFINED DEFINER=`o``dd`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1",
    "CREATE DEFINER=`app_role` PROCEDURE `p`() SELECT 1",  # a MariaDB role: no host
    "CREATE DEFINER=CURRENT_USER EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1",
]


@pytest.mark.parametrize("create_sql", _DEFINED)
def test_the_planner_and_the_preflight_read_the_same_definer(create_sql: str) -> None:
    """preflight once had a regex of its own that could not read CURRENT_USER or a role, so a
    rewritten definer read as "no definer" there while the planner saw one."""
    assert definer_of(create_sql) is not None
    stripped = apply_definer_policy(create_sql, "strip")
    assert stripped != create_sql and definer_of(stripped) is None and "DEFINER=" not in stripped.split(" SQL ")[0]
    rewritten = apply_definer_policy(create_sql, "rewrite")
    assert definer_of(rewritten) == "CURRENT_USER"
    assert apply_definer_policy(create_sql, "keep") == create_sql
    assert DEFINER_CLAUSE.match(create_sql)


def test_no_definer_is_left_alone() -> None:
    create_sql = "CREATE TRIGGER `t` BEFORE INSERT ON `x` FOR EACH ROW SET @a = 1"
    assert definer_of(create_sql) is None
    assert apply_definer_policy(create_sql, "strip") == apply_definer_policy(create_sql, "rewrite") == create_sql


# --- properties on generated plain values ----------------------------------------------------------

_TYPES = ["int(11)", "bigint(20)", "smallint(6)", "int(10) unsigned", "varchar(10)", "varchar(50)", "text",
          "enum('a','b')", "enum('a','b','c')", "set('x','y')", "date"]
_NAMES = st.sampled_from(["a", "b", "c", "d", "e"])


@st.composite
def tables(draw: st.DrawFn, name: str) -> Table:
    names = draw(st.lists(_NAMES, unique=True, max_size=4))
    columns = [col(n, draw(st.sampled_from(_TYPES)), draw(st.booleans())) for n in names]
    keys = [f"KEY `k_{n}` (`{n}`)" for n in names if draw(st.booleans())]
    return table(name, ID, *columns, keys=(*PK, *keys))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    names = draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), unique=True, max_size=3))
    return snap(*(draw(tables(name)) for name in names))


@settings(max_examples=150, deadline=None)
@given(snapshots())
def test_a_snapshot_needs_no_steps_to_become_itself(x: Snapshot) -> None:
    assert build_steps(x, x, None) == ([], [])


@settings(max_examples=200, deadline=None)
@given(snapshots(), snapshots())
def test_steps_name_only_objects_of_either_side_and_risks_mark_destruction(live: Snapshot, wanted: Snapshot) -> None:
    steps, _ = build_steps(live, wanted, None)
    names = {t.name for t in live.tables} | {t.name for t in wanted.tables}
    assert all(step.object_name in names for step in steps)
    assert all(step.destructive == bool(step.risks) for step in steps)
    live_names, wanted_names = {t.name for t in live.tables}, {t.name for t in wanted.tables}
    assert {s.object_name for s in steps if s.phase == "drop table"} == live_names - wanted_names
    assert {s.object_name for s in steps if s.phase == "create table"} == wanted_names - live_names
    altered = {s.object_name for s in steps if s.phase == "alter table"}
    assert altered <= live_names & wanted_names
    # Every step on a table comes after every drop, and creates come before alters (one fixed order).
    phases = [s.phase for s in steps]
    assert phases == sorted(phases, key=["drop table", "create table", "alter table"].index)
    for step in steps:
        for risk in step.risks:
            assert risk.count_sql.startswith(f"SELECT COUNT(*) FROM `{step.object_name}`")
