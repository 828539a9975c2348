"""RollbackPlan.to_sql on the real mysql client: it sends exactly what execute sends, whatever the names."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from conftest import run_sql
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemasync_backup import Snapshot
from schemasync_backup.errors import UnsafeScriptError
from schemasync_backup.rollback.plan import RollbackPlan, RollbackStep
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql import client_script
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.sql.quoting import quote_string
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

#: Characters that broke the old script: line breaks, quotes, client commands, comment ends, unicode.
HOSTILE = ["\n", "\r", "`", "'", '"', "\\", "\\!", "*/", "/*", "-- ", "#", ";", ";;", "$$", "//", "é", "中文", "\t"]


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.fixture
def pwned(tmp_path: Path) -> Iterator[Path]:
    """A file that exists only if the client ran a shell command hidden in a name or body."""
    path = Path(f"/tmp/pwned-{secrets.token_hex(6)}")
    yield path
    assert not path.exists(), "the script ran a shell command"


def run_client(server: ThrowawayServer, script: str, *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["mariadb", "--no-defaults", f"--socket={server.socket_path}", "-uroot", "--batch",
                           *options], input=script.encode("utf-8"), capture_output=True, check=False, timeout=120)


def databases(root: pymysql.connections.Connection) -> set[str]:
    with root.cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        return {row[0] for row in cursor.fetchall()}


def hostile_schema(database: str, name: str, pwned: Path) -> list[str]:
    """Tables, a view, routines, a trigger and an event whose names and bodies hold ``name``."""
    shell = f"\\! touch {pwned}"
    body = (f"BEGIN\n  -- a comment ;; $$ // {shell}\n  /* a block ;; $$ // {shell} */\n  # hash {shell}\n"
            f"  SELECT ';; $$ // {shell}', \"dq {shell}\", 'it''s 😀' FROM {q(name)} LIMIT 0;\nEND")
    return [
        f"CREATE TABLE {q(name)} ({q(name + 'c')} INT PRIMARY KEY, note VARCHAR(20) COMMENT {quote_string(name)})",
        f"CREATE VIEW {q(name + 'v')} AS SELECT {q(name + 'c')} AS {q('a;b ' + name)} FROM {q(name)}",
        f"CREATE PROCEDURE {q(name + 'p')}()\n{body}",
        "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
        f"CREATE FUNCTION {q(name + 'f')}() RETURNS TEXT DETERMINISTIC\nBEGIN\n  -- no escapes here\n"
        f"  RETURN 'c:\\dir\\ {shell}';\nEND",
        "SET SESSION sql_mode = DEFAULT",
        f"CREATE TRIGGER {q(name + 't')} BEFORE INSERT ON {q(name)} FOR EACH ROW\nBEGIN\n  -- {shell}\n"
        "  SET NEW.note = ';; $$ //';\nEND",
        f"CREATE EVENT {q(name + 'e')} ON SCHEDULE EVERY 1 DAY DISABLE DO\n  /* {shell} */ DELETE FROM {q(name)}",
    ]


def general_log(root: pymysql.connections.Connection, marker: str) -> list[str]:
    """The queries the server received on the connection that sent ``marker``."""
    with root.cursor() as cursor:
        cursor.execute("SELECT thread_id FROM mysql.general_log WHERE argument LIKE CONCAT('-- ', %s) "
                       "ORDER BY event_time DESC LIMIT 1", (f"{marker}%",))
        thread = cursor.fetchone()[0]
        cursor.execute("SELECT argument FROM mysql.general_log WHERE thread_id = %s AND command_type = 'Query' "
                       "ORDER BY event_time", (thread,))
        return [row[0] if isinstance(row[0], str) else bytes(row[0]).decode("utf-8") for row in cursor.fetchall()]


@pytest.fixture
def logged(root: pymysql.connections.Connection) -> Iterator[None]:
    with root.cursor() as cursor:
        cursor.execute("SET GLOBAL log_output = 'TABLE'")
        cursor.execute("SET GLOBAL general_log = 1")
    yield
    with root.cursor() as cursor:
        cursor.execute("SET GLOBAL general_log = 0")
        cursor.execute("TRUNCATE mysql.general_log")


def as_logged(statement: str) -> str:
    """The general log is utf8mb3: it writes characters beyond the BMP as \\xF0\\x9F..."""
    return "".join(char if ord(char) <= 0xFFFF else "".join(f"\\x{byte:02X}" for byte in char.encode())
                   for char in statement)


def sent(plan: RollbackPlan) -> list[str]:
    return [statement for step in plan.steps for statement in step.statements]


@pytest.mark.server
def test_hostile_names_through_the_client_do_exactly_what_execute_does(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str,
    pwned: Path, logged: None,
) -> None:
    name = f"x\n`'\"*/-- ;é中 \\! touch {pwned}"
    run_sql(root, fresh_db, *hostile_schema(fresh_db, name, pwned))
    info = store.create(mariadb.dsn, fresh_db)
    wanted = store.snapshot(info.id)
    copies = {how: f"{fresh_db}_{how}" for how in ("script", "execute")}
    for copy in copies.values():
        # The live side differs: an extra hostile table to drop, and a procedure to redo.
        run_sql(root, "mysql", f"CREATE DATABASE {q(copy)}")
        run_sql(root, copy, f"CREATE TABLE {q(name + 'extra')} (id INT)",
                f"CREATE PROCEDURE {q(name + 'p')}() SELECT 1")
    before = databases(root)
    planner = RollbackPlanner(store)
    try:
        plan = planner.plan(mariadb.dsn, info.id, target_database=copies["script"])
        script = plan.to_sql()
        assert run_client(mariadb, script).returncode != 0, "the guard must stop a client that drops comments"
        assert Snapshot.capture(mariadb.dsn, copies["script"]).schema_hash == plan.live_hash
        result = run_client(mariadb, script, "--comments")
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        queries = [s.strip() for s in general_log(root, "schemasync_backup rollback of") if not s.startswith("--")]
        # The charset command sends SET NAMES, then the comments guard; the use command asks for DATABASE().
        assert queries[0] == "SET NAMES utf8mb4" and "PROCESSLIST" in queries[1] and queries[2] == "SELECT DATABASE()"
        assert queries[3:] == [as_logged(statement) for statement in sent(plan)]
        executed = planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id, target_database=copies["execute"]),
                                   force=True)
        assert executed.verified
        by_script, by_execute = (Snapshot.capture(mariadb.dsn, copy) for copy in copies.values())
        assert by_script.schema_hash == by_execute.schema_hash == wanted.schema_hash
        assert {r.name: r.create_sql for r in by_script.routines} == {r.name: r.create_sql for r in wanted.routines}
        assert "-- a comment ;; $$ //" in next(r.create_sql for r in by_script.routines if r.name == name + "p")
        assert databases(root) == before
    finally:
        for copy in copies.values():
            run_sql(root, "mysql", f"DROP DATABASE IF EXISTS {q(copy)}")


@pytest.mark.server
def test_a_dropped_database_is_created_before_use(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, fresh_db: str, pwned: Path,
) -> None:
    name = f"t\n\\! touch {pwned}"
    run_sql(root, fresh_db, f"CREATE TABLE {q(name)} (id INT)")
    info = store.create(mariadb.dsn, fresh_db)
    run_sql(root, "mysql", f"DROP DATABASE {q(fresh_db)}")
    plan = RollbackPlanner(store).plan(mariadb.dsn, info.id)
    script = plan.to_sql()
    assert script.index("CREATE DATABASE") < script.index("USE ")
    result = run_client(mariadb, script)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert Snapshot.capture(mariadb.dsn, fresh_db).schema_hash == plan.target_hash


# --- the script's structure, without a server ---------------------------------------------------


def parse_script(script: str) -> list[str]:
    """The statements a client sends for ``script``, for scripts shaped as to_sql writes them:
    comment lines between statements, DELIMITER blocks, and no delimiter inside a statement."""
    statements, buffer, delimiter = [], [], ";"
    for line in script.split("\n"):
        if not buffer and (line.startswith("-- ") or not line):
            assert "\n" not in line and "\r" not in line
            continue
        if not buffer and line.startswith(("DELIMITER ", "charset ", "USE ")):
            delimiter = line.split(" ", 1)[1] if line.startswith("DELIMITER ") else delimiter
            continue
        buffer.append(line)
        if line.endswith(delimiter):
            text = "\n".join(buffer)[: -len(delimiter)]
            assert delimiter not in text
            statements.append(text.rstrip("\n"))
            buffer = []
    assert not buffer
    return statements


NAMES = st.lists(st.sampled_from([*HOSTILE, "a", "Z", " ", "9", "ü"]), min_size=1, max_size=8).map("".join).filter(
    lambda name: name.strip() == name and name)


@settings(max_examples=200, deadline=None)
@given(name=NAMES, words=st.lists(st.sampled_from(HOSTILE), max_size=6))
def test_the_script_holds_exactly_the_statements_execute_sends(name: str, words: list[str]) -> None:
    text = " ".join(words).replace("\\", "").replace("\r", "")
    body = f"BEGIN\n  -- {text.replace(chr(10), ' ')}\n  SELECT {quote_string(text)};\nEND"
    steps = (
        RollbackStep("drop table", "table", name, f"DROP TABLE {q(name)}"),
        RollbackStep("create routine", "routine", name, f"CREATE PROCEDURE {q(name)}()\n{body}",
                     session=("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci", "SET SESSION sql_mode = ''")),
    )
    plan = RollbackPlan("b1", "db " + name.replace("\\", "").replace("\n", "").replace("\r", "").replace("\t", ""),
                        "h1", "h2", steps, notes=(f"note about {q(name)}",))
    if "\r\n" in name:
        # The client reads CR LF as LF even between backticks: it would name another table.
        with pytest.raises(UnsafeScriptError, match="CR LF"):
            plan.to_sql()
        return
    script = plan.to_sql()
    statements = parse_script(script)
    assert statements[-4:] == [s for step in steps for s in (*step.session, step.sql)]


def test_to_sql_never_runs_out_of_delimiters() -> None:
    every = ";" + ";;$$//" + "".join(f"$${n}" for n in range(1, 30))
    statement = f"CREATE PROCEDURE p() SELECT '{every}'"
    delimiter = client_script.delimiter_for(statement)
    assert delimiter not in statement and delimiter == "$$30"
    step = RollbackStep("create routine", "routine", "p", statement, session=("SET SESSION sql_mode = ''",))
    assert parse_script(RollbackPlan("b", "d", "h", "h", (step,)).to_sql())[-1] == statement
    assert client_script.delimiter_for("SELECT '$'") == ";"
    assert client_script.delimiter_for("BEGIN SELECT 1; SELECT '$' ; END $") == ";;"


@pytest.mark.parametrize("statement", [
    "CREATE PROCEDURE p() BEGIN SELECT 1; --\x01 \\! touch /tmp/x\nEND",  # a server comment the client reads as code
    "CREATE PROCEDURE p() BEGIN SELECT 'a\r\nb'; END",  # the client would send LF
    "CREATE PROCEDURE p() BEGIN SELECT 1;\ndelimiter_count: LOOP LEAVE delimiter_count; END LOOP; END",
    "CREATE PROCEDURE p() BEGIN SELECT 'never closed; END",
    "source /etc/passwd",
])
def test_statements_the_client_would_change_are_refused(statement: str) -> None:
    step = RollbackStep("create routine", "routine", "p", statement, session=("SET SESSION sql_mode = ''",))
    with pytest.raises(UnsafeScriptError, match="rollback execute"):
        RollbackPlan("b", "d", "h", "h", (step,)).to_sql()


def test_database_names_the_use_command_cannot_read_are_refused() -> None:
    step = RollbackStep("drop table", "table", "t", "DROP TABLE `t`")
    with pytest.raises(UnsafeScriptError, match="database name"):
        RollbackPlan("b", "a\nb", "h", "h", (step,)).to_sql()


def test_comments_escape_names_onto_one_line() -> None:
    line = client_script.comment("a\nb\r\\! c\x01é")
    assert line == "-- a\\nb\\r\\\\! c\\x01é"


@pytest.mark.server
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(name=NAMES.filter(lambda n: "\r" not in n and "\t" not in n))
@example(name="`\n\\! touch /tmp/pwned-in-backticks")  # a line that starts with \! inside a quoted name
def test_random_hostile_names_roll_back_through_the_client(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, tmp_path_factory: pytest.TempPathFactory,
    name: str,
) -> None:
    database = "prop_script"
    run_sql(root, "mysql", f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    comment = name.replace("\n", " ")
    run_sql(root, database, f"CREATE TABLE {q(name)} ({q(name)} INT)",
            f"CREATE PROCEDURE {q(name)}()\nBEGIN\n  -- {comment}\n  SELECT {quote_string(name)};\nEND")
    store = BackupStore.open(str(tmp_path_factory.mktemp("prop")))
    info = store.create(mariadb.dsn, database)
    run_sql(root, database, f"DROP TABLE {q(name)}", f"DROP PROCEDURE {q(name)}",
            f"CREATE TABLE {q(name + '2')} (x INT)")
    plan = RollbackPlanner(store).plan(mariadb.dsn, info.id)
    result = run_client(mariadb, plan.to_sql(), "--comments")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert Snapshot.capture(mariadb.dsn, database).schema_hash == plan.target_hash
    assert not Path("/tmp/pwned-in-backticks").exists()


def test_the_client_reads_each_statement_under_the_sql_mode_set_before_it() -> None:
    body = "CREATE FUNCTION f() RETURNS TEXT RETURN 'c:\\dir\\'"  # a string only without backslash escapes
    for mode, safe in (("NO_BACKSLASH_ESCAPES", True), ("", False)):
        step = RollbackStep("create routine", "routine", "f", body, session=(f"SET SESSION sql_mode = '{mode}'",))
        plan = RollbackPlan("b", "d", "h", "h", (step,))
        if safe:
            assert parse_script(plan.to_sql())[-1] == body
        else:
            with pytest.raises(UnsafeScriptError, match="ends inside a quoted string"):
                plan.to_sql()
