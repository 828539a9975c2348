"""The operator's guide, walked as written: its config, then every ``mysql-schema-sync`` command in its order,
on local storage and on the S3, Azure and GCS emulators; then each of its error situations, checked against
the guide's own words.

The guide is read from ``../shared/reference/troubleshooting-guide.md`` (kept verbatim there), so a change to
it is walked too. What the guide leaves to the reader is filled in the way an operator would: ``<backup-id>``
is the backup the section is about, ``/new/path`` a new place on the same storage, ``config.yaml`` the config,
and before each ``rollback execute`` a migration has gone wrong (that is when the guide runs it). Questions
are answered yes, as the operator at a terminal would.
"""

from __future__ import annotations

import copy
import errno
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs
import fsspec
import pytest
import yaml
from storage_backends import StorageLocation
from test_cli import KEY, SCRIPT, Ran, cli_env, in_process, migrate, shop, storage_section  # noqa: F401 - fixtures

from schemasync_backup.cli import main as cli
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "troubleshooting-guide.md"
#: A command the guide runs (not a path such as /var/log/mysql-schema-sync/), as far as the shell line goes:
#: up to a pipe, a redirection, a closing ``$(...)`` or a comment; ``<backup-id>`` is a placeholder.
_COMMAND = re.compile(r"(?<![/\w-])mysql-schema-sync (?=[-\w])(?:[^|<>)#\n]|<[^>\s]*>)*")
_FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.S | re.M)
_HEADING = re.compile(r"^#{2,4} (.+)$", re.M)


@attrs.frozen
class GuideCommand:
    section: str
    line: str  # the whole shell line, for messages
    argv: tuple[str, ...]  # after mysql-schema-sync
    redirect: str | None  # ``> file``
    assigns: str | None  # ``NAME=$(... | jq -r '.[0].id')``


def guide_text() -> str:
    if not GUIDE.is_file():
        pytest.skip(f"the operator's guide is not at {GUIDE}")
    return GUIDE.read_text()


def _sections(text: str) -> list[tuple[int, str]]:
    return [(match.start(), match.group(1).strip()) for match in _HEADING.finditer(text)]


def guide_commands(text: str) -> list[GuideCommand]:
    headings = _sections(text)
    commands = []
    for fence in _FENCE.finditer(text):
        if fence.group(1) != "bash":
            continue
        section = [title for start, title in headings if start < fence.start()][-1]
        for line in fence.group(2).splitlines():
            found = _COMMAND.search(line)
            if found is None or line.lstrip().startswith("#"):
                continue
            argv = tuple(shlex.split(found.group(0)))[1:]
            rest = line[found.end():]
            redirect = re.match(r"\s*>\s*(\S+)", rest)
            assigns = re.match(r"\s*(\w+)=\$\(", line)
            commands.append(GuideCommand(section, line.strip(), argv, redirect and redirect.group(1),
                                         assigns and assigns.group(1)))
    return commands


def _merge(into: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def guide_config(text: str) -> dict[str, Any]:
    """Every YAML block of the guide, in its order, as the operator pastes them into one config.yaml."""
    config: dict[str, Any] = {}
    for fence in _FENCE.finditer(text):
        if fence.group(1) == "yaml":
            _merge(config, yaml.safe_load(fence.group(2)))
    for line in re.findall(r"^# Edit config.yaml:\n((?:[a-z_ ]+:.*\n)+)", text, re.M):
        _merge(config, yaml.safe_load(line))
    return config


def test_the_guide_is_read_whole() -> None:
    """The walk below is only as good as this reading of the guide: every command and YAML block is found."""
    text = guide_text()
    commands = guide_commands(text)
    assert len(commands) == 57
    assert [command.argv[:2] for command in commands[:3]] == [("backup", "health-check"),
                                                             ("backup", "test-connection"),
                                                             ("backup", "validate-config")]
    assert commands[-4].assigns == "BACKUP_ID" and commands[-4].argv[-2:] == ("--format", "json")
    assert commands[-1].redirect == "support-bundle/config-validation.txt"
    config = guide_config(text)
    assert config["retention"] == {"max_backups": 3, "max_age": "24h"}
    assert config["compression"]["level"] == 1 and config["backup"]["buffer_size"] == "64MB"
    assert set(config["storage"]) == {"s3", "azure"}


# --- the walk -----------------------------------------------------------------------------------------------


class _OperatorAtTerminal(io.StringIO):
    """stdin of a person at a terminal who answers yes to every question."""

    def __init__(self) -> None:
        super().__init__("y\n" * 20)

    def isatty(self) -> bool:
        return True


@attrs.define
class Walk:
    """One operator following the guide: the config they wrote, and what the guide's placeholders stand for."""

    server: ThrowawayServer
    database: str
    folder: Path
    storage: dict[str, Any]
    destination: str
    config_path: Path = attrs.field(init=False)
    backup_id: str = ""
    variables: dict[str, str] = attrs.field(factory=dict)
    ran: list[tuple[str, Ran]] = attrs.field(factory=list)
    argvs: list[list[str]] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.config_path = self.folder / "config.yaml"
        self.write_config()

    def write_config(self) -> None:
        # The guide's layout: storage, retention and compression at the top level, beside its backup: block.
        document = guide_config(guide_text())
        _merge(document, {
            "database": {"host": "127.0.0.1", "port": self.server.port, "username": "root",
                         "database": self.database},
            "storage": self.storage,
            "encryption": {"enabled": True},  # the key: BACKUP_ENCRYPTION_KEY, as the guide's Security section has it
        })
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    def run(self, *argv: str) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.main([*argv, "--config", str(self.config_path)], stdout=out, stderr=err,
                      stdin=_OperatorAtTerminal())
        return Ran(rc, out.getvalue(), err.getvalue())

    def new_place(self) -> str:
        """``/new/path``; the second time the guide moves, the operator picks another new place."""
        moves = sum(argv[:2] == ["backup", "move"] for argv in self.argvs)
        return f"{self.destination}-{moves + 1}"

    def newest_backup(self) -> str:
        listed = self.run("backup", "list", "--database", self.database, "--format", "json")
        assert listed.rc == 0, listed.err
        return str(listed.json()[0]["id"])

    def resolve(self, argument: str) -> str:
        argument = argument.replace("<backup-id>", self.backup_id).replace("/new/path", self.new_place())
        argument = re.sub(r"\$(\w+)", lambda match: self.variables[match.group(1)], argument)
        return {"config.yaml": str(self.config_path), "your-db": self.database}.get(argument, argument)

    def step(self, command: GuideCommand) -> Ran:
        argv = [self.resolve(argument) for argument in command.argv]
        if argv[:2] == ["rollback", "execute"]:
            migrate(self.server, self.database)  # the migration that went wrong, which the guide now undoes
        if "--config" in argv:  # `test-connection --config config.yaml`: ours adds --config too; the last wins
            del argv[argv.index("--config"):argv.index("--config") + 2]
        ran = self.run(*argv)
        self.ran.append((command.line, ran))
        self.argvs.append(argv)
        assert ran.rc == 0, f"[{command.section}] {command.line}\nexit {ran.rc}\n{ran.err}{ran.out}"
        assert "Traceback" not in ran.err
        if command.redirect:
            target = self.folder / command.redirect
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(ran.out)
        if command.assigns:  # `$(mysql-schema-sync backup list --limit 1 --format json | jq -r '.[0].id')`
            self.variables[command.assigns] = ran.json()[0]["id"]
        self.after(argv, ran)
        return ran

    def after(self, argv: list[str], ran: Ran) -> None:
        """What the operator does next: follow the output's advice, and find the backup the guide talks about."""
        if argv[:2] == ["backup", "move"]:
            destination = argv[argv.index("--destination") + 1]
            assert destination in ran.out, ran.out
            assert "storage" in ran.out  # it says how to point the config at the new place: we do as it says
            self.storage = destination_storage(self.storage, destination)
            self.write_config()
        gone = argv[:2] in (["backup", "delete"], ["backup", "cleanup"], ["backup", "move"]) and self.run(
            "backup", "info", "--backup-id", self.backup_id).rc != 0
        if gone:
            self.backup_id = self.newest_backup()
        if argv[:2] == ["rollback", "execute"]:
            assert self.run("rollback", "validate", "--backup-id", self.backup_id).rc == 0


def destination_storage(storage: dict[str, Any], destination: str) -> dict[str, Any]:
    """The storage section that points at ``destination``, as ``backup move`` tells the operator to write it."""
    provider = storage["provider"]
    moved = copy.deepcopy(storage)
    if provider == "local":
        moved["local"]["base_path"] = destination
    else:
        section = {"s3": "s3", "azure": "azure", "gcs": "gcs"}[provider]
        moved[section]["prefix"] = destination.split("://", 1)[1].split("/", 1)[1]
    return moved


BACKENDS = ["file", "s3", "azure", "gcs"]


@pytest.fixture
def walk(storage_url: StorageLocation, mariadb: ThrowawayServer, shop: str, tmp_path: Path,  # noqa: F811
         in_process: None) -> Walk:  # noqa: F811
    scheme, _, rest = storage_url.url.partition("://")
    destination = str(tmp_path / "new" / "path") if scheme == "file" else f"{scheme}://{rest.split('/')[0]}/new-path"
    return Walk(mariadb, shop, tmp_path, storage_section(storage_url), destination)


#: What each command says when it did its job, a pattern (the walk also requires exit 0 and no traceback).
_SAYS = {
    ("backup", "health-check"): "overall: ok",
    ("backup", "test-connection"): "is reachable",
    ("backup", "validate-config"): ": valid",
    ("backup", "integrity-check"): r"1 valid, 0 invalid",
    ("backup", "storage-usage"): "BACKUP_ID",
    ("--debug", "backup"): "Created backup",
    ("test-connection",): "OK       database: connected",
    ("backup", "cleanup"): "kept",
    ("backup", "move"): "Moved",
    ("backup", "info"): "status:            COMPLETED",
    ("backup", "storage-health"): "healthy",
    ("backup", "recalculate-checksum"): "Recalculated the checksums",
    ("backup", "validate"): r": valid \(full check",
    ("backup", "create"): "Created backup",
    ("backup", "partial-recovery"): "intact schema objects",
    ("backup", "delete"): "Deleted backup",
    ("rollback", "plan"): "rollback of|already matches",
    ("schema", "compare"): "is identical to backup",
    ("rollback", "execute"): "the schema now matches the backup",
    ("rollback", "recovery-info"): "completed",
    ("rollback", "manual-steps"): "nothing left to run",
    ("backup", "stats"): "compression ratio",
    ("backup", "test-encryption"): "opens with key",
    ("backup", "list"): "COMPLETED",
    ("backup", "validate-all"): "valid",
    ("backup", "recovery-scan"): "nothing found",
    ("rollback", "validate"): "matches backup",
    ("backup", "storage-optimize"): "",
}


@pytest.mark.parametrize("storage_url", BACKENDS, indirect=True)
def test_walk_the_guide_as_written(walk: Walk) -> None:
    text = guide_text()
    first = walk.run("backup", "create", "--description", "before the guide")  # the backup the guide is about
    assert first.rc == 0, first.err
    walk.backup_id = walk.newest_backup()
    log = walk.folder / "backup.log"
    for command in guide_commands(text):
        ran = walk.step(command)
        said = _SAYS.get(command.argv[:2]) or _SAYS.get(command.argv[:1], "")
        assert re.search(said, ran.out + ran.err), f"{command.line}: expected {said!r} in\n{ran.out}{ran.err}"
        if {"--parallel", "--batch-size"} & set(command.argv):  # the walk's backups hold the schema only
            assert "no data to load" in ran.err
        if command.argv[:2] == ("--debug", "backup"):
            # The guide's Log Analysis greps the log for timings and storage operations.
            lines = log.read_text().splitlines()
            assert [line for line in lines if re.search("duration|time", line)]
            assert [line for line in lines if "storage" in line]
        if command.argv[:2] == ("backup", "validate-config"):
            assert "valid" in ran.out.lower()
    assert len(walk.ran) == len(guide_commands(text))
    secret = KEY.material.hex()
    assert all(secret not in ran.out + ran.err for _, ran in walk.ran)
    assert secret not in log.read_text()
    assert (walk.folder / "support-bundle" / "health-check.txt").read_text()
    assert walk.run("rollback", "validate", "--backup-id", walk.backup_id).rc == 0


# --- the guide's error messages, in its words -----------------------------------------------------------------


def _guide_errors(text: str) -> dict[str, str]:
    """``### "Permission denied" Errors`` → ``Error: failed to create backup: permission denied: ...``."""
    found = re.findall(r'^### "([^"]+)" Errors\n+\*\*Error Message:\*\*\n```\n(Error: .+)\n```', text, re.M)
    return dict(found)


def _prefix(message: str) -> str:
    """The guide's message up to its first example value (``/path/...``, ``'username'``, ``(expected: ...``)."""
    return re.split(r"/path|'username'|\(expected", message)[0]


def test_the_guide_names_five_error_messages() -> None:
    assert sorted(_guide_errors(guide_text())) == ["Access denied", "Checksum mismatch", "Connection refused",
                                                   "No space left on device", "Permission denied"]


@pytest.mark.parametrize("storage_url", BACKENDS, indirect=True)
def test_error_messages_in_the_guides_words(walk: Walk) -> None:
    words = _guide_errors(guide_text())
    good = walk.config_path.read_text()

    document = yaml.safe_load(good)
    document["database"]["port"] = 1
    walk.config_path.write_text(yaml.safe_dump(document))
    refused = walk.run("backup", "create")
    assert refused.rc == 1 and refused.err.startswith(words["Connection refused"] + " (")

    document["database"].update(port=walk.server.port, username="nobody", password="Wr0ng-pw")
    walk.config_path.write_text(yaml.safe_dump(document))
    denied = walk.run("backup", "create")
    assert denied.rc == 1 and denied.err.startswith(_prefix(words["Access denied"]) + "'nobody'@'")
    assert "Wr0ng-pw" not in denied.err

    walk.config_path.write_text(good)
    created = walk.run("backup", "create", "--format", "json")
    assert created.rc == 0, created.err
    backup_id = created.json()["backup_id"]
    _damage_an_object(walk, backup_id)
    mismatch = walk.run("backup", "validate", "--backup-id", backup_id)
    assert mismatch.rc == 3
    # The guide's words, then where: the object, and which schema objects its damaged frames hold.
    assert re.match(re.escape(_prefix(words["Checksum mismatch"])) + r"\(expected: [0-9a-f]{64}, got: [0-9a-f]{64}\) "
                    r"in \S+, \d+ of \d+ bytes, frames \[0\] damaged", mismatch.err), mismatch.err


def _damage_an_object(walk: Walk, backup_id: str) -> None:
    url, options = _store_location(walk)
    fs, root = fsspec.core.url_to_fs(url, **options)
    manifest = json.loads(fs.cat_file(f"{root}/manifests/{backup_id}.json"))
    address = manifest["objects"][0]["address"]
    [path] = fs.glob(f"{root}/objects/{address[:2]}/{address}.*")
    data = bytearray(fs.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(path, bytes(data))


def _store_location(walk: Walk) -> tuple[str, dict[str, Any]]:
    storage = walk.storage
    provider = storage["provider"]
    if provider == "local":
        return storage["local"]["base_path"], {}
    section = storage[provider]
    if provider == "s3":
        return (f"s3://{section['bucket']}/{section['prefix']}",
                {"key": section["access_key"], "secret": section["secret_key"],
                 "client_kwargs": {"endpoint_url": section["endpoint"]}})
    if provider == "azure":
        return f"az://{section['container_name']}/{section['prefix']}", {
            "connection_string": section["connection_string"]}
    return f"gs://{section['bucket']}/{section['prefix']}", {"endpoint_url": section["endpoint"], "token": "anon",
                                                            "project": section["project_id"]}


@pytest.fixture
def local_walk(mariadb: ThrowawayServer, shop: str, tmp_path: Path,  # noqa: F811
               in_process: None) -> Walk:  # noqa: F811
    return Walk(mariadb, shop, tmp_path, {"provider": "local", "local": {"base_path": str(tmp_path / "unused")}},
                str(tmp_path / "new"))


def test_no_space_left_on_device_in_the_guides_words(local_walk: Walk, tmp_path: Path) -> None:
    """A real full disk: a 64 KiB tmpfs filled to the last byte."""
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with (full / "filler").open("wb", buffering=0) as filler:
            with pytest.raises(OSError) as full_disk:
                while True:
                    filler.write(b"\0" * 4096)
            assert full_disk.value.errno == errno.ENOSPC
        local_walk.storage = {"provider": "local", "local": {"base_path": str(full / "backups")}}
        local_walk.write_config()
        failed = local_walk.run("backup", "create")
        words = _guide_errors(guide_text())["No space left on device"]
        assert failed.rc == 1 and failed.err == words + "\n", failed.err
        (full / "filler").unlink()
        assert local_walk.run("backup", "list", "--format", "json").json() == []  # nothing half-written lists
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_permission_denied_in_the_guides_words(local_walk: Walk, tmp_path: Path) -> None:
    """The script, as root without CAP_DAC_OVERRIDE (root may write anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    store = locked / "backups"
    local_walk.storage = {"provider": "local", "local": {"base_path": str(store)}}
    local_walk.write_config()
    command = [str(SCRIPT), "backup", "create", "--config", str(local_walk.config_path)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot give up CAP_DAC_OVERRIDE")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=180,
                              stdin=subprocess.DEVNULL, env=cli_env(tmp_path / "backup.log"))
    finally:
        locked.chmod(0o755)
    words = _guide_errors(guide_text())["Permission denied"]
    assert done.returncode == 1
    assert done.stderr == words.replace("/path/to/backup/directory", str(store)) + "\n"
