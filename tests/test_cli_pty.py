"""A person at a terminal: the installed script on a pseudo-terminal shows progress bars and asks first;
with --format json, or without a terminal, it does neither."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pymysql
import pytest
import yaml
from test_cli import SCRIPT, Session, cli_env, in_process, migrate, run_cli, shop, write_config  # noqa: F401 - fixtures this module uses

from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server
ANSWER_TIMEOUT = 120.0
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(screen: str) -> str:
    """The screen without its escape sequences (colours, cursor moves): the text a person reads."""
    return ESCAPE.sub("", screen)


def in_terminal(args: list[str], env: dict[str, str], answers: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the script with stdin, stdout and stderr on a pty; type each answer once its prompt shows."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([str(SCRIPT), *args], stdin=slave, stdout=slave, stderr=slave,
                               env={**env, "TERM": "xterm"}, start_new_session=True)
    os.close(slave)
    pending = dict(answers or {})
    output = b""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                for prompt in list(pending):
                    if prompt.encode() in output:
                        os.write(master, pending.pop(prompt).encode())
            elif process.poll() is not None:
                break
        rc = process.wait(timeout=ANSWER_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return rc, output.decode(errors="replace")


@pytest.fixture
def terminal_setup(request: pytest.FixtureRequest, mariadb: ThrowawayServer, tmp_path: Path) -> tuple[Path, Session]:
    request.getfixturevalue("in_process")
    config = write_config(tmp_path, mariadb, request.getfixturevalue("shop"), tmp_path / "store")
    return config, Session(config)


def test_rollback_at_a_terminal_asks_then_shows_progress(terminal_setup: tuple[Path, Session],
                                                         mariadb: ThrowawayServer, tmp_path: Path) -> None:
    config, session = terminal_setup
    database = yaml.safe_load(config.read_text())["database"]["database"]
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    migrate(mariadb, database)
    rc, screen = in_terminal(["rollback", "execute", "--backup-id", backup_id, "--config", str(config)],
                             cli_env(tmp_path / "backup.log"), {"[y/N]": "y\n"})
    assert rc == 0, screen
    assert "2 steps, 2 destructive" in screen and "the table and all its rows are dropped: 2 rows at risk" in screen
    assert re.search(rf"Run 2 step\(s\), 2 destructive, on database {database}\? \[y/N\]", plain(screen))
    assert re.search(r"Rolling back ━+ 2/2 100% \d+:\d\d:\d\d", plain(screen)), screen
    assert "the schema now matches the backup" in screen
    assert session("rollback", "validate", "--backup-id", backup_id).rc == 0


def test_validate_all_draws_a_bar_only_for_people(terminal_setup: tuple[Path, Session], tmp_path: Path) -> None:
    config, session = terminal_setup
    for _ in range(2):
        assert session("backup", "create").rc == 0
    env = cli_env(tmp_path / "backup.log")
    rc, screen = in_terminal(["backup", "validate-all", "--config", str(config)], env)
    assert rc == 0 and re.search(r"Validating ━+ 2/2 100%", plain(screen)), screen
    rc, screen = in_terminal(["backup", "validate-all", "--format", "json", "--config", str(config)], env)
    assert rc == 0 and "Validating" not in screen and "\x1b" not in screen
    assert json.loads(screen.replace("\r\n", "\n"))["valid"] == 2  # nothing but the JSON document
    piped = session("backup", "validate-all")
    assert piped.rc == 0 and "Validating" not in piped.out + piped.err


def test_a_no_at_the_prompt_refuses(terminal_setup: tuple[Path, Session], tmp_path: Path) -> None:
    config, session = terminal_setup
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    rc, screen = in_terminal(["backup", "delete", "--backup-id", backup_id, "--config", str(config)],
                             cli_env(tmp_path / "backup.log"), {"[y/N]": "n\n"})
    assert rc == 4 and "This cannot be undone. [y/N]" in plain(screen)
    assert f"Error: delete backup {backup_id}: cancelled" in screen
    assert session("backup", "info", "--backup-id", backup_id).rc == 0


def test_move_shows_counts_and_bytes_at_a_terminal_and_no_escapes_when_piped(
        terminal_setup: tuple[Path, Session], tmp_path: Path) -> None:
    config, session = terminal_setup
    for _ in range(2):
        assert session("backup", "create").rc == 0
    env = cli_env(tmp_path / "backup.log")
    rc, screen = in_terminal(["backup", "move", "--destination", str(tmp_path / "there"), "--config", str(config)],
                             env, {"[y/N]": "y\n"})
    text = plain(screen)
    assert rc == 0, screen
    size = r"\d+(?:\.\d)? (?:B|KiB|MiB)"
    assert re.search(rf"Moving ━+ 2/2 100% ({size})/\1 \d+:\d\d:\d\d", text), screen  # n/total, then bytes
    assert "\x1b[" in screen and "Moved 2 backup(s)" in text  # drawn with control codes: a terminal
    assert session("backup", "create").rc == 0
    piped = run_cli(config, "backup", "move", "--destination", str(tmp_path / "again"), "--force", env=env)
    assert piped.rc == 0 and "Moved 1 backup(s)" in piped.out, piped.err
    assert piped.err == "" and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", piped.out)  # no bar, no escapes


def test_no_colour_at_a_terminal_with_no_color(terminal_setup: tuple[Path, Session], tmp_path: Path) -> None:
    config, session = terminal_setup
    assert session("backup", "create").rc == 0
    env = {**cli_env(tmp_path / "backup.log"), "NO_COLOR": "1"}
    rc, screen = in_terminal(["backup", "validate-all", "--config", str(config)], env)
    assert rc == 0 and re.search(r"Validating ━+ 1/1 100%", plain(screen)), screen
    assert not re.search(r"\x1b\[[0-9;]*3[0-9;]*m", screen), screen  # no foreground colour code


def add_notes(server: ThrowawayServer, database: str, *statements: str) -> None:
    """A table of 1,500 rows (or ``statements`` instead)."""
    connection = pymysql.connect(unix_socket=str(server.socket_path), user="root", database=database, autocommit=True)
    with connection.cursor() as cursor:
        for statement in statements or ("CREATE TABLE note (id int PRIMARY KEY, body varchar(40))",
                                        "INSERT INTO note SELECT seq, CONCAT('note ', seq) FROM seq_1_to_1500"):
            cursor.execute(statement)
    connection.close()


def test_create_shows_objects_tables_and_frames_at_a_terminal_only(terminal_setup: tuple[Path, Session],
                                                                  mariadb: ThrowawayServer, tmp_path: Path) -> None:
    config, session = terminal_setup
    database = yaml.safe_load(config.read_text())["database"]["database"]
    add_notes(mariadb, database)
    env = cli_env(tmp_path / "backup.log")
    rc, screen = in_terminal(["backup", "create", "--data", "all", "--config", str(config)], env)
    text = plain(screen)
    assert rc == 0 and "Created backup" in text, screen
    size = r"\d+(?:\.\d)? (?:B|KiB|MiB)"
    title = f"Backing up {database}"
    assert re.search(rf"{title}: objects captured ━+ (\d+)/\1 100%", text), screen
    assert re.search(rf"{title}: tables read ━+ (\d+)/\1 100% \d+:\d\d:\d\d 1,500 rows, {size}", text), screen
    assert re.search(rf"{title}: frames written ━+ (\d+)/\1 100% ({size})/\2", text), screen
    assert re.search(rf"{title}: frames written ━+ .* 2/2 objects", text), screen  # the snapshot and its index
    # Then the validation: every object, the data's too, each frame read back.
    assert re.search(rf"{title}: frames validated ━+ (\d+)/\1 100% ({size})/\2 \d+:\d\d:\d\d 3/3 objects", text), \
        screen
    for quiet in (["--format", "json"], ["--quiet"], ["-q", "--format", "json"]):
        rc, screen = in_terminal(["backup", "create", *quiet, "--config", str(config)], env)
        assert rc == 0 and "Backing up" not in screen and "━" not in screen and "\x1b" not in screen, screen
        if "json" in quiet:
            assert json.loads(screen.replace("\r\n", "\n"))["backup_id"]  # nothing but the JSON document
        else:
            assert screen.startswith("Created backup"), screen
    piped = session("backup", "create", "--data", "all")
    assert piped.rc == 0 and piped.err == "" and "Backing up" not in piped.out, piped.err


def test_rollback_at_a_terminal_counts_the_rows_restored(terminal_setup: tuple[Path, Session],
                                                         mariadb: ThrowawayServer, tmp_path: Path) -> None:
    config, session = terminal_setup
    database = yaml.safe_load(config.read_text())["database"]["database"]
    add_notes(mariadb, database)
    backup_id = session("backup", "create", "--data", "all", "--format", "json").json()["backup_id"]
    add_notes(mariadb, database, "DROP TABLE note")
    rc, screen = in_terminal(["rollback", "execute", "--backup-id", backup_id, "--force", "--config", str(config)],
                             cli_env(tmp_path / "backup.log"))
    text = plain(screen)
    assert rc == 0 and "the schema now matches the backup" in text, screen
    assert re.search(r"Rolling back ━+ (\d+)/\1 100% \d+:\d\d:\d\d", text), screen
    assert re.search(r"Rolling back ━+ 2/2 100% \d+:\d\d:\d\d 1,500 rows restored, ([\d.]+ KiB)/\1", text), screen


def test_export_and_restore_test_show_counts_at_a_terminal_and_json_stays_clean(
        terminal_setup: tuple[Path, Session], mariadb: ThrowawayServer, tmp_path: Path) -> None:
    config, session = terminal_setup
    database = yaml.safe_load(config.read_text())["database"]["database"]
    add_notes(mariadb, database)
    backup_id = session("backup", "create", "--data", "all", "--format", "json").json()["backup_id"]
    env = cli_env(tmp_path / "backup.log")
    size = r"\d+(?:\.\d)? (?:B|KiB|MiB)"
    archive = tmp_path / "backup.tar.gz"
    rc, screen = in_terminal(["backup", "export", "--backup-id", backup_id, "--output", str(archive),
                              "--config", str(config)], env)
    text = plain(screen)
    assert rc == 0 and "Exported" in text, screen
    # The bytes written are the archive's size.
    assert re.search(rf"Exporting: objects archived ━+ 3/3 100% \d+:\d\d:\d\d 3/3 objects, ({size})\s.*"
                     rf"Exported {backup_id} to {archive} \(\1\)", text, re.DOTALL), screen
    rc, screen = in_terminal(["backup", "restore-test", "--backup-id", backup_id, "--config", str(config)], env)
    text = plain(screen)
    assert rc == 0 and "passed" in text, screen
    assert re.search(r"Restore test: statements run ━+ (\d+)/\1 100%", text), screen
    assert re.search(r"Restore test: objects captured ━+ (\d+)/\1 100%", text), screen  # the scratch copy's
    assert re.search(rf"Restore test: chunks restored ━+ (\d+)/\1 100% ({size})/\2 \d+:\d\d:\d\d 1,500 rows",
                     text), screen
    for args in (["backup", "export", "--backup-id", backup_id, "--output", str(tmp_path / "again.tar.gz")],
                 ["backup", "restore-test", "--backup-id", backup_id]):
        rc, screen = in_terminal([*args, "--format", "json", "--config", str(config)], env)
        assert rc == 0 and "━" not in screen and "\x1b" not in screen, screen
        assert json.loads(screen.replace("\r\n", "\n"))["backup_id"] == backup_id  # nothing but the JSON document


def test_import_scan_recovery_and_the_data_check_show_counts_at_a_terminal(
        terminal_setup: tuple[Path, Session], mariadb: ThrowawayServer, tmp_path: Path) -> None:
    config, session = terminal_setup
    database = yaml.safe_load(config.read_text())["database"]["database"]
    add_notes(mariadb, database)
    backup_id = session("backup", "create", "--data", "all", "--format", "json").json()["backup_id"]
    env = cli_env(tmp_path / "backup.log")
    size = r"\d+(?:\.\d)? (?:B|KiB|MiB)"
    archive = tmp_path / "backup.tar.gz"
    assert session("backup", "export", "--backup-id", backup_id, "--output", str(archive)).rc == 0
    assert session("backup", "delete", "--backup-id", backup_id, "--force").rc == 0
    commands = {
        ("backup", "import", "--file", str(archive)): rf"Importing: objects imported ━+ 3/3 100% ({size})/\1",
        ("backup", "recovery-scan"): r"Scanning: backups checked ━+ 1/1 100%",
        ("backup", "partial-recovery", "--backup-id", backup_id): r"Recovering: frames salvaged ━+ (\d+)/\1 100%",
        ("rollback", "validate", "--backup-id", backup_id):
            rf"Comparing: tables compared ━+ (\d+)/\1 100% ({size})/\2 \d+:\d\d:\d\d 1/1 objects, 1,500 rows",
    }
    for args, bar in commands.items():
        rc, screen = in_terminal([*args, "--config", str(config)], env)
        assert rc == 0 and re.search(bar, plain(screen)), screen
