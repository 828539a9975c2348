"""Property tests over generated schemas, on the real throwaway MariaDB server.

Hypothesis draws a schema model (tables with hostile names, most column types, defaults,
generated and invisible columns, indexes, foreign keys including cycles, CHECKs, options,
partitioning; views, triggers, routines and events under assorted sql_modes and time zones),
the test creates it, captures it and checks:

- a second capture hashes the same;
- the JSON form reads back equal;
- restore_snapshot and the mariadb client (to_sql) both rebuild it with the same hash and the
  same CREATE text for every object;
- one real change, drawn from those the schema allows, changes the hash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_snapshot_support import assert_restores, connect, literal, scratch_database

from schemasync_backup import Snapshot
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

#: Pieces of hostile identifiers: quotes of all three kinds, reserved words, unicode, the
#: client's delimiters and comment markers, a newline, a backslash.
NAME_PIECES = (
    "", "select", "Order", "key", "ta`ble", "it's", 'say "hi"', "sp ace", "ünïcödé", "日本語", "semi;colon",
    "dash--dash", "#hash", "/*c*/", "back\\slash", "$$", ";;", "dot.ted", "new\nline", "DELIMITER", "<&>",
)
#: Text for values stored in columns: representable in latin1, with quotes, escapes, separators.
VALUE_TEXT = st.text(st.sampled_from(list("az Z09'\"\\\n;-#/*`é")), max_size=6)
#: Text for comments and string literals in metadata and bodies: any BMP character, often
#: one that needs quoting or escaping.
ANY_TEXT = st.text(
    st.one_of(
        st.sampled_from(list("'\"\\\n\r\t;`%_é")),
        st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Co", "Cn"), exclude_characters="\0"),
    ),
    max_size=8,
)
SQL_MODES = ("", "ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "PIPES_AS_CONCAT,IGNORE_SPACE", "STRICT_ALL_TABLES")
TIME_ZONES = ("SYSTEM", "+03:00", "-05:30")
FK_RULES = ("RESTRICT", "CASCADE", "SET NULL", "NO ACTION")


@dataclass(frozen=True)
class Statement:
    sql: str
    sql_mode: str = ""  # "" is the server default
    time_zone: str = "SYSTEM"


@dataclass
class ColumnModel:
    name: str
    definition: str
    #: The prefix an index on it needs (0: none), or None when it cannot be indexed.
    index_prefix: int | None = 0
    fulltext: bool = False
    #: Not the key, not a foreign key, not generated: free to check, drop or change.
    plain: bool = True
    numeric: bool = False


@dataclass
class TableModel:
    name: str
    columns: list[ColumnModel]
    options: str = ""
    indexes: dict[str, str] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    partitioning: str = ""
    foreign_keys: dict[str, str] = field(default_factory=dict)
    #: Columns named by an index, a check or a generated column.
    used: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return self.columns[0].name

    def create(self) -> str:
        parts = [f"{q(c.name)} {c.definition}" for c in self.columns]
        parts += [f"PRIMARY KEY ({q(self.key)})", *self.indexes.values(), *self.checks]
        return f"CREATE TABLE {q(self.name)} (\n  " + ",\n  ".join(parts) + f"\n) ENGINE=InnoDB{self.options}" + (
            f"\n{self.partitioning}" if self.partitioning else ""
        )


@dataclass
class ViewModel:
    name: str
    select: str
    options: str
    check_option: str
    columns: list[str]
    updatable: bool


@dataclass
class SchemaModel:
    tables: list[TableModel] = field(default_factory=list)
    views: list[ViewModel] = field(default_factory=list)
    programs: list[Statement] = field(default_factory=list)
    triggers: dict[str, Statement] = field(default_factory=dict)
    routines: dict[str, str] = field(default_factory=dict)  # name -> PROCEDURE or FUNCTION
    events: list[str] = field(default_factory=list)

    def statements(self) -> list[Statement]:
        found = [Statement(table.create()) for table in self.tables]
        found += [
            Statement(f"ALTER TABLE {q(table.name)} {clause}")
            for table in self.tables
            for clause in table.foreign_keys.values()
        ]
        found += [
            Statement(f"CREATE {view.options} VIEW {q(view.name)} AS {view.select}{view.check_option}")
            for view in self.views
        ]
        return found + self.programs


class Names:
    """Unique hostile identifiers: the ``~NN`` suffix keeps them distinct under any collation."""

    def __init__(self, draw: Callable[[st.SearchStrategy[str]], str]) -> None:
        self.draw = draw
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        piece = self.draw(st.sampled_from(NAME_PIECES))
        extra = self.draw(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Co", "Cn", "Cc"),
                                                exclude_characters="~"), max_size=3))
        return f"{piece}{extra}~{self.count:02d}"


def _string_options(draw: Callable[..., object]) -> str:
    return str(draw(st.sampled_from(
        ("", " CHARACTER SET latin1 COLLATE latin1_bin", " COLLATE utf8mb4_unicode_ci", " CHARACTER SET utf8mb4")
    )))


def _column(draw: st.DrawFn, names: Names, key: str) -> ColumnModel:
    name = names()
    kind = draw(st.sampled_from(
        ("int", "decimal", "double", "bit", "tinyint1", "zerofill", "date", "datetime", "timestamp", "time", "year",
         "varchar", "char", "text", "blob", "json", "enum", "set", "generated", "expression")
    ))
    null = draw(st.sampled_from(("", " NULL", " NOT NULL")))
    default = ""
    if draw(st.booleans()):
        default = {
            "int": f" DEFAULT {draw(st.integers(0, 1000))}",
            "decimal": f" DEFAULT {draw(st.integers(0, 999))}.5",
            "double": " DEFAULT 1.5e3",
            "bit": " DEFAULT b'101'",
            "tinyint1": " DEFAULT 1",
            "zerofill": " DEFAULT 7",
            "date": " DEFAULT '2020-02-29'",
            "time": " DEFAULT '12:34:56.78'",
            "year": " DEFAULT 2024",
            "varchar": f" DEFAULT {literal(draw(VALUE_TEXT))}",
            "char": f" DEFAULT {literal(draw(VALUE_TEXT)[:5])}",
            "text": f" DEFAULT {literal(draw(VALUE_TEXT))}",
            "json": " DEFAULT '{}'",
        }.get(kind, "")
    comment = f" COMMENT {literal(draw(ANY_TEXT))}" if draw(st.booleans()) else ""
    invisible = " INVISIBLE" if draw(st.integers(0, 4)) == 0 and null != " NOT NULL" else ""
    check = ""
    column = ColumnModel(name, "")
    if kind in ("int", "decimal", "double", "bit", "tinyint1", "zerofill", "date", "time", "year"):
        column.definition = {
            "int": draw(st.sampled_from(("int", "bigint unsigned", "smallint(3)", "mediumint"))),
            "decimal": draw(st.sampled_from(("decimal(10,3)", "decimal(5,1) unsigned"))),
            "double": draw(st.sampled_from(("double", "float", "double(8,2)"))),
            "bit": "bit(5)",
            "tinyint1": "tinyint(1)",
            "zerofill": "smallint(5) unsigned zerofill",
            "date": "date",
            "time": "time(2)",
            "year": "year",
        }[kind] + null + default
        column.numeric = kind in ("int", "decimal", "double", "zerofill")
    elif kind in ("datetime", "timestamp"):
        precision = draw(st.sampled_from(("", "(3)")))
        now = draw(st.sampled_from(("current_timestamp", "now", "CURRENT_TIMESTAMP")))
        auto = f" DEFAULT {now}{precision or '()'}" + (" ON UPDATE current_timestamp" + (precision or "()")
                                                      if draw(st.booleans()) else "")
        column.definition = f"{kind}{precision}{null}" + (auto if draw(st.booleans()) else "")
        if kind == "timestamp" and "DEFAULT" not in column.definition:
            column.definition = f"timestamp{precision} NULL DEFAULT NULL"
    elif kind in ("varchar", "char", "text", "blob"):
        charset = "" if kind == "blob" else _string_options(draw)
        check = f" CHECK ({q(name)} <> {literal(draw(VALUE_TEXT))})" if draw(st.integers(0, 3)) == 0 else ""
        size = {"varchar": "varchar(30)", "char": "char(5)", "text": "text", "blob": "blob"}[kind]
        column.definition = f"{size}{charset}{null}{default if kind != 'blob' else ''}"
        column.index_prefix = draw(st.sampled_from((0, 4))) if kind in ("varchar", "char") else 8
        column.fulltext = kind in ("varchar", "text")
    elif kind == "json":
        column.definition = f"json{null}{default}"
        column.index_prefix = None
    elif kind in ("enum", "set"):
        pieces = ["it's", 'q"q', "back\\slash", "ü", "a,b", "UPPER", "x"]
        if kind == "set":
            pieces.remove("a,b")
        chosen = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=4, unique=True))
        values = [f"{value}{number}" for number, value in enumerate(chosen)]
        column.definition = f"{kind}({', '.join(literal(v) for v in values)}){_string_options(draw)}{null}"
        if draw(st.booleans()):
            column.definition += f" DEFAULT {literal(draw(st.sampled_from(values)))}"
    elif kind == "generated":
        stored = draw(st.sampled_from(("VIRTUAL", "STORED")))
        column.definition = f"bigint GENERATED ALWAYS AS ({q(key)} * 2 + 1) {stored}"
        column.plain, invisible = False, ""
    else:  # expression defaults
        column.definition = draw(st.sampled_from((
            "datetime DEFAULT (current_timestamp() + interval 1 day)",
            "int DEFAULT (1 + 2)",
            "varchar(30) DEFAULT (concat('a''b', 'c'))",
            "double DEFAULT (rand())",
        )))
    # MariaDB takes a column-level CHECK only after the other attributes.
    column.definition += invisible + comment + check
    return column


def _table(draw: st.DrawFn, names: Names) -> TableModel:
    key = names()
    table = TableModel(names(), [ColumnModel(key, "int NOT NULL", plain=False)])
    table.columns += [_column(draw, names, key) for _ in range(draw(st.integers(1, 5)))]
    if any("GENERATED" in c.definition for c in table.columns):
        table.used.add(key)
    elif draw(st.booleans()):
        # A generated column may not read an AUTO_INCREMENT one.
        table.columns[0].definition += " AUTO_INCREMENT"
    table.options = draw(st.sampled_from(
        ("", " DEFAULT CHARSET=utf8mb4", " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
         " DEFAULT CHARSET=latin1")
    ))
    table.options += draw(st.sampled_from(("", " ROW_FORMAT=DYNAMIC", " ROW_FORMAT=COMPACT", " ROW_FORMAT=REDUNDANT")))
    table.options += draw(st.sampled_from(("", " STATS_PERSISTENT=0")))
    if draw(st.booleans()):
        table.options += f" COMMENT={literal(draw(ANY_TEXT))}"
    indexable = [c for c in table.columns[1:] if c.index_prefix is not None]
    for _ in range(draw(st.integers(0, 3))):
        if not indexable:
            break
        parts = draw(st.lists(st.sampled_from(indexable), min_size=1, max_size=3, unique_by=lambda c: c.name))
        kind = draw(st.sampled_from(("KEY", "UNIQUE KEY", "FULLTEXT KEY")))
        if kind == "FULLTEXT KEY":
            parts = parts[:1]
            if not parts[0].fulltext:
                kind = "KEY"
        rendered = []
        for part in parts:
            prefix = f"({part.index_prefix})" if part.index_prefix and kind != "FULLTEXT KEY" else ""
            order = " DESC" if kind != "FULLTEXT KEY" and draw(st.booleans()) else ""
            rendered.append(f"{q(part.name)}{prefix}{order}")
        comment = f" COMMENT {literal(draw(ANY_TEXT))}" if draw(st.booleans()) else ""
        ignored = " IGNORED" if kind == "KEY" and draw(st.integers(0, 3)) == 0 else ""
        name = names()
        table.indexes[name] = f"{kind} {q(name)} ({', '.join(rendered)}){comment}{ignored}"
        table.used |= {part.name for part in parts}
    checkable = [c for c in table.columns if c.plain and c.numeric]
    if draw(st.booleans()) and checkable:
        column = draw(st.sampled_from(checkable))
        table.checks.append(f"CONSTRAINT {q(names())} CHECK ({q(column.name)} > -100000 OR {q(column.name)} IS NULL)")
        table.used.add(column.name)
    return table


def _partitioning(draw: st.DrawFn, table: TableModel, names: Names) -> str:
    if any(kind in clause for clause in table.indexes.values() for kind in ("UNIQUE", "FULLTEXT")):
        return ""
    key = q(table.key)
    return str(draw(st.sampled_from((
        "",
        f"PARTITION BY HASH ({key}) PARTITIONS 2",
        f"PARTITION BY KEY ({key}) PARTITIONS 3",
        f"PARTITION BY RANGE ({key}) (PARTITION {q(names())} VALUES LESS THAN (100), "
        f"PARTITION {q(names())} VALUES LESS THAN MAXVALUE)",
    ))))


def _views(draw: st.DrawFn, schema: SchemaModel, names: Names) -> None:
    for _ in range(draw(st.integers(0, 3))):
        sources: list[TableModel | ViewModel] = [*schema.tables, *schema.views]
        source = draw(st.sampled_from(sources))
        aliases = [names() for _ in range(3)]
        if isinstance(source, TableModel):
            key = f"{q(source.name)}.{q(source.key)}"
            select = (f"SELECT {key} AS {q(aliases[0])}, {key} + 1 AS {q(aliases[1])}, "
                      f"{literal(draw(VALUE_TEXT))} AS {q(aliases[2])} FROM {q(source.name)}")
            updatable = True
        else:
            select = f"SELECT {q(source.columns[0])} AS {q(aliases[0])}, {q(source.columns[1])} AS {q(aliases[1])}, "
            select += f"{q(source.columns[2])} AS {q(aliases[2])} FROM {q(source.name)}"
            updatable = source.updatable
        algorithm = draw(st.sampled_from(("", "ALGORITHM=MERGE", "ALGORITHM=TEMPTABLE", "ALGORITHM=UNDEFINED")))
        security = draw(st.sampled_from(("", "SQL SECURITY INVOKER", "SQL SECURITY DEFINER")))
        updatable = updatable and "TEMPTABLE" not in algorithm
        check = draw(st.sampled_from(("", " WITH CHECK OPTION", " WITH LOCAL CHECK OPTION"))) if updatable else ""
        schema.views.append(ViewModel(names(), select, f"{algorithm} {security}", check, aliases, updatable))


def _body(draw: st.DrawFn, mode: str, statement: str) -> str:
    """A body for a trigger or event: one statement, or a compound one with comments."""
    if draw(st.booleans()):
        return statement
    comment = draw(ANY_TEXT).replace("\n", " ").replace("\r", " ")
    return (f"BEGIN\n  -- {comment}; it's\n  {statement};\n  # hash {comment}\n"
            f"  /* block ; */ SET @schemasync_b = {literal(draw(VALUE_TEXT), mode)};\nEND")


def _triggers(draw: st.DrawFn, schema: SchemaModel, names: Names) -> None:
    for _ in range(draw(st.integers(0, 2))):
        table = draw(st.sampled_from(schema.tables))
        mode = draw(st.sampled_from(SQL_MODES))
        name = names()
        timing = draw(st.sampled_from(("BEFORE", "AFTER")))
        event = draw(st.sampled_from(("INSERT", "UPDATE", "DELETE")))
        body = _body(draw, mode, f"SET @schemasync_t = {literal(draw(VALUE_TEXT), mode)}")
        statement = Statement(f"CREATE TRIGGER {q(name)} {timing} {event} ON {q(table.name)} FOR EACH ROW {body}", mode)
        schema.triggers[name] = statement
        schema.programs.append(statement)


def _routines(draw: st.DrawFn, schema: SchemaModel, names: Names) -> None:
    for _ in range(draw(st.integers(0, 2))):
        mode = draw(st.sampled_from(SQL_MODES))
        name = names()
        first, second = names(), names()
        characteristics = " ".join(draw(st.sampled_from(group)) for group in (
            ("", f"COMMENT {literal(draw(ANY_TEXT), mode)}"),
            ("", "DETERMINISTIC", "NOT DETERMINISTIC"),
            ("", "CONTAINS SQL", "READS SQL DATA", "NO SQL"),
            ("", "SQL SECURITY INVOKER", "SQL SECURITY DEFINER"),
        ))
        comment = draw(ANY_TEXT).replace("\n", " ").replace("\r", " ")
        if draw(st.booleans()):
            kind = "PROCEDURE"
            head = f"(IN {q(first)} int, OUT {q(second)} varchar(10) CHARSET latin1, INOUT `x~` decimal(5,2))"
            body = (f"BEGIN\n  -- {comment}\n  SET {q(second)} = {literal(draw(VALUE_TEXT), mode)};\n"
                    f"  SELECT {q(first)} + 1;\nEND")
        else:
            kind = "FUNCTION"
            returns = draw(st.sampled_from(("int", "varchar(20) CHARSET latin1", "decimal(6,2)")))
            head = f"({q(first)} int) RETURNS {returns}"
            body = draw(st.sampled_from((
                f"RETURN {q(first)} + 1",
                f"BEGIN\n  DECLARE {q(second)} int DEFAULT 1; /* {comment.replace('*/', '')} */\n"
                f"  RETURN {q(second)} + {q(first)};\nEND",
            )))
        schema.routines[name] = kind
        schema.programs.append(Statement(f"CREATE {kind} {q(name)}{head} {characteristics} {body}", mode))


def _events(draw: st.DrawFn, schema: SchemaModel, names: Names) -> None:
    for _ in range(draw(st.integers(0, 2))):
        mode, zone = draw(st.sampled_from(SQL_MODES)), draw(st.sampled_from(TIME_ZONES))
        if draw(st.booleans()):
            # Events live in TIMESTAMP's range: nothing after 2038-01-19.
            schedule = f"AT '20{draw(st.integers(30, 37))}-01-02 03:04:05'"
        else:
            schedule = f"EVERY {draw(st.integers(1, 9))} {draw(st.sampled_from(('MINUTE', 'HOUR', 'DAY', 'MONTH')))}"
            schedule += draw(st.sampled_from(("", " STARTS '2031-05-06 07:08:09'")))
            schedule += draw(st.sampled_from(("", " ENDS '2037-12-01 00:00:00'")))
        options = draw(st.sampled_from(("", " ON COMPLETION PRESERVE", " ON COMPLETION NOT PRESERVE")))
        options += draw(st.sampled_from(("", " ENABLE", " DISABLE")))
        if draw(st.booleans()):
            options += f" COMMENT {literal(draw(ANY_TEXT), mode)}"
        table = draw(st.sampled_from(schema.tables))
        body = _body(draw, mode, f"DELETE FROM {q(table.name)} WHERE 1 = 0")
        name = names()
        schema.events.append(name)
        create = f"CREATE EVENT {q(name)} ON SCHEDULE {schedule}{options} DO {body}"
        schema.programs.append(Statement(create, mode, zone))


@st.composite
def schemas(draw: st.DrawFn) -> SchemaModel:
    names = Names(draw)
    schema = SchemaModel(tables=[_table(draw, names) for _ in range(draw(st.integers(1, 3)))])
    in_foreign_keys: set[str] = set()
    for child in schema.tables:
        if not draw(st.booleans()):
            continue
        parent = draw(st.sampled_from(schema.tables))  # itself, or any other: cycles included
        column, name = names(), names()
        child.columns.append(ColumnModel(column, "int DEFAULT NULL", plain=False))
        child.foreign_keys[name] = (
            f"ADD CONSTRAINT {q(name)} FOREIGN KEY ({q(column)}) REFERENCES {q(parent.name)} ({q(parent.key)}) "
            f"ON DELETE {draw(st.sampled_from(FK_RULES))} ON UPDATE {draw(st.sampled_from(FK_RULES))}"
        )
        in_foreign_keys |= {child.name, parent.name}
    for table in schema.tables:
        if table.name not in in_foreign_keys:
            table.partitioning = _partitioning(draw, table, names)
    _views(draw, schema, names)
    _triggers(draw, schema, names)
    _routines(draw, schema, names)
    _events(draw, schema, names)
    return schema


def mutations(schema: SchemaModel) -> list[tuple[str, list[Statement]]]:
    """Real changes this schema allows, each as the statements that make it."""
    found = []
    for table in schema.tables:
        name = q(table.name)
        found += [
            ("table comment", [Statement(f"ALTER TABLE {name} COMMENT = 'changed~'")]),
            ("add column", [Statement(f"ALTER TABLE {name} ADD COLUMN `added~` int")]),
            ("add index", [Statement(f"ALTER TABLE {name} ADD INDEX `added~` ({q(table.key)})")]),
            ("add check", [Statement(f"ALTER TABLE {name} ADD CONSTRAINT `added~` CHECK (1 + 1 = 2)")]),
        ]
        for column in table.columns:
            if column.plain and column.name not in table.used:
                found.append(("drop column", [Statement(f"ALTER TABLE {name} DROP COLUMN {q(column.name)}")]))
                found.append(("modify column", [Statement(f"ALTER TABLE {name} MODIFY {q(column.name)} varchar(77)")]))
        found += [("drop index", [Statement(f"ALTER TABLE {name} DROP INDEX {q(index)}")]) for index in table.indexes]
        found += [("drop fk", [Statement(f"ALTER TABLE {name} DROP FOREIGN KEY {q(fk)}")]) for fk in table.foreign_keys]
        if table.checks:
            check = table.checks[0].split(" CHECK ")[0].removeprefix("CONSTRAINT ")
            found.append(("drop check", [Statement(f"ALTER TABLE {name} DROP CONSTRAINT {check}")]))
    for view in schema.views:
        found.append(("view body", [Statement(
            f"CREATE OR REPLACE {view.options} VIEW {q(view.name)} AS {view.select} WHERE 1 = 1{view.check_option}"
        )]))
    for trigger, statement in schema.triggers.items():
        changed = statement.sql.split(" FOR EACH ROW ")[0] + " FOR EACH ROW SET @schemasync_changed = 1"
        found.append(("trigger body", [Statement(f"DROP TRIGGER {q(trigger)}"), Statement(changed)]))
    for routine, kind in schema.routines.items():
        found.append(("routine comment", [Statement(f"ALTER {kind} {q(routine)} COMMENT 'changed~'")]))
        found.append(("routine body", [Statement(f"DROP {kind} {q(routine)}"), Statement(
            f"CREATE {kind} {q(routine)}() SELECT 'changed~'" if kind == "PROCEDURE"
            else f"CREATE {kind} {q(routine)}() RETURNS int RETURN 42"
        )]))
    for event in schema.events:
        found.append(("event schedule", [Statement(
            f"ALTER EVENT {q(event)} ON SCHEDULE EVERY 17 DAY STARTS '2036-02-02 02:02:02'"
        )]))
    return found


def apply(server: ThrowawayServer, database: str, statements: list[Statement]) -> None:
    """Run each statement under its own sql_mode and time zone, as a user's session would."""
    with contextlib.closing(connect(server, database)) as connection, connection.cursor() as cursor:
        for statement in statements:
            mode = literal(statement.sql_mode) if statement.sql_mode else "DEFAULT"
            cursor.execute(f"SET SESSION sql_mode = {mode}")
            cursor.execute(f"SET time_zone = {literal(statement.time_zone)}")
            try:
                cursor.execute(statement.sql)
            except Exception as exc:
                raise AssertionError(f"generated statement failed: {exc}\n{statement.sql}") from exc


@settings(
    max_examples=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(schema=schemas(), data=st.data())
def test_generated_schemas_capture_restore_and_hash(mariadb: ThrowawayServer, schema: SchemaModel,
                                                    data: st.DataObject) -> None:
    with scratch_database(mariadb) as database:
        apply(mariadb, database, schema.statements())
        snapshot = Snapshot.capture(mariadb.dsn, database)
        assert len(snapshot.tables) == len(schema.tables)
        assert len(snapshot.views) == len(schema.views)
        assert len(snapshot.routines) == len(schema.routines)
        assert len(snapshot.triggers) == len(schema.triggers)
        assert len(snapshot.events) == len(schema.events)

        assert Snapshot.capture(mariadb.dsn, database).schema_hash == snapshot.schema_hash
        assert Snapshot.from_json(snapshot.to_json()) == snapshot
        assert_restores(mariadb, snapshot)

        label, change = data.draw(st.sampled_from(mutations(schema)), label="mutation")
        apply(mariadb, database, change)
        assert Snapshot.capture(mariadb.dsn, database).schema_hash != snapshot.schema_hash, label
