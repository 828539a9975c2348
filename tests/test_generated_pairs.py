"""Generated before/after pairs on the real server: each rollback is exact, or refused at plan time.

Each test draws two states of a small schema from one part of the grammar (column definitions,
column order and invisibility, generated columns, keys, foreign keys, table options, engine-defined
options, partitioning, system versioning, sequences), so that a failure names the part of the
planner it found. ``migration_pairs.roll_back`` rolls back both ways: back up the first state and
make the second live, then back up the second and make the first live. Each rollback must end
EXACT (every SHOW CREATE text equals the backup's) or REFUSED (before the live database changed);
FAILED_IN_EXECUTE, DIFFERS and any exception fail the test. ``roll_back`` reports any library error
from plan() as REFUSED; here only a deliberate refusal (RollbackRefusedError, a failed rehearsal or
preflight) counts as one, so a definition the planner cannot parse fails the test. A drawn state
that the server does not load is rejected, not counted as a failure.

Derandomized, without the example database: every machine and every CI run plays the same
examples, so a failure here is a fact about the planner, not about luck. Each test first runs its
pinned pairs (the minimal examples of the failures found when this file was written). The example
counts keep the whole file to about three minutes when every test passes; a failure found by
generation takes longer, while hypothesis shrinks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pymysql
import pytest
from hypothesis import HealthCheck, assume, event, example, given, reject, settings
from hypothesis import strategies as st
from migration_pairs import Outcome, load_state, roll_back

from schemasync_backup import BackupInfo, BackupStore, RollbackPlanner, Snapshot
from schemasync_backup.errors import RollbackRefusedError, SchemaSyncBackupError
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

DATABASE = "gen_pairs"
ALLOWED = (Outcome.EXACT, Outcome.REFUSED)


def bounded(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@attrs.frozen
class RecordingStore(BackupStore):
    """A store that remembers the ids of the backups saved to it (``roll_back`` does not return them)."""

    saved: list[str] = attrs.field(factory=list, repr=False)

    def save(self, snapshot: Snapshot, **options: Any) -> BackupInfo:
        info = super().save(snapshot, **options)
        self.saved.append(info.id)
        return info


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RecordingStore:
    return RecordingStore.open(str(tmp_path_factory.mktemp("generated-pairs-store")))


def loads(server: ThrowawayServer, sql: str) -> bool:
    """Whether MariaDB accepts ``sql`` as a state (the strategies aim at valid SQL, but not always)."""
    try:
        load_state(server, DATABASE, sql)
    except pymysql.MySQLError:
        return False
    return True


def plan_error(server: ThrowawayServer, store: RecordingStore) -> SchemaSyncBackupError | None:
    """What plan() raises for the backup ``roll_back`` just saved, the live database unchanged since."""
    try:
        RollbackPlanner(store).plan(server.dsn, store.saved[-1], database=DATABASE)
    except SchemaSyncBackupError as exc:
        return exc
    return None


def rolls_back_both_ways(server: ThrowawayServer, store: RecordingStore, state: st.SearchStrategy[str],
                         max_examples: int, pinned: Sequence[tuple[str, str]] = ()) -> None:
    """Two states drawn from ``state``: rolling back from either to the other is exact, or refused.

    ``pinned`` pairs run first, every time (hypothesis does not shrink them): each is the minimal
    example of a failure once found here, so that it is checked whatever the example budget reaches.
    """

    def rolls_back(pair: tuple[str, str]) -> None:
        first, second = pair
        assume(first != second)
        if not (loads(server, first) and loads(server, second)):
            reject()
        for direction, backup_sql, live_sql in (("to first", first, second), ("to second", second, first)):
            result = roll_back(server, store, DATABASE, backup_sql, live_sql)
            event(f"rollback {direction}: {result.outcome}")
            where = f"rollback {direction}: {result.outcome}\n  backup: {backup_sql}\n  live:   {live_sql}\n"
            assert result.outcome in ALLOWED, where + result.detail
            if result.outcome is Outcome.REFUSED and result.detail.startswith("plan: "):
                # roll_back counts any library error from plan() as a refusal; only a deliberate one is
                # (a definition the planner cannot parse is a planner failure, not a refusal).
                error = plan_error(server, store)
                assert isinstance(error, RollbackRefusedError), f"{where}plan() raised {error!r}, not a refusal"

    for pair in reversed(pinned):  # decorators apply inside out: this keeps the written order
        rolls_back = example(pair=pair)(rolls_back)
    bounded(max_examples)(given(pair=st.tuples(state, state))(rolls_back))()


def lit(text: str) -> str:
    """A SQL string literal (the server's default sql_mode: backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``strategy``'s text, or nothing (shrinks to nothing)."""
    return st.one_of(st.just(""), strategy)


def clause(prefix: str, values: list[object]) -> st.SearchStrategy[str]:
    """Nothing, or ``prefix`` followed by one of ``values``."""
    return optional(st.sampled_from(values).map(lambda value: f"{prefix}{value}"))


COMMENTS = ["c", "it's", "ünïcødé", "back\\slash", ""]
STRING_CHARSETS = ["CHARACTER SET latin1", "CHARACTER SET ascii", "CHARACTER SET utf8mb3",
                   "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "COLLATE utf8mb4_unicode_ci",
                   "CHARACTER SET latin1 COLLATE latin1_bin"]


# --- column definitions ---------------------------------------------------------------------------

@st.composite
def column_type(draw: st.DrawFn) -> tuple[str, list[str], bool]:
    """(type, literal defaults it accepts, whether it takes a character set)."""
    family = draw(st.sampled_from(["int", "varchar", "char", "text", "decimal", "enum", "set", "json",
                                   "temporal", "blob", "float", "bit"]))
    if family == "int":
        name = draw(st.sampled_from(["INT", "TINYINT", "SMALLINT", "MEDIUMINT", "BIGINT"]))
        width = draw(clause("", ["(3)", "(11)"]))
        sign = draw(st.sampled_from(["", " UNSIGNED", " UNSIGNED ZEROFILL"]))
        return f"{name}{width}{sign}", ["0", "7"] + ([] if sign else ["-1"]), False
    if family in {"varchar", "char"}:
        length = draw(st.sampled_from([1, 10, 255, 256, 1000] if family == "varchar" else [1, 10, 255]))
        return f"{family.upper()}({length})", ["''", "'x'"] + (["'abc'"] if length >= 3 else []), True
    if family == "text":
        return draw(st.sampled_from(["TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT"])), ["'t'", "''"], True
    if family == "decimal":
        precision = draw(st.integers(1, 30))
        scale = draw(st.integers(0, min(precision, 10)))
        return f"DECIMAL({precision},{scale})", ["0"] + (["1.5"] if precision - scale >= 1 and scale else []), False
    if family == "enum":
        values = draw(st.sampled_from([["a", "b"], ["a", "b", "c"], ["x"], ["b", "a"]]))
        return f"ENUM({','.join(map(lit, values))})", [lit(v) for v in values], True
    if family == "set":
        values = draw(st.sampled_from([["a", "b", "c"], ["a", "b"]]))
        return f"SET({','.join(map(lit, values))})", ["''", "'a'", "'a,b'"], True
    if family == "json":
        return "JSON", ["'{}'", "'[]'"], False
    if family == "temporal":
        name = draw(st.sampled_from(["DATETIME", "TIMESTAMP", "TIME", "DATE", "YEAR"]))
        if name in {"DATE", "YEAR"}:
            return name, ["'2020-01-02'"] if name == "DATE" else ["2020"], False
        fsp = draw(st.sampled_from(["", "(0)", "(3)", "(6)"]))
        if name == "TIME":
            return f"TIME{fsp}", ["'12:34:56'"], False
        now = f"CURRENT_TIMESTAMP{fsp or '()'}"
        return f"{name}{fsp}", ["'2020-01-02 03:04:05'", now, f"{now} ON UPDATE {now}"], False
    if family == "blob":
        name = draw(st.sampled_from(["BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "VARBINARY(16)", "BINARY(4)"]))
        return name, ["'b'"], False
    if family == "float":
        return draw(st.sampled_from(["FLOAT", "DOUBLE", "FLOAT(7,3)", "DOUBLE(10,2)"])), ["0", "1.5"], False
    return f"BIT({draw(st.sampled_from([1, 3, 8]))})", ["b'1'", "0"], False


@st.composite
def column_definition(draw: st.DrawFn) -> str:
    kind, defaults, takes_charset = draw(column_type())
    parts = [kind]
    if takes_charset:
        parts.append(draw(optional(st.sampled_from(STRING_CHARSETS))))
    nullability = draw(st.sampled_from(["", "NULL", "NOT NULL"]))
    parts.append(nullability)
    parts.append(draw(optional(st.sampled_from(defaults + ([] if nullability == "NOT NULL" else ["NULL"]))
                               .map(lambda value: f"DEFAULT {value}"))))
    parts.append(draw(optional(st.sampled_from(COMMENTS).map(lambda text: f"COMMENT {lit(text)}"))))
    return " ".join(part for part in parts if part)


@st.composite
def column_definitions_state(draw: st.DrawFn) -> str:
    columns = [f"c1 {draw(column_definition())}"]
    second = draw(optional(column_definition()))
    if second:
        columns.append(f"c2 {second}")
    return f"CREATE TABLE t (id INT NOT NULL PRIMARY KEY, {', '.join(columns)})"


# --- column order and invisible columns -------------------------------------------------------

ORDERED_COLUMNS: dict[str, list[str]] = {
    "a": ["INT", "BIGINT NOT NULL DEFAULT 0"],
    "b": ["VARCHAR(10)", "VARCHAR(20) NOT NULL DEFAULT ''"],
    "c": ["TEXT", "TEXT COMMENT 'moved'"],
    "d": ["DATE"],
    "e": ["DECIMAL(5,2) NOT NULL DEFAULT 0"],
}


@st.composite
def column_order_state(draw: st.DrawFn) -> str:
    chosen = draw(st.lists(st.sampled_from(sorted(ORDERED_COLUMNS)), unique=True, max_size=len(ORDERED_COLUMNS)))
    columns = ["id INT NOT NULL"]
    for name in chosen:
        definition = draw(st.sampled_from(ORDERED_COLUMNS[name]))
        invisible = draw(st.sampled_from(["", " INVISIBLE"]))
        columns.append(f"{name} {definition}{invisible}")
    ordered = draw(st.permutations(columns))
    return f"CREATE TABLE t ({', '.join(ordered)}, PRIMARY KEY (id))"


# --- generated columns ---------------------------------------------------------------------------

@st.composite
def generated_state(draw: st.DrawFn) -> str:
    columns = ["id INT NOT NULL PRIMARY KEY", "a INT", "b INT", "s VARCHAR(20)"]
    keys = []
    g = draw(st.sampled_from(["", "g INT", "g INT DEFAULT 0", "g INT AS ({}) VIRTUAL", "g INT AS ({}) STORED",
                              "g INT GENERATED ALWAYS AS ({}) VIRTUAL INVISIBLE", "g INT AS ({}) STORED COMMENT 'g'"]))
    if g:
        g = g.format(draw(st.sampled_from(["a + 1", "a * b", "coalesce(a, b)", "b - 1"])))
        columns.insert(draw(st.integers(1, len(columns))), g)
        if draw(st.booleans()):
            keys.append("KEY kg (g)")
    h = draw(st.sampled_from(["", "h VARCHAR(40)", "h VARCHAR(40) AS ({}) VIRTUAL", "h VARCHAR(40) AS ({}) STORED"]))
    if h:
        columns.append(h.format(draw(st.sampled_from(["concat(s, 'x')", "upper(s)", "left(s, 3)"]))))
    return f"CREATE TABLE t ({', '.join(columns + keys)})"


# --- primary, unique, plain and fulltext keys ----------------------------------------------------

KEY_COLUMNS = "id INT NOT NULL, a INT NOT NULL, b VARCHAR(100) NOT NULL DEFAULT '', c TEXT, d INT"


@st.composite
def key_part(draw: st.DrawFn, column: str, unique: bool) -> str:
    if column == "b":
        prefix = draw(clause("", ["(5)", "(10)"]))
    elif column == "c":
        prefix = draw(st.sampled_from(["(5)", "(20)"] + ([""] if unique else [])))  # a whole TEXT: USING HASH
    else:
        prefix = ""
    return f"{column}{prefix}{draw(st.sampled_from(['', ' DESC']))}"


@st.composite
def key_definition(draw: st.DrawFn, name: str) -> str:
    kind = draw(st.sampled_from(["KEY", "UNIQUE KEY", "FULLTEXT KEY"]))
    if kind == "FULLTEXT KEY":
        columns = draw(st.lists(st.sampled_from(["b", "c"]), min_size=1, max_size=2, unique=True))
        return f"FULLTEXT KEY {name} ({', '.join(columns)})"
    columns = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=2, unique=True))
    parts = [draw(key_part(column, kind == "UNIQUE KEY")) for column in columns]
    return f"{kind} {name} ({', '.join(parts)})"


@st.composite
def keys_state(draw: st.DrawFn) -> str:
    primary = draw(st.sampled_from(["", "PRIMARY KEY (id)", "PRIMARY KEY (id, a)", "PRIMARY KEY (a, id)",
                                    "PRIMARY KEY (b(20))"]))
    names = draw(st.lists(st.sampled_from(["k1", "k2", "k3"]), unique=True, max_size=3))  # drawn order = index order
    keys = [primary] if primary else []
    keys += [draw(key_definition(name)) for name in names]
    return f"CREATE TABLE t ({', '.join([KEY_COLUMNS, *keys])})"


# --- foreign keys between two tables -------------------------------------------------------------

PARENT = ("CREATE TABLE p (id INT NOT NULL PRIMARY KEY, code VARCHAR(10) NOT NULL, n INT, UNIQUE KEY uk_code (code), "
          "KEY k_id_n (id, n))")
ACTIONS = ["", " ON DELETE CASCADE", " ON DELETE SET NULL", " ON DELETE RESTRICT", " ON UPDATE CASCADE",
           " ON DELETE NO ACTION ON UPDATE SET NULL"]
# (columns in c, table and columns referenced): to p's primary key, unique key, a two-column key, and c itself.
REFERENCES = {"pid": "p (id)", "pcode": "p (code)", "pid, x": "p (id, n)", "parent": "c (id)"}


@st.composite
def foreign_key(draw: st.DrawFn, columns: str) -> str:
    name = columns.replace(", ", "_")
    constraint = draw(st.sampled_from(["", f"CONSTRAINT fk_{name} ", "CONSTRAINT fk_other ", "CONSTRAINT "]))
    return f"{constraint}FOREIGN KEY ({columns}) REFERENCES {REFERENCES[columns]}{draw(st.sampled_from(ACTIONS))}"


@st.composite
def foreign_keys_state(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return PARENT  # the child table is absent
    lines = ["id INT NOT NULL PRIMARY KEY", "pid INT", "pcode VARCHAR(10)", "x INT", "parent INT"]
    # Explicit indexes a foreign key can use, or none (MariaDB then makes one, named after the constraint or
    # the first column, or that name with _2 when an unrelated key `pid` holds the name).
    keys = draw(st.lists(st.sampled_from(["KEY ix_pid (pid)", "KEY ix_pid_id (pid, id)", "KEY fk_pid (pid)",
                                          "KEY ix_pcode (pcode)", "KEY kx (x)", "KEY pid (x)"]),
                         unique=True, max_size=2))
    fks = [draw(foreign_key(columns)) for columns in draw(st.lists(st.sampled_from(sorted(REFERENCES)), unique=True))]
    if sum("fk_other" in fk for fk in fks) > 1:
        reject()  # two constraints of one name
    # An index added afterwards makes MariaDB drop the implicit index it covers.
    later = draw(st.sampled_from(["", "; ALTER TABLE c ADD KEY k_later (pid, x)",
                                  "; ALTER TABLE c ADD KEY k_pcode_id (pcode, id)"]))
    return f"{PARENT}; CREATE TABLE c ({', '.join(lines + keys + fks)}){later}"


# --- table options -------------------------------------------------------------------------------

ROW_FORMATS = {
    "InnoDB": ["DYNAMIC", "COMPACT", "REDUNDANT", "COMPRESSED"],
    "Aria": ["PAGE", "FIXED", "DYNAMIC"],
    "MyISAM": ["FIXED", "DYNAMIC"],
}
TABLE_CHARSETS = ["DEFAULT CHARSET=latin1", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin", "DEFAULT CHARSET=utf8mb3",
                  "CHARACTER SET ascii", "COLLATE=utf8mb4_unicode_ci"]


@st.composite
def table_options_state(draw: st.DrawFn) -> str:
    engine = draw(st.sampled_from(["InnoDB", "Aria", "MyISAM"]))
    options = [f"ENGINE={engine}"]
    options.append(draw(clause("ROW_FORMAT=", ROW_FORMATS[engine])))
    if engine != "InnoDB" or options[-1] in {"", "ROW_FORMAT=COMPRESSED"}:  # InnoDB refuses it on other formats
        options.append(draw(clause("KEY_BLOCK_SIZE=", [1, 2, 4, 8, 16])))
    options.append(draw(clause("MIN_ROWS=", [1, 10])))
    options.append(draw(clause("MAX_ROWS=", [100, 1000000])))
    options.append(draw(clause("AVG_ROW_LENGTH=", [10, 100])))
    options.append(draw(clause("CHECKSUM=", [0, 1])))
    options.append(draw(clause("DELAY_KEY_WRITE=", [0, 1])))
    options.append(draw(clause("PAGE_CHECKSUM=", [0, 1])))
    if engine == "Aria":
        options.append(draw(clause("TRANSACTIONAL=", [0, 1])))
    options.append(draw(optional(st.sampled_from(COMMENTS).map(lambda text: f"COMMENT={lit(text)}"))))
    options.append(draw(optional(st.sampled_from(TABLE_CHARSETS))))
    return f"CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a VARCHAR(20), b TEXT) {' '.join(o for o in options if o)}"


# --- engine-defined options ----------------------------------------------------------------------

@st.composite
def engine_options_state(draw: st.DrawFn) -> str:
    options = []
    compressed = draw(clause("PAGE_COMPRESSED=", [0, 1]))
    options.append(compressed)
    if compressed == "PAGE_COMPRESSED=1":  # the level needs page compression
        options.append(draw(clause("PAGE_COMPRESSION_LEVEL=", [1, 9])))
    options.append(draw(clause("ENCRYPTED=", ["NO", "DEFAULT"])))
    if options[-1] == "ENCRYPTED=NO":
        options.append(draw(clause("ENCRYPTION_KEY_ID=", [1, 2])))
    written = " ".join(option for option in options if option)
    sql = f"CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a VARCHAR(20)) ENGINE=InnoDB {written}"
    # Moved to an engine that does not know them, the options stay (printed in a comment).
    moved = draw(st.sampled_from(["", "; ALTER TABLE t ENGINE=Aria", "; ALTER TABLE t ENGINE=MyISAM"]))
    return sql.rstrip() + moved


# --- partitioning --------------------------------------------------------------------------------

@st.composite
def partitioning(draw: st.DrawFn) -> str:
    method = draw(st.sampled_from(["", "HASH", "KEY", "RANGE", "LIST", "RANGE COLUMNS"]))
    if not method:
        return ""
    if method in {"HASH", "KEY"}:
        linear = draw(st.sampled_from(["", "LINEAR "]))
        expression = draw(st.sampled_from(["x", "id", "id + x"] if method == "HASH" else ["x", "id", "id, x", ""]))
        count = draw(st.integers(1, 4))
        return f" PARTITION BY {linear}{method} ({expression}) PARTITIONS {count}"
    sub = draw(optional(st.sampled_from([" SUBPARTITION BY HASH (id) SUBPARTITIONS 2",
                                         " SUBPARTITION BY KEY (id) SUBPARTITIONS 3"])))
    if method == "LIST":
        values = draw(st.lists(st.integers(0, 9), unique=True, min_size=1, max_size=6))
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(values) - 1)), unique=True, max_size=2)))
        cuts = [cut for cut in cuts if cut < len(values)]
        groups = [values[start:end] for start, end in zip([0, *cuts], [*cuts, len(values)], strict=True)]
        parts = [f"PARTITION p{n} VALUES IN ({', '.join(map(str, group))})" for n, group in enumerate(groups)]
        if draw(st.booleans()):
            parts.append(f"PARTITION p{len(parts)} DEFAULT")
        return f" PARTITION BY LIST (x){sub} ({', '.join(parts)})"
    bounds: list[str] = [str(b) for b in sorted(draw(st.lists(st.sampled_from([0, 10, 100, 1000]), unique=True,
                                                               min_size=1)))]
    if draw(st.booleans()):
        bounds.append("MAXVALUE")
    parts = [f"PARTITION p{n} VALUES LESS THAN ({bound})" if bound != "MAXVALUE" or method == "RANGE COLUMNS"
             else f"PARTITION p{n} VALUES LESS THAN MAXVALUE" for n, bound in enumerate(bounds)]
    return f" PARTITION BY {method} (x){sub} ({', '.join(parts)})"


@st.composite
def partitioning_state(draw: st.DrawFn) -> str:
    # x is in the primary key, and in the one unique key when there is one: every scheme may use it.
    unique = draw(st.sampled_from(["", ", UNIQUE KEY u (x, id)"]))
    return f"CREATE TABLE t (id INT NOT NULL, x INT NOT NULL, v VARCHAR(10), PRIMARY KEY (id, x){unique})" \
           f"{draw(partitioning())}"


# --- system versioning ---------------------------------------------------------------------------

@st.composite
def versioning_state(draw: st.DrawFn) -> str:
    columns = ["id INT NOT NULL PRIMARY KEY", "a INT", "b VARCHAR(10)"]
    style = draw(st.sampled_from(["", "implicit", "timestamp", "transaction"]))
    if not style:
        return f"CREATE TABLE t ({', '.join(columns)})"
    if draw(st.booleans()):
        columns[2] += " WITHOUT SYSTEM VERSIONING"
    if style != "implicit":
        start, end = draw(st.sampled_from([("row_start", "row_end"), ("rs", "re")]))
        kind = "TIMESTAMP(6)" if style == "timestamp" else "BIGINT UNSIGNED"
        invisible = draw(st.sampled_from(["", " INVISIBLE"]))
        columns += [f"{start} {kind} GENERATED ALWAYS AS ROW START{invisible}",
                    f"{end} {kind} GENERATED ALWAYS AS ROW END{invisible}",
                    f"PERIOD FOR SYSTEM_TIME ({start}, {end})"]
    partitions = "" if style == "transaction" else draw(optional(st.sampled_from([
        " PARTITION BY SYSTEM_TIME (PARTITION p_hist HISTORY, PARTITION p_cur CURRENT)",
        " PARTITION BY SYSTEM_TIME LIMIT 100 PARTITIONS 3",
    ])))
    return f"CREATE TABLE t ({', '.join(columns)}) WITH SYSTEM VERSIONING{partitions}"


# --- sequences -----------------------------------------------------------------------------------

@st.composite
def sequence_options(draw: st.DrawFn) -> str:
    increment = draw(st.sampled_from([None, 1, 2, -1, 0]))
    descending = increment is not None and increment < 0
    low, high = (-1000, -1) if descending else (1, 1000)
    parts = [
        draw(clause("START WITH ", [low, high, -5 if descending else 5])),
        "" if increment is None else f"INCREMENT BY {increment}",
        draw(clause("", ["NO MINVALUE", f"MINVALUE {low}"])),
        draw(clause("", ["NO MAXVALUE", f"MAXVALUE {high}"])),
        draw(clause("", ["NOCACHE", "CACHE 10", "CACHE 1000", "CACHE 1"])),
        draw(clause("", ["CYCLE", "NOCYCLE"])),
        draw(clause("ENGINE=", ["InnoDB", "Aria", "MyISAM"])),
    ]
    return " ".join(part for part in parts if part)


@st.composite
def sequences_state(draw: st.DrawFn) -> str:
    statements = []
    s = draw(st.sampled_from(["absent", "table", "sequence"]))
    if s == "table":
        statements.append("CREATE TABLE s (id INT NOT NULL PRIMARY KEY)")
    elif s == "sequence":
        statements.append(f"CREATE SEQUENCE s {draw(sequence_options())}".rstrip())
    if draw(st.booleans()):
        statements.append(f"CREATE SEQUENCE s2 {draw(sequence_options())}".rstrip())
    if s == "sequence" and draw(st.booleans()):  # a table whose default draws from s
        statements.append("CREATE TABLE t (id INT NOT NULL PRIMARY KEY, n BIGINT DEFAULT NEXTVAL(s))")
    return "; ".join(statements)


# --- the properties ------------------------------------------------------------------------------
# Each test's pinned pairs are the minimal examples of the failures this file found when it was
# written (before the planner handled them); they run first, so a fix is checked by every run.

T = "CREATE TABLE t (id INT NOT NULL PRIMARY KEY"
P = "CREATE TABLE p (id INT NOT NULL PRIMARY KEY); CREATE TABLE c (id INT NOT NULL PRIMARY KEY, pid INT"
GENERATED = [
    (f"{T}, a INT, g INT)", f"{T}, a INT, g INT AS (a + 1) VIRTUAL)"),  # MODIFY regular <-> generated: 1907
    (f"{T}, a INT, g INT AS (a + 1) VIRTUAL)", f"{T}, a INT, g INT AS (a + 1) STORED)"),  # VIRTUAL <-> STORED: 1907
]
FOREIGN_KEYS = [
    # The FK is re-added, and MariaDB names its new implicit index after the constraint (c_ibfk_1), not `pid`.
    (f"{P}, FOREIGN KEY (pid) REFERENCES p (id))", f"{P}, FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)"),
    # The re-added FK's implicit index `fk` comes after `k`, which was added later.
    (f"{P}, x INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id)); ALTER TABLE c ADD KEY k (x)",
     f"{P}, x INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE); ALTER TABLE c ADD KEY k (x)"),
]
TABLE_OPTIONS = [
    (f"{T})", f"{T}) MAX_ROWS=10"),  # the reset MAX_ROWS=DEFAULT is a syntax error (1064)
    (f"{T}, a VARCHAR(20))", f"{T}, a VARCHAR(20)) DEFAULT CHARSET=latin1"),  # columns keep the other charset
    (f"{T}) ENGINE=InnoDB", f"{T}) ENGINE=Aria"),  # PAGE_CHECKSUM=1 stays after leaving Aria
    (f"{T}) ENGINE=Aria TRANSACTIONAL=0", f"{T}) ENGINE=Aria TRANSACTIONAL=1"),  # validate(): page_checksum
    (f"{T}) ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=4", f"{T}) ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8"),  # stays on the PK
]
ENGINE_OPTIONS = [
    (f"{T})", f"{T}) PAGE_COMPRESSED=1"),  # an engine-defined option the backup lacks is not removed
    (f"{T}) ENGINE=Aria", f"{T}) PAGE_COMPRESSED=1; ALTER TABLE t ENGINE=Aria"),  # nor one an engine ignores
]
VERSIONING = [
    (f"{T}, a INT)", f"{T}, a INT) WITH SYSTEM VERSIONING"),  # versioning is not removed
    (f"{T}, a INT) WITH SYSTEM VERSIONING", f"{T}, a BIGINT) WITH SYSTEM VERSIONING"),  # 4119: alter_history
    # 4119 again: versioning is switched on before the period's columns are added.
    (f"{T}, a INT)", f"{T}, a INT, rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START, "
                     "re TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME (rs, re)) "
                     "WITH SYSTEM VERSIONING"),
]
SEQUENCES = [
    ("CREATE SEQUENCE s", "CREATE SEQUENCE s START WITH 5"),  # plan(): "not a CREATE TABLE text"
    ("CREATE TABLE s (id INT NOT NULL PRIMARY KEY)", "CREATE SEQUENCE s"),
]


def test_column_definitions_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """Types, NULL/NOT NULL, defaults, comments and character sets of one or two columns."""
    rolls_back_both_ways(mariadb, store, column_definitions_state(), max_examples=20)


def test_column_order_and_visibility_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """Columns added, dropped, moved, retyped, made (in)visible."""
    rolls_back_both_ways(mariadb, store, column_order_state(), max_examples=20)


def test_generated_columns_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """Regular <-> VIRTUAL/STORED generated columns, their expressions, positions, an index on one."""
    rolls_back_both_ways(mariadb, store, generated_state(), max_examples=20, pinned=GENERATED)


def test_keys_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """Primary key changes, unique/plain/fulltext keys, prefixes, DESC parts, the order of the keys."""
    rolls_back_both_ways(mariadb, store, keys_state(), max_examples=20)


def test_foreign_keys_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """Foreign keys from c to p, named or not, with or without the index MariaDB would make."""
    rolls_back_both_ways(mariadb, store, foreign_keys_state(), max_examples=20, pinned=FOREIGN_KEYS)


def test_table_options_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """ENGINE, ROW_FORMAT, KEY_BLOCK_SIZE, MIN/MAX_ROWS, AVG_ROW_LENGTH, checksums, COMMENT, charset."""
    rolls_back_both_ways(mariadb, store, table_options_state(), max_examples=20, pinned=TABLE_OPTIONS)


def test_engine_defined_options_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """InnoDB's PAGE_COMPRESSED, PAGE_COMPRESSION_LEVEL, ENCRYPTED, ...: kept, or moved to Aria/MyISAM."""
    rolls_back_both_ways(mariadb, store, engine_options_state(), max_examples=15, pinned=ENGINE_OPTIONS)


def test_partitioning_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """None, [LINEAR] HASH/KEY, RANGE [COLUMNS], LIST, subpartitions: their counts and bounds."""
    rolls_back_both_ways(mariadb, store, partitioning_state(), max_examples=20)


def test_system_versioning_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """WITH SYSTEM VERSIONING on/off, implicit or explicit row start/end and PERIOD, history partitions."""
    rolls_back_both_ways(mariadb, store, versioning_state(), max_examples=20, pinned=VERSIONING)


def test_sequences_roll_back_both_ways(mariadb: ThrowawayServer, store: RecordingStore) -> None:
    """A sequence's options; s a sequence, a table or absent; a second sequence; a table defaulting to NEXTVAL(s)."""
    rolls_back_both_ways(mariadb, store, sequences_state(), max_examples=20, pinned=SEQUENCES)
