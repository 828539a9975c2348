"""mysql-schema-sync end to end: the installed console script as a subprocess, on the real MariaDB and
the storage emulators; the long tail of commands through ``cli.main`` in-process (same code, faster).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pymysql
import pytest
import yaml
from storage_backends import StorageLocation

from schemasync_backup import Snapshot
from schemasync_backup.cli import main as cli
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

SCRIPT = Path(sys.executable).with_name("mysql-schema-sync")
KEY = EncryptionKey.generate()
PASSWORD = "Sup3r-secret-pw"
_names = itertools.count()


class Ran(NamedTuple):
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli_env(log_file: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MYSQL_SCHEMA_SYNC_")}
    env.update({"BACKUP_ENCRYPTION_KEY": KEY.material.hex(), "MYSQL_SCHEMA_SYNC_LOG_FILE": str(log_file),
                "COLUMNS": "120", **extra})
    return env


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None, user: int | None = None) -> Ran:
    """The installed console script, stdin and stdout not terminals (as in cron or CI)."""
    done = subprocess.run([str(SCRIPT), *args, "--config", str(config)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=180, check=False, user=user,
                          env=env or cli_env(config.parent / "backup.log"))
    return Ran(done.returncode, done.stdout, done.stderr)


def storage_section(location: StorageLocation | Path) -> dict[str, Any]:
    if isinstance(location, Path):
        return {"provider": "local", "local": {"base_path": str(location)}}
    scheme, _, rest = location.url.partition("://")
    bucket, _, prefix = rest.partition("/")
    options = location.options
    if scheme == "file":
        return {"provider": "local", "local": {"base_path": rest}}
    if scheme == "s3":
        return {"provider": "s3", "s3": {"bucket": bucket, "prefix": prefix, "access_key": options["key"],
                                         "secret_key": options["secret"],
                                         "endpoint": options["client_kwargs"]["endpoint_url"]}}
    if scheme == "az":
        return {"provider": "azure", "azure": {"container_name": bucket, "prefix": prefix,
                                               "connection_string": options["connection_string"]}}
    assert scheme == "gs", location.url
    return {"provider": "gcs", "gcs": {"bucket": bucket, "prefix": prefix, "endpoint": options["endpoint_url"],
                                       "project_id": options["project"]}}


def write_config(folder: Path, server: ThrowawayServer, database: str, storage: StorageLocation | Path, *,
                 user: str = "root", password: str = "", port: int | None = None, **backup: Any) -> Path:
    document = {
        "database": {"host": "127.0.0.1", "port": port or server.port, "username": user, "database": database,
                     **({"password": password} if password else {})},
        "backup": {"storage": storage_section(storage), "encryption": {"enabled": True}, **backup},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def shop(mariadb: ThrowawayServer) -> Iterator[str]:
    """A fresh copy of the bundled sample schema, dropped afterwards."""
    name = f"cli_{os.getpid()}_{next(_names)}"
    load_sample(mariadb.dsn, name)
    yield name
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")
    connection.close()


def migrate(server: ThrowawayServer, database: str) -> None:
    """A migration to roll back: a new column, a new table with rows, a dropped index."""
    connection = pymysql.connect(unix_socket=str(server.socket_path), user="root", database=database, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE customer ADD COLUMN nickname varchar(40) NULL")
        cursor.execute("CREATE TABLE feature_flag (id int PRIMARY KEY, name varchar(40))")
        cursor.execute("INSERT INTO feature_flag VALUES (1, 'a'), (2, 'b')")
    connection.close()


class Session:
    """``cli.main`` in this process: the same code as the script, without paying for a new interpreter."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def __call__(self, *args: str, stdin: str = "") -> Ran:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.main([*args, "--config", str(self.config)], stdout=out, stderr=err, stdin=io.StringIO(stdin))
        return Ran(rc, out.getvalue(), err.getvalue())


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment ``run_cli`` gives the script, for ``Session``."""
    for name, value in cli_env(tmp_path / "backup.log").items():
        monkeypatch.setenv(name, value)
    for name in [name for name in os.environ if name.startswith("MYSQL_SCHEMA_SYNC_")]:
        if name != "MYSQL_SCHEMA_SYNC_LOG_FILE":
            monkeypatch.delenv(name)


# --- the CI/CD flow through the installed script; on the emulators too ----------------------------------------


def test_ci_flow_create_migrate_rollback_validate(mariadb: ThrowawayServer, shop: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, mariadb, shop, tmp_path / "store")
    created = run_cli(config, "backup", "create", "--tag", "release=1.4.2", "--description", "pre-deploy",
                      "--format", "json")
    assert created.rc == 0, created.err
    backup_id = created.json()["backup_id"]
    assert re.fullmatch(r"backup-\d{8}-\d{6}-[0-9a-f]{8}", backup_id)
    assert created.json()["validation"]["valid"] and created.json()["tags"] == {"release": "1.4.2"}
    assert created.err == ""  # no progress bar, no warning noise when piped

    listed = run_cli(config, "backup", "list", "--tag", "release=1.4.2", "--format", "json")
    assert listed.rc == 0 and [entry["id"] for entry in listed.json()] == [backup_id]

    migrate(mariadb, shop)
    executed = run_cli(config, "rollback", "execute", "--backup-id", backup_id, "--force", "--format", "json")
    assert executed.rc == 0, executed.err
    result = executed.json()["result"]
    assert result["verified"] and result["steps_run"] == 2 and result["pre_rollback_backup_id"]

    validated = run_cli(config, "rollback", "validate", "--backup-id", backup_id)
    assert validated.rc == 0, validated.err
    assert f"{shop} matches backup {backup_id}" in validated.out


@pytest.mark.parametrize("storage_url", ["s3", "azure", "gcs"], indirect=True)
@pytest.mark.usefixtures("in_process")
def test_ci_flow_on_cloud_storage(storage_url: StorageLocation, mariadb: ThrowawayServer, shop: str,
                                  tmp_path: Path) -> None:
    """The script itself creates the backup on each emulator; the rest of the flow runs in-process."""
    config = write_config(tmp_path, mariadb, shop, storage_url)
    created = run_cli(config, "backup", "create", "--tag", "release=7", "--format", "json")
    assert created.rc == 0, created.err
    backup_id = created.json()["backup_id"]
    session = Session(config)
    assert [entry["id"] for entry in session("backup", "list", "--format", "json").json()] == [backup_id]
    migrate(mariadb, shop)
    executed = session("rollback", "execute", "--backup-id", backup_id, "--force", "--format", "json")
    assert executed.rc == 0 and executed.json()["result"]["verified"], executed.err
    assert session("rollback", "validate", "--backup-id", backup_id).rc == 0


# --- errors: one line, the documented wording, the documented exit code --------------------------------------


@pytest.mark.usefixtures("in_process")
def test_documented_errors_and_exit_codes(mariadb: ThrowawayServer, shop: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    refused_config = write_config(tmp_path, mariadb, shop, store, port=1)
    done = subprocess.run([sys.executable, "-m", "schemasync_backup", "backup", "create", "--config",
                           str(refused_config)], capture_output=True, text=True, check=False, timeout=180,
                          stdin=subprocess.DEVNULL, env=cli_env(tmp_path / "backup.log"))
    refused = Ran(done.returncode, done.stdout, done.stderr)  # python -m schemasync_backup: the same program
    assert refused.rc == 1 and refused.out == ""
    assert refused.err.startswith("Error: failed to connect to database: connection refused")
    assert refused.err.count("\n") == 1 and "Traceback" not in refused.err

    denied = run_cli(write_config(tmp_path, mariadb, shop, store, user="nobody", password=PASSWORD),
                     "backup", "create")
    assert denied.rc == 1 and denied.err.startswith("Error: access denied for user 'nobody'@'")
    assert PASSWORD not in denied.err
    denied_json = run_cli(write_config(tmp_path, mariadb, shop, store, user="nobody", password=PASSWORD),
                          "backup", "create", "--format", "json")
    assert denied_json.json()["exit_code"] == 1 and PASSWORD not in denied_json.out

    session = Session(write_config(tmp_path, mariadb, shop, store))
    missing = session("backup", "info", "--backup-id", "backup-20200101-000000-00000000")
    assert missing.rc == 5 and "not found" in missing.err
    assert "(`backup list` shows them)" in missing.err and "store.list()" not in missing.err
    # With --format json a program reads the failure from stdout, in the form it reads (the line on stderr stays).
    as_json = session("backup", "info", "--backup-id", "backup-20200101-000000-00000000", "--format", "json")
    assert as_json.rc == 5 and as_json.err.startswith("Error: ")
    assert as_json.json() == {"error": {"type": "BackupNotFoundError", "message": as_json.err[len("Error: "):].strip(),
                                        "subject": "backup-20200101-000000-00000000"}, "exit_code": 5}

    usage = session("backup", "list", "--limit", "none")
    assert usage.rc == 2 and usage.err.startswith("Error: argument --limit: expected a whole number")

    bad = tmp_path / "bad"
    bad.mkdir()
    bad_config = bad / "config.yaml"
    bad_config.write_text("database:\n  hots: x\nbackup:\n  compression:\n    algorithm: bzip2\n")
    invalid = Session(bad_config)("backup", "list")
    assert invalid.rc == 2 and invalid.err.startswith(
        f"Error: invalid configuration in {bad_config}: database.hots: unknown key (did you mean 'host'?)")
    listed = Session(bad_config)("backup", "validate-config", "--format", "json")
    assert listed.rc == 2 and len(listed.json()["problems"]) == 2

    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    unconfirmed = session("backup", "delete", "--backup-id", backup_id)
    assert unconfirmed.rc == 4 and "stdin is not a terminal; pass --force" in unconfirmed.err
    deleted = session("backup", "delete", "--backup-id", backup_id, "--force", "--format", "json")
    assert deleted.rc == 0 and deleted.json() == {"deleted": backup_id, "backup_id": backup_id}


@pytest.mark.usefixtures("in_process")
def test_checksum_mismatch_is_reported_and_the_backup_marked(mariadb: ThrowawayServer, shop: str,
                                                             tmp_path: Path) -> None:
    config = write_config(tmp_path, mariadb, shop, tmp_path / "store")
    session = Session(config)
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    address = json.loads((tmp_path / "store" / "manifests" / f"{backup_id}.json").read_text())["objects"][0]["address"]
    [damaged] = (tmp_path / "store" / "objects").glob(f"*/{address}.*")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    result = run_cli(config, "backup", "validate", "--backup-id", backup_id)
    assert result.rc == 3
    assert re.match(r"Error: backup validation failed: checksum mismatch \(expected: [0-9a-f]{64}, "
                    r"got: [0-9a-f]{64}\)", result.err)
    listed = session("backup", "list", "--status", "corrupted", "--format", "json")
    assert [entry["id"] for entry in listed.json()] == [backup_id]
    refused = session("rollback", "execute", "--backup-id", backup_id, "--force")
    assert refused.rc == 3 and refused.err.startswith("Error: refusing to roll back to a damaged backup")
    scan = session("backup", "recovery-scan")
    assert scan.rc == 3 and "damaged" in scan.out


# --- the log file and secrets ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("in_process")
def test_log_lines_serve_the_grep_recipes_and_secrets_never_leak(mariadb: ThrowawayServer, shop: str,
                                                                 tmp_path: Path) -> None:
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'cli_backup'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cursor.execute(f"GRANT ALL ON {quote_identifier(shop)}.* TO 'cli_backup'@'%'")
        cursor.execute("GRANT SELECT ON mysql.proc TO 'cli_backup'@'%'")
    connection.close()
    config = write_config(tmp_path, mariadb, shop, tmp_path / "store", user="cli_backup", password=PASSWORD,
                          logging={"level": "debug"})
    log = tmp_path / "backup.log"
    created = run_cli(config, "--debug", "backup", "create")
    assert created.rc == 0, created.err
    failed = run_cli(write_config(tmp_path, mariadb, "no_such_db", tmp_path / "store", user="cli_backup",
                                  password=PASSWORD), "--debug", "backup", "create")
    assert failed.rc == 1 and "Traceback (most recent call last)" in failed.err  # --debug shows it
    shown = Session(config)("backup", "validate-config")
    assert shown.rc == 0 and "password: '***'" in shown.out
    text = log.read_text()
    for output in (created.out, created.err, failed.out, failed.err, shown.out, text):
        assert PASSWORD not in output
    lines = text.splitlines()
    created_line = next(line for line in lines if " INFO backup.create ok " in line)
    for field in ("backup_id=backup-", "database=", "storage=", "duration=", "raw_size=", "stored_size="):
        assert field in created_line
    assert [line for line in lines if re.search("error|fail", line, re.I)]
    assert any("backup.create failed:" in line for line in lines)
    assert all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z ", line) for line in lines if " backup." in line)


# --- every other command, in-process -----------------------------------------------------------------------


@pytest.fixture
def session(mariadb: ThrowawayServer, shop: str, tmp_path: Path, in_process: None) -> Session:
    return Session(write_config(tmp_path, mariadb, shop, tmp_path / "store"))


def test_inspection_commands(session: Session, shop: str) -> None:
    first = session("backup", "create", "--tag", "k=v", "--format", "json").json()["backup_id"]
    second = session("backup", "create", "--format", "json").json()["backup_id"]
    listing = session("backup", "list")
    assert listing.rc == 0 and listing.out.splitlines()[0].split()[:4] == ["ID", "DATABASE", "CREATED", "(UTC)"]
    assert session("backup", "list", "--limit", "1", "--format", "json").json()[0]["id"] == second
    assert [b["id"] for b in session("backup", "list", "--tag", "k", "--format", "json").json()] == [first]
    assert session("backup", "list", "--created-after", "2999-01-01", "--format", "json").json() == []
    assert len(session("backup", "list", "--created-after", "24h", "--created-before", "now", "--format",
                       "json").json()) == 2
    assert session("backup", "list", "--created-before", "yesterday", "--format", "json").json() == []
    bad_time = session("backup", "list", "--created-after", "tomorrow")
    assert bad_time.rc == 2 and "duration ago" in bad_time.err
    info = session("backup", "info", "--backup-id", first, "--format", "json").json()
    assert info["manifest_checksum_valid"] and info["schema_objects"]["table"] == 5 and info["key_id"] == KEY.key_id
    assert "schema hash:" in session("backup", "info", "--backup-id", first).out
    stats = session("backup", "stats", "--format", "json").json()
    assert stats["backup_count"] == 2 and stats["by_database"][shop]["backup_count"] == 2
    assert session("backup", "stats", "--backup-id", first, "--format", "json").json()["compression_ratio"] > 1
    everything = session("backup", "validate-all", "--format", "json")
    assert everything.rc == 0 and everything.json()["valid"] == 2
    assert session("backup", "integrity-check", "--format", "json").json()["checked"] == 2
    validated = session("backup", "validate", "--backup-id", first)
    assert validated.rc == 0 and len(validated.out.splitlines()) == 2, validated.out
    assert re.search(r"parse checks: \d+ judged \(\d+ cached\), 0 not parsed by sqlglot", validated.out)
    assert session("backup", "validate", "--backup-id", first, "--verbose").rc == 0
    counted = session("backup", "validate", "--backup-id", first, "--format", "json").json()
    assert counted["parse_checked"] > 0 and counted["parse_failures"] == [] and counted["parse_failed"] == 0
    assert session("backup", "recovery-scan", "--format", "json").json() == []
    assert session("backup", "test-encryption", "--backup-id", first, "--format", "json").json()["opens"]
    assert session("backup", "test-encryption").rc == 0
    assert session("backup", "test-connection").out.startswith("OK       storage:")
    assert session("test-connection").out.startswith("OK       database: connected to mysql://root@127.0.0.1")
    health = session("backup", "health-check", "--format", "json")
    assert health.rc == 0 and health.json()["healthy"], health.out
    stale = session("backup", "health-check", "--max-age", "1ms")
    assert stale.rc == 3 and stale.err.startswith("Error: health check failed: last backup: the newest backup")
    report = session("backup", "report", "--output", str(session.config.parent / "report.json"), "--format", "json")
    assert report.json()["summary"]["intact"] == 2
    assert len(json.loads((session.config.parent / "report.json").read_text())["backups"]) == 2


def test_maintenance_commands(session: Session, tmp_path: Path) -> None:
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    archive = tmp_path / "export.tar.gz"
    exported = session("backup", "export", "--backup-id", backup_id, "--output", str(archive), "--format", "json")
    assert exported.rc == 0 and exported.json()["size"] == archive.stat().st_size
    assert session("backup", "export", "--backup-id", backup_id, "--output", str(archive)).rc == 4
    assert session("backup", "import", "--file", str(archive)).err.startswith("Error: backup")  # already there
    moved = session("backup", "move", "--destination", str(tmp_path / "elsewhere"), "--force", "--format", "json")
    assert moved.rc == 0 and moved.json()["moved"] == [backup_id]
    assert session("backup", "list", "--format", "json").json() == []
    imported = session("backup", "import", "--file", str(archive), "--format", "json")
    assert imported.rc == 0 and imported.json()["backup_id"] == backup_id
    recalculated = session("backup", "recalculate-checksum", "--backup-id", backup_id, "--force", "--format", "json")
    assert recalculated.rc == 0 and len(recalculated.json()["checksum"]) == 64
    recovered = session("backup", "partial-recovery", "--backup-id", backup_id, "--format", "json").json()
    assert recovered["lost"] == [] and recovered["new_backup_id"] != backup_id
    declined = session("backup", "delete", "--backup-id", backup_id, stdin="n\n")
    assert declined.rc == 4  # StringIO is no terminal: refused without asking


def test_backup_move_says_how_to_point_the_config_at_the_new_place(session: Session, tmp_path: Path) -> None:
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    destination = tmp_path / "new home"
    moved = session("backup", "move", "--destination", str(destination), "--force")
    assert moved.rc == 0, moved.err
    assert moved.out.splitlines()[-1] == (
        f"Backups now live at {destination}: set backup.storage.provider: local, backup.storage.local.base_path: "
        f"{destination} in {session.config}, or the next commands look in {tmp_path / 'store'}")
    # Doing as it says finds the backup there.
    document = yaml.safe_load(session.config.read_text())
    document["backup"]["storage"]["local"]["base_path"] = str(destination)
    session.config.write_text(yaml.safe_dump(document))
    assert [entry["id"] for entry in session("backup", "list", "--format", "json").json()] == [backup_id]
    again = session("backup", "move", "--destination", str(tmp_path / "third"), "--force", "--format", "json")
    assert again.json()["config"] == {"backup.storage.provider": "local",
                                      "backup.storage.local.base_path": str(tmp_path / "third")}


def test_rollback_commands(session: Session, mariadb: ThrowawayServer, shop: str) -> None:
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    assert session("rollback", "list", "--format", "json").json()[0]["id"] == backup_id
    empty = session("rollback", "plan", "--backup-id", backup_id, "--format", "json").json()
    assert empty["steps"] == []
    migrate(mariadb, shop)
    plan = session("rollback", "plan", "--backup-id", backup_id, "--show-sql")
    assert plan.rc == 0 and "DROP TABLE `feature_flag`;" in plan.out and "2 rows at risk" in plan.err
    assert plan.out.startswith("-- schemasync_backup rollback of") and plan.err.splitlines()[0] not in plan.out
    assert "rehearsal passed" in plan.err
    unrehearsed = session("rollback", "plan", "--backup-id", backup_id, "--no-rehearsal", "--format", "json").json()
    assert unrehearsed["rehearsal"]["status"] == "skipped" and unrehearsed["rehearsal"]["reason"] == "not asked for"
    # stdout is a script the client takes whole: run it into an empty database and compare with the backup.
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root") as connection:
        connection.cursor().execute(f"CREATE DATABASE {quote_identifier(shop + '_sql')}")
    script = session("rollback", "plan", "--backup-id", backup_id, "--show-sql", "--target-database", shop + "_sql").out
    client = subprocess.run(["mariadb", "--no-defaults", f"--socket={mariadb.socket_path}", "-uroot"],
                            input=script.encode(), capture_output=True, check=False, timeout=60)
    try:
        assert client.returncode == 0, client.stderr.decode(errors="replace")
        wanted = session("rollback", "plan", "--backup-id", backup_id, "--format", "json").json()["target_hash"]
        assert Snapshot.capture(mariadb.dsn, shop + "_sql").schema_hash == wanted
    finally:
        with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root") as connection:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS {quote_identifier(shop + '_sql')}")
    compared = session("schema", "compare", "--backup-id", backup_id, "--format", "json").json()
    assert not compared["identical"] and {c["name"] for c in compared["changes"]} == {"customer", "feature_flag"}
    assert session("rollback", "compare", "--backup-id", backup_id).rc == 0
    dry = session("rollback", "execute", "--backup-id", backup_id, "--dry-run", "--format", "json")
    assert dry.rc == 0 and dry.json()["executed"] is False
    # The guide's bare --parallel: accepted; on a schema-only backup said to change nothing, exit 0.
    bare = session("rollback", "execute", "--backup-id", backup_id, "--dry-run", "--parallel")
    assert bare.rc == 0 and "--parallel: no data to load" in bare.err, bare.err
    numbered = session("rollback", "execute", "--backup-id", backup_id, "--dry-run", "--parallel", "3",
                       "--batch-size", "10")
    assert numbered.rc == 0 and "--parallel and --batch-size: no data to load" in numbered.err
    assert session("rollback", "validate", "--backup-id", backup_id).rc == 3
    unconfirmed = session("rollback", "execute", "--backup-id", backup_id)
    assert unconfirmed.rc == 4 and "pass --force" in unconfirmed.err
    nothing = f"no rollback of backup {backup_id} has run: nothing to recover"
    for command in ("recovery-info", "manual-steps"):
        no_journal = session("rollback", command, "--backup-id", backup_id)
        assert no_journal.rc == 0 and no_journal.out.strip() == nothing, no_journal
        as_json = session("rollback", command, "--backup-id", backup_id, "--format", "json")
        assert as_json.rc == 0 and as_json.json()["ran"] is False and as_json.json()["summary"] == nothing
        assert as_json.json()["steps"] == []
    executed = session("rollback", "execute", "--backup-id", backup_id, "--force", "--disable-fk-checks")
    assert executed.rc == 0 and "the schema now matches the backup" in executed.out
    info = session("rollback", "recovery-info", "--backup-id", backup_id, "--format", "json").json()
    assert info["status"] == "completed" and info["steps_done"] == 2 and info["ran"] is True
    assert session("rollback", "manual-steps", "--backup-id", backup_id).out.strip() == "nothing left to run"
    assert session("rollback", "validate", "--backup-id", backup_id).rc == 0


def test_restore_test_command(session: Session, mariadb: ThrowawayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemasync_backup.validate.validator import RestoreTestResult, Validator

    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    passed = session("backup", "restore-test", "--backup-id", backup_id)
    assert passed.rc == 0 and passed.out.startswith(f"Restore test of {backup_id} passed:"), passed
    given = session("backup", "restore-test", "--backup-id", backup_id, "--scratch-dsn", mariadb.dsn,
                    "--format", "json")
    assert given.rc == 0 and given.json()["passed"] is True and given.json()["statements"] > 0
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root") as connection:
        cursor = connection.cursor()
        cursor.execute("SHOW DATABASES LIKE 'ssb\\_restore\\_test\\_%'")
        assert cursor.fetchall() == ()  # each scratch database was dropped
    assert session("backup", "restore-test", "--backup-id", "backup-20260101-000000-00000000").rc == 5
    differs = RestoreTestResult(backup_id, False, "a" * 64, "b" * 64, "ssb_restore_test_x", 7)
    monkeypatch.setattr(Validator, "restore_test", lambda self, wanted, scratch, progress=None: differs)
    failed = session("backup", "restore-test", "--backup-id", backup_id, "--format", "json")
    assert failed.rc == 3 and failed.json()["passed"] is False and "differs from the backup's" in failed.err


def test_bare_parallel_is_the_library_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from schemasync_backup.cli.parser import build_parser
    from schemasync_backup.rollback.data_restore import default_parallel

    execute = ["rollback", "execute", "--backup-id", "backup-20260101-000000-00000000"]
    assert build_parser().parse_args([*execute, "--parallel"]).parallel == 0
    assert build_parser().parse_args([*execute, "--parallel", "3"]).parallel == 3
    assert build_parser().parse_args(execute).parallel is None
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert (default_parallel(6), default_parallel(1)) == (6, 8)
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert default_parallel(1) == 1


@pytest.mark.usefixtures("in_process")
def test_retention_and_storage_commands(mariadb: ThrowawayServer, shop: str, tmp_path: Path) -> None:
    session = Session(write_config(tmp_path, mariadb, shop, tmp_path / "store", retention={"max_backups": 1}))
    older = session("backup", "create", "--format", "json").json()["backup_id"]
    newer = session("backup", "create", "--format", "json").json()["backup_id"]
    planned = session("backup", "cleanup", "--dry-run", "--format", "json").json()
    assert planned["remove_count"] == 1 and planned["decisions"][1]["backup_id"] == older
    assert session("backup", "cleanup").rc == 4  # no terminal, no --force
    removed = session("backup", "cleanup", "--force", "--format", "json").json()
    assert removed["removed"] == [older]
    usage = session("backup", "storage-usage", "--detailed", "--format", "json").json()
    assert usage["backup_count"] == 1 and usage["backups"][0]["backup_id"] == newer and "total_size_gb" in usage
    health = session("backup", "storage-health", "--format", "json")
    assert health.rc == 0 and health.json()["healthy"]
    assert session("backup", "storage-optimize", "--dry-run", "--format", "json").json()["dry_run"] is True
    automatic = Session(write_config(tmp_path, mariadb, shop, tmp_path / "store",
                                     retention={"max_backups": 1, "apply_on_create": True}))
    created = automatic("backup", "create", "--format", "json").json()
    assert created["retention"]["removed"] == [newer]
    assert [entry["id"] for entry in automatic("backup", "list", "--format", "json").json()] == [created["backup_id"]]


def test_rotate_key_command(mariadb: ThrowawayServer, shop: str, tmp_path: Path) -> None:
    storage = tmp_path / "store"
    config = write_config(tmp_path, mariadb, shop, storage)
    created = run_cli(config, "backup", "create", "--format", "json")
    assert created.rc == 0, created.err
    backup_id = created.json()["backup_id"]
    new = EncryptionKey.generate()
    rotated_env = cli_env(tmp_path / "backup.log", BACKUP_ENCRYPTION_KEY=new.material.hex(),
                          OLD_KEY=KEY.material.hex())
    (tmp_path / "rotating").mkdir()
    rotating = write_config(tmp_path / "rotating", mariadb, shop, storage,
                            encryption={"enabled": True, "previous_key_env_vars": ["OLD_KEY"]})
    refused = run_cli(rotating, "backup", "rotate-key", env=rotated_env)
    assert refused.rc == 4, refused.err  # no terminal to confirm on, no --force
    done = run_cli(rotating, "backup", "rotate-key", "--force", "--format", "json", env=rotated_env)
    assert done.rc == 0, done.err
    assert done.json() == {"key_id": new.key_id, "rotated": [backup_id]}
    only_new = cli_env(tmp_path / "backup.log", BACKUP_ENCRYPTION_KEY=new.material.hex())
    check = run_cli(config, "backup", "test-encryption", "--backup-id", backup_id, "--format", "json", env=only_new)
    assert check.rc == 0 and check.json()["key_id"] == new.key_id, check.out + check.err


def test_a_missing_key_exits_1_and_keeps_the_status_while_damage_exits_3(
    mariadb: ThrowawayServer, shop: str, tmp_path: Path
) -> None:
    storage = tmp_path / "store"
    config = write_config(tmp_path, mariadb, shop, storage)
    created = run_cli(config, "backup", "create", "--format", "json")
    assert created.rc == 0, created.err
    backup_id = created.json()["backup_id"]
    wrong = cli_env(tmp_path / "backup.log", BACKUP_ENCRYPTION_KEY=EncryptionKey.generate().material.hex())
    checked = run_cli(config, "backup", "validate", "--backup-id", backup_id, "--format", "json", env=wrong)
    assert checked.rc == 1, checked.out + checked.err
    assert checked.json()["keys_needed"] == [KEY.key_id] and not checked.json()["damaged"]
    listed = run_cli(config, "backup", "list", "--format", "json", env=wrong)
    assert [entry["status"] for entry in listed.json()] == ["COMPLETED"], listed.out
    planned = run_cli(config, "rollback", "plan", "--backup-id", backup_id, env=wrong)
    assert planned.rc == 1 and f"key {KEY.key_id} is needed" in planned.err, planned.err
    opens = run_cli(config, "backup", "test-encryption", "--backup-id", backup_id, env=wrong)
    assert opens.rc == 1, opens.out + opens.err
    hostile = run_cli(config, "backup", "validate", "--backup-id", "../../x")
    assert hostile.rc == 2 and "invalid backup id" in hostile.err, hostile.err
    record = next((storage / "objects").rglob("*.k-*"))
    data = bytearray(record.read_bytes())
    data[-2] ^= 1
    record.write_bytes(bytes(data))
    damaged = run_cli(config, "backup", "validate", "--backup-id", backup_id)
    assert damaged.rc == 3, damaged.out + damaged.err


def test_data_backups_from_the_command_line(session: Session, mariadb: ThrowawayServer, shop: str,
                                            tmp_path: Path) -> None:
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=shop,
                         autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO customer (email, full_name) VALUES ('a@x', 'A'), ('b@x', 'B')")
    migration = tmp_path / "migration.sql"
    migration.write_text("ALTER TABLE customer DROP COLUMN full_name;\n")
    created = session("backup", "create", "--data", "at-risk", "--migration", str(migration), "--format", "json")
    assert created.rc == 0, created.err
    backup_id = created.json()["backup_id"]
    assert created.json()["data"] == {"mode": "at-risk", "tables": 1, "rows": 2, "size": created.json()["data"]["size"]}
    assert "at-risk: 1 tables, 2 rows" in session("backup", "list").out
    assert "at-risk data: 1 table(s), 2 rows" in session("backup", "info", "--backup-id", backup_id).out
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=shop,
                         autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(migration.read_text())
    plan = session("rollback", "plan", "--backup-id", backup_id)
    assert "1 x refill columns" in plan.out
    executed = session("rollback", "execute", "--backup-id", backup_id, "--force", "--load-method", "insert",
                       "--batch-size", "1")
    assert executed.rc == 0, executed.err
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=shop) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT full_name FROM customer ORDER BY id")
        assert cursor.fetchall() == (("A",), ("B",))
    validated = session("rollback", "validate", "--backup-id", backup_id)
    assert validated.rc == 0 and "data: 1 table(s), 2 rows, all 1 chunks equal" in validated.out
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=shop,
                         autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE customer SET full_name = 'Z' WHERE email = 'b@x'")
    differs = session("rollback", "validate", "--backup-id", backup_id, "--format", "json")
    assert differs.rc == 3 and "the data of" in differs.err and "customer" in differs.err
    document = differs.json()
    assert document["matches"] is True and document["data_matches"] is False
    assert document["data"]["tables"][0]["first_difference"]["number"] == 1
    assert session("rollback", "validate", "--backup-id", backup_id, "--no-data").rc == 0
    assert session("backup", "create", "--data", "at-risk").rc == 2  # no --migration: refused, exit 2


def test_rollback_plan_file(session: Session, mariadb: ThrowawayServer, shop: str, tmp_path: Path) -> None:
    """plan --output F, review, execute --plan-file F: the console script runs the reviewed plan; every change in
    between (the file, the live schema, the flags) is refused with nothing changed."""
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    migrate(mariadb, shop)
    plan_file = tmp_path / "rollback-plan.json"
    planned = run_cli(session.config, "rollback", "plan", "--backup-id", backup_id, "--output", str(plan_file))
    assert planned.rc == 0, planned.err
    assert f"Plan saved to {plan_file}: review it, then run `rollback execute --plan-file {plan_file}`" in planned.out
    assert "2 rows at risk" in planned.out and json.loads(plan_file.read_text())["backup"]["id"] == backup_id
    shown = session("rollback", "plan", "--backup-id", backup_id, "--show-sql", "--output", str(tmp_path / "b.json"))
    assert shown.out.startswith("-- schemasync_backup") and "Plan saved to" in shown.err
    assert session("rollback", "plan", "--backup-id", backup_id, "--disable-fk-checks").rc == 2
    assert session("rollback", "execute").rc == 2

    before = Snapshot.capture(mariadb.dsn, shop).schema_hash
    other = "backup-20200101-000000-00000000"
    wrong = session("rollback", "execute", "--plan-file", str(plan_file), "--backup-id", other, "--force")
    assert wrong.rc == 2 and f"--backup-id {other} disagree with plan file {plan_file}" in wrong.err
    assert session("rollback", "execute", "--plan-file", str(plan_file), "--database", "elsewhere").rc == 2
    assert session("rollback", "execute", "--plan-file", str(plan_file), "--disable-fk-checks").rc == 2
    unconfirmed = session("rollback", "execute", "--plan-file", str(plan_file), "--backup-id", backup_id)
    assert unconfirmed.rc == 4 and "pass --force" in unconfirmed.err
    dry = session("rollback", "execute", "--plan-file", str(plan_file), "--dry-run", "--format", "json")
    assert dry.rc == 0 and dry.json()["executed"] is False and dry.json()["plan_file"] == str(plan_file)

    edited = tmp_path / "edited.json"
    edited.write_text(plan_file.read_text().replace("DROP TABLE `feature_flag`", "DROP TABLE `customer`"))
    tampered = session("rollback", "execute", "--plan-file", str(edited), "--force", "--format", "json")
    assert tampered.rc == 4 and tampered.json()["error"]["type"] == "PlanFileError"
    assert f"plan file {edited} was changed after it was saved" in tampered.err
    assert f"`rollback plan --backup-id ID --output {edited}`" in tampered.err
    missing = session("rollback", "execute", "--plan-file", str(tmp_path / "nowhere.json"), "--force")
    assert missing.rc == 1 and "No such file" in missing.err

    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=shop) as connection:
        connection.cursor().execute("ALTER TABLE product ADD COLUMN late int")
    stale = session("rollback", "execute", "--plan-file", str(plan_file), "--force")
    assert stale.rc == 4 and f"plan file {plan_file} no longer applies" in stale.err, stale.err
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash != before  # only the ALTER above changed it
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", database=shop) as connection:
        connection.cursor().execute("ALTER TABLE product DROP COLUMN late")
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash == before

    executed = run_cli(session.config, "rollback", "execute", "--plan-file", str(plan_file), "--force",
                       "--format", "json")
    assert executed.rc == 0, executed.err
    assert executed.json()["result"]["verified"] and executed.json()["plan_file"] == str(plan_file)
    assert session("rollback", "validate", "--backup-id", backup_id).rc == 0
    again = session("rollback", "execute", "--plan-file", str(plan_file), "--force")
    assert again.rc == 4 and "no longer applies" in again.err  # a plan runs once: the live schema moved on
