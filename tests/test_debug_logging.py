"""--debug and its environment variables: the SQL sent with its timings, the operations' durations, the
library's other loggers, never a secret, each traceback once. The CLI in-process on the real MariaDB."""

from __future__ import annotations

import base64
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pymysql
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_cli import KEY, PASSWORD, Session, in_process, shop, write_config  # noqa: F401 - fixtures this module uses

from schemasync_backup.capture import statement_log
from schemasync_backup.cli import logsetup
from schemasync_backup.sql.loggable import MAX_SHOWN, MIN_SEARCHABLE_SECRET, loggable
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.testing.sandbox import ThrowawayServer

USER = "debug_logger"
#: Every form the key or the password could take in a line: as configured, and as bytes in hex and base64.
SECRETS = (PASSWORD, quote(PASSWORD, safe=""), KEY.material.hex(), KEY.material.hex().upper(),
           base64.b64encode(KEY.material).decode(), base64.urlsafe_b64encode(KEY.material).decode())
SQL_LINE = re.compile(r"\bsql \S.* duration=\d+\.\d{3}s")
FINISHED_LINE = re.compile(r"backup\.create ok .*duration=\d+\.\d{3}s")


@pytest.fixture
def config(mariadb: ThrowawayServer, shop: str, tmp_path: Path, in_process: None) -> Path:  # noqa: F811
    """A password-protected user of ``shop`` and encrypted backups on file:// storage."""
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cursor.execute(f"GRANT ALL ON {quote_identifier(shop)}.* TO '{USER}'@'%'")
        cursor.execute(f"GRANT SELECT ON mysql.proc TO '{USER}'@'%'")
    connection.close()
    return write_config(tmp_path, mariadb, shop, tmp_path / "store", user=USER, password=PASSWORD)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@pytest.mark.parametrize("switch", [
    ("--debug",), {logsetup.DEBUG_ENV_VAR: "true"}, {logsetup.DEBUG_ENV_VAR: "1"}, {logsetup.DEBUG_ENV_VAR: "yes"},
    {logsetup.LEVEL_ENV_VAR: "debug"},
], ids=["flag", "DEBUG=true", "DEBUG=1", "DEBUG=yes", "LOG_LEVEL=debug"])
def test_debug_shows_the_sql_with_timings_and_no_secret(config: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         switch: tuple[str, ...] | dict[str, str]) -> None:
    for name, value in (switch.items() if isinstance(switch, dict) else ()):
        monkeypatch.setenv(name, value)
    ran = Session(config)(*(switch if isinstance(switch, tuple) else ()), "backup", "create")
    assert ran.rc == 0, ran.err
    log = (tmp_path / "backup.log").read_text()
    for output in (ran.err, log):
        sql = [line for line in output.splitlines() if SQL_LINE.search(line)]
        assert any("information_schema" in line and "rows=" in line for line in sql)
        assert any(line.endswith("pipelined") for line in sql)  # the capture's SHOW CREATE batch
        assert any(" connect mysql://" + USER in line for line in output.splitlines())
        assert all(len(line) < MAX_SHOWN + 200 for line in sql)
        assert FINISHED_LINE.search(output)
        assert " DEBUG " in output
    assert "schemasync_backup.sql: sql " in ran.err  # stderr names the logger
    assert_no_secret(ran.out, ran.err, log)


def test_at_info_the_operations_keep_their_durations_and_the_sql_stays_out(config: Path, tmp_path: Path) -> None:
    ran = Session(config)("backup", "create")
    assert ran.rc == 0 and ran.err == ""
    log = (tmp_path / "backup.log").read_text()
    assert FINISHED_LINE.search(log) and not SQL_LINE.search(log)


def test_a_failure_shows_its_traceback_once_and_only_under_debug(config: Path, mariadb: ThrowawayServer, shop: str,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    broken = write_config(tmp_path, mariadb, shop, blocker / "store", user=USER, password=PASSWORD)
    log = tmp_path / "backup.log"

    debug = Session(broken)("--debug", "backup", "create")
    assert debug.rc == 1
    last = _last_traceback_line(debug.err)
    assert debug.err.count(last) == 1
    assert debug.err.rstrip().splitlines()[-1].startswith("Error: ")
    text = log.read_text()
    assert text.count(last) == 1 and "backup.create failed:" in text
    assert_no_secret(debug.err, text)

    log.write_text("")
    quiet = Session(broken)("backup", "create")
    assert quiet.rc == 1 and "Traceback" not in quiet.err
    assert quiet.err.startswith("Error: ") and quiet.err.count("\n") == 1
    text = log.read_text()
    assert "backup.create failed:" in text and "Traceback" not in text  # the file at info: the line alone

    log.write_text("")
    at_debug = write_config(tmp_path, mariadb, shop, blocker / "store", user=USER, password=PASSWORD,
                            logging={"level": "debug"})
    filed = Session(at_debug)("backup", "create")
    assert filed.rc == 1 and "Traceback" not in filed.err
    assert log.read_text().count(last) == 1  # the file at debug: the traceback too


def _last_traceback_line(text: str) -> str:
    """The exception line closing the traceback in ``text`` ("module.Error: message")."""
    lines = text.splitlines()
    end = max(index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)"))
    return next(line for line in lines[end + 1:] if not line.startswith(" "))


@pytest.mark.parametrize(("name", "value"), [(logsetup.LEVEL_ENV_VAR, "loud"), (logsetup.DEBUG_ENV_VAR, "maybe")])
def test_an_invalid_variable_is_a_warning_naming_the_allowed_values(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    ran = Session(config)("backup", "list")
    assert ran.rc == 0
    assert ran.err.startswith(f"Warning: {name}={value!r} is not")
    allowed = "debug, info, warning, error" if name == logsetup.LEVEL_ENV_VAR else "1, true, yes, on, 0, false, no, off"
    assert allowed in ran.err and " DEBUG " not in ran.err


def test_the_level_variable_sets_the_file_level(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logsetup.LEVEL_ENV_VAR, "warning")
    assert Session(config)("backup", "create").rc == 0
    assert "backup.create ok" not in (tmp_path / "backup.log").read_text()


# --- the library's loggers reach the file and, under --debug, stderr ---------------------------------------


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[tuple[Path, io.StringIO]]:
    err = io.StringIO()
    setup = logsetup.configure(level=logging.DEBUG, debug=True, file=tmp_path / "backup.log",
                               scrub=lambda text: text, stderr=err)
    yield tmp_path / "backup.log", err
    setup.close()


@pytest.mark.parametrize(("level", "debug", "wanted"), [
    (logging.INFO, False, False), (logging.WARNING, False, False), (logging.DEBUG, False, True),
    (logging.INFO, True, True)])
def test_statements_are_formatted_only_when_a_handler_takes_them(tmp_path: Path, level: int, debug: bool,
                                                                 wanted: bool) -> None:
    setup = logsetup.configure(level=level, debug=debug, file=tmp_path / "backup.log", scrub=lambda text: text,
                               stderr=io.StringIO())
    try:
        assert statement_log.enabled() is wanted
    finally:
        setup.close()


def test_storage_lines_reach_the_file_and_stderr_under_debug(configured: tuple[Path, io.StringIO]) -> None:
    log, err = configured
    logging.getLogger("schemasync_backup.storage").debug("storage write objects/ab/cd 12.3 KiB duration=0.004s")
    assert "storage write objects/ab/cd 12.3 KiB duration=0.004s" in log.read_text()
    assert "schemasync_backup.storage: storage write objects/ab/cd" in err.getvalue()


def test_a_failed_statement_is_logged_with_its_error_type_not_its_message(
        mariadb: ThrowawayServer, configured: tuple[Path, io.StringIO]) -> None:
    from schemasync_backup.capture.connection import ConnectionSpec, connect, query
    from schemasync_backup.errors import QueryError

    connection = connect(ConnectionSpec.parse(mariadb.dsn))
    try:
        with pytest.raises(QueryError):
            query(connection, "SELECT * FROM no_such_database.t WHERE secret_value = 'row data'")
    finally:
        connection.close()
    log, _ = configured
    [line] = [line for line in log.read_text().splitlines() if "no_such_database" in line]
    assert "failed=ProgrammingError" in line and "duration=" in line and "row data" not in line


def test_table_data_statements_show_their_size_not_their_rows(
        mariadb: ThrowawayServer, fresh_db: str, configured: tuple[Path, io.StringIO]) -> None:
    from schemasync_backup.capture.connection import ConnectionSpec, connect_for_data, execute, load_local, stream

    spec = ConnectionSpec.parse(mariadb.dsn_for(fresh_db))
    connection = connect_for_data(spec, fresh_db, init_command="SET SESSION foreign_key_checks = 0")
    try:
        execute(connection, "CREATE TABLE person (id int PRIMARY KEY, name varchar(40))")
        rows = b"1\tAda Lovelace\n2\tGrace Hopper\n"
        assert load_local(connection, "LOAD DATA LOCAL INFILE 'x' INTO TABLE person", rows) == 2
        insert = "INSERT INTO person (id, name) VALUES (3, 'Alan Turing'), (4, 'Edsger Dijkstra')"
        assert execute(connection, insert) == 2
        assert len(list(stream(connection, "SELECT * FROM person"))) == 4
    finally:
        connection.close()
    text = configured[0].read_text()
    assert "Ada" not in text and "Alan" not in text
    lines = text.splitlines()
    assert any("sql SET SESSION foreign_key_checks = 0 duration=" in line for line in lines)  # the init_command
    assert any("LOAD DATA LOCAL INFILE 'x' INTO TABLE person duration=" in line
               and f"rows=2 sent_bytes={len(rows)}" in line for line in lines)
    assert any(re.search(r"sql INSERT INTO person \(id, name\) VALUES … \(\d+ chars\) duration=\S+ rows=2$", line)
               for line in lines)
    assert any(re.search(r"sql SELECT \* FROM person duration=\S+ streamed$", line) for line in lines)


# --- the statement as a log shows it ---------------------------------------------------------------------------


def test_rows_of_an_insert_stay_out_and_long_statements_are_cut() -> None:
    insert = "INSERT INTO `t` (`a`, `b`) VALUES " + ", ".join(f"({n}, 'customer {n}')" for n in range(1000))
    assert loggable(insert) == f"INSERT INTO `t` (`a`, `b`) VALUES … ({len(insert)} chars)"
    long = "SELECT " + ", ".join(f"`column_{n}`" for n in range(100)) + "\nFROM t"
    shown = loggable(long)
    assert shown.endswith(f"… ({len(long)} chars)") and len(shown) < MAX_SHOWN + 30 and "\n" not in shown
    assert loggable("SELECT 1") == "SELECT 1"


_STATEMENTS = ["CREATE USER 'u'@'%' IDENTIFIED BY '{}'", "ALTER USER u IDENTIFIED WITH ed25519 USING PASSWORD('{}')",
               "SET PASSWORD FOR u = PASSWORD('{}')", "CHANGE MASTER TO MASTER_PASSWORD='{}'", "SELECT '{}'",
               "GRANT ALL ON *.* TO u IDENTIFIED BY '{}' WITH GRANT OPTION", "SELECT `{}` FROM t", "{}"]


@given(secret=st.text(min_size=MIN_SEARCHABLE_SECRET),
       template=st.sampled_from(_STATEMENTS), before=st.text(), after=st.text())
@example(secret="abab", template="{}", before="a", after="bb")  # blanking one completes another
@example(secret="pass word", template="SELECT '{}'", before="", after="")
def test_no_secret_of_the_connection_gets_through(secret: str, template: str, before: str, after: str) -> None:
    escaped = secret.replace("\\", "\\\\").replace("'", "''") if "'{}'" in template else secret
    statement = before + template.format(escaped) + after
    for shown in (loggable(statement, [secret]), loggable(statement * 50, [secret, quote(secret, safe="")])):
        assert secret not in shown


def test_no_secret_is_made_where_the_cut_text_meets_its_length() -> None:
    assert "aaaa … (400" not in loggable("a" * 400, ["aaaa … (400"])
    assert "pass word" not in loggable("SELECT 'pass\n   word'", ["pass word"])


@given(password=st.text(min_size=1, alphabet=st.characters(blacklist_categories=("Cs",))))
def test_a_password_set_in_a_statement_is_blanked_whatever_its_length(password: str) -> None:
    literal = password.replace("\\", "\\\\").replace("'", "\\'")
    shown = loggable(f"CREATE USER 'someone'@'%' IDENTIFIED BY '{literal}'")
    assert shown == "CREATE USER '***'@'***' IDENTIFIED BY '***'"


def test_the_line_for_a_statement_names_no_password(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=statement_log.SQL_LOGGER.name):
        statement_log.log_statement(b"SELECT 'hunter22' AS echo", 0.0123, rows=1,
                                    secrets=statement_log.password_forms(b"hunter22"))
    assert caplog.messages == ["sql SELECT '***' AS echo duration=0.012s rows=1"]
