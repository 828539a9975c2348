"""Plugins chosen from the configuration: a codec or cipher by its name, a storage provider by its fsspec protocol.

The plugin manager and fsspec's registry are the only lists: an unknown name is refused by
`backup validate-config`, which names what is installed, before `backup create` could fail.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fsspec
import pymysql
import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem

from schemasync_backup.cli import config as cfg
from schemasync_backup.cli import main as cli
from schemasync_backup.model.snapshot import ServerInfo, Snapshot
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.plugins.manager import default_registry
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate.validator import Validator

PLUGINS = Path(__file__).parent / "plugins"
SRC = Path(__file__).resolve().parents[1] / "src"
KEY = EncryptionKey.generate()
CIPHER_ENTRY_POINT = "[schemasync_backup]\nexample_cipher = schemasync_example_cipher\n"


def install(site: Path, package: str, entry_points: str) -> Path:
    """``tests/plugins/<package>`` as pip would register it, without pip: a dist-info in ``site`` whose
    entry points importlib.metadata finds once ``site`` is on the path; returns the sources' folder."""
    info = site / f"schemasync_{package}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: schemasync-{package.replace('_', '-')}\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return PLUGINS / package / "src"


@pytest.fixture
def cipher_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(install(site, "example_cipher", CIPHER_ENTRY_POINT)))
    monkeypatch.syspath_prepend(str(site))


def snapshot(database: str = "app") -> Snapshot:
    return Snapshot(database, "utf8mb4", "utf8mb4_general_ci", ServerInfo("mariadb", "11.4.0", "", 0))


def settings(tmp_path: Path, **backup: Any) -> str:
    document = {"backup": {"storage": {"local": {"base_path": str(tmp_path / "store")}}, **backup}}
    return yaml.safe_dump(document)


def validate_config(tmp_path: Path, text: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = io.StringIO()
    rc = cli.main(["backup", "validate-config", "--config", str(path), "--format", "json"], stdout=out,
                  stderr=io.StringIO())
    return rc, json.loads(out.getvalue())


# --- codecs --------------------------------------------------------------------------------------


def test_the_example_codec_by_name_writes_backups_that_validate(tmp_path: Path) -> None:
    config = cfg.parse_config(settings(tmp_path, compression={"algorithm": "xor-zlib", "threshold": 0}))
    assert config.backup.compression.codec == "xor-zlib"
    store = cfg.open_store(config)
    info = store.save(snapshot())
    manifest = store.manifest(info.id)
    assert manifest.info.compression == "xor-zlib" and {record.codec for record in manifest.objects} == {"xor-zlib"}
    assert Validator(store).validate(info.id).valid


@pytest.mark.server
def test_backup_create_with_the_example_codec_on_a_real_server(mariadb: ThrowawayServer, tmp_path: Path) -> None:
    database = "plugin_codec"
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {database}.t (id int PRIMARY KEY, note text)")
    connection.close()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"host": "127.0.0.1", "port": mariadb.port, "username": "root", "database": database},
        "backup": {"storage": {"local": {"base_path": str(tmp_path / "store")}},
                   "compression": {"algorithm": "xor-zlib", "threshold": 0}}}))

    def run(*args: str) -> tuple[int, Any]:
        out = io.StringIO()
        rc = cli.main([*args, "--config", str(path), "--format", "json"], stdout=out, stderr=io.StringIO())
        return rc, json.loads(out.getvalue())

    rc, created = run("backup", "create")
    assert rc == 0, created
    rc, validated = run("backup", "validate", "--backup-id", created["backup_id"])
    assert rc == 0 and validated["valid"], validated
    rc, shown = run("backup", "info", "--backup-id", created["backup_id"])
    assert rc == 0 and shown["compression"] == "xor-zlib", shown


def test_an_unknown_codec_is_refused_by_validate_config_with_the_installed_ones(tmp_path: Path) -> None:
    rc, report = validate_config(tmp_path, settings(tmp_path, compression={"algorithm": "brotli"}))
    installed = ", ".join(sorted(default_registry().codecs))
    assert rc == 2 and "xor-zlib" in installed
    assert (f"backup.compression.algorithm: unknown compression codec 'brotli': available: {installed}; install a "
            "plugin that provides it") in report["problems"]
    # The plugin's own levels are its business: no built-in range is applied to it.
    assert cfg.parse_config(settings(tmp_path, compression={"algorithm": "xor-zlib", "level": 9}))


# --- ciphers -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cipher_plugin")
def test_a_plugin_cipher_by_name_encrypts_backups_that_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", KEY.material.hex())
    assert "chacha20-poly1305" in default_registry().ciphers
    config = cfg.parse_config(settings(tmp_path, encryption={"enabled": True, "algorithm": "chacha20-poly1305"}))
    store = cfg.open_store(config)
    info = store.save(snapshot())
    manifest = store.manifest(info.id)
    assert manifest.info.encryption == "chacha20-poly1305"
    assert {record.cipher for record in manifest.objects} == {"chacha20-poly1305"}
    assert Validator(store).validate(info.id).valid
    # The original tool's name still means AES-256-GCM.
    assert cfg.parse_config(settings(tmp_path, encryption={"algorithm": "aes256"})).backup.encryption.cipher == \
        "aes-256-gcm"


def test_an_unknown_cipher_is_refused_by_validate_config_with_the_installed_ones(tmp_path: Path) -> None:
    rc, report = validate_config(tmp_path, settings(tmp_path, encryption={"enabled": True, "algorithm": "rot13"}))
    assert rc == 2
    assert (f"backup.encryption.algorithm: unknown cipher 'rot13': available: "
            f"{', '.join(sorted(default_registry().ciphers))}; install a plugin that provides it") in report["problems"]


# --- storage providers ---------------------------------------------------------------------------


class _TestMemory(MemoryFileSystem):  # type: ignore[misc]
    protocol = "schemasynctest"
    store: dict[str, Any] = {}  # noqa: RUF012 - fsspec's own layout: a class-level store
    pseudo_dirs = [""]  # noqa: RUF012

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(path.removeprefix("schemasynctest://") if isinstance(path, str) else path)


def test_a_filesystem_registered_with_fsspec_is_usable_by_its_protocol(tmp_path: Path) -> None:
    fsspec.register_implementation("schemasynctest", _TestMemory, clobber=True)
    config = cfg.parse_config(settings(tmp_path) + "  storage:\n    url: schemasynctest://team/backups\n")
    assert cfg.storage_location(config.backup.storage) == ("schemasynctest://team/backups", {})
    store = cfg.open_store(config)
    info = store.save(snapshot())
    assert [found.id for found in store.list()] == [info.id] and Validator(store).validate(info.id).valid
    assert any(path.startswith("/team/backups/manifests/") for path in _TestMemory.store)
    # The same by provider: and url together, and options reaching the filesystem.
    named = cfg.parse_config("storage:\n  provider: schemasynctest\n  url: schemasynctest://other\n"
                             "  options: {skip_instance_cache: true}\n")
    assert cfg.storage_location(named.backup.storage) == ("schemasynctest://other", {"skip_instance_cache": True})


@pytest.mark.parametrize(("storage", "expected"), [
    ({"url": "nosuchfs://bucket"}, "backup.storage.url: unknown storage protocol 'nosuchfs': available: "),
    ({"provider": "nosuchfs"}, "backup.storage.provider: unknown storage protocol 'nosuchfs': available: "),
    ({"provider": "memory"}, "backup.storage.url: required when backup.storage.provider is memory"),
    ({"provider": "s3", "url": "memory://x"},
     "backup.storage.url: its protocol is memory, but backup.storage.provider"),
    ({"url": "/var/backups"}, "backup.storage.url: '/var/backups' is not a URL"),
])
def test_an_unknown_or_incomplete_provider_is_refused(tmp_path: Path, storage: dict[str, Any], expected: str) -> None:
    rc, report = validate_config(tmp_path, yaml.safe_dump({"storage": storage}))
    assert rc == 2 and any(problem.startswith(expected) for problem in report["problems"]), report
    if "unknown storage protocol" in expected:
        listed = next(problem for problem in report["problems"] if problem.startswith(expected))
        assert ", memory, " in listed and listed.endswith(
            "install a package that registers it with fsspec (entry point group fsspec.specs)")


def test_storage_options_are_secret(tmp_path: Path) -> None:
    config = cfg.parse_config("storage:\n  url: memory://x\n  options: {password: hunter2-secret, port: 22}\n")
    assert cfg.redacted(config)["backup"]["storage"]["options"] == {"password": "***", "port": "***"}
    assert "hunter2-secret" in config.secrets() and config.scrub("pw hunter2-secret") == "pw ***"


_THROUGH_ENTRY_POINTS = """
import io, json, sys
from schemasync_backup.cli import config as cfg, main as cli
from schemasync_backup.model.snapshot import ServerInfo, Snapshot
from schemasync_backup.validate.validator import Validator

out = io.StringIO()
rc = cli.main(["backup", "validate-config", "--config", sys.argv[1], "--format", "json"], stdout=out)
store = cfg.open_store(cfg.load_config(sys.argv[1]))
info = store.save(Snapshot("app", "utf8mb4", "utf8mb4_general_ci", ServerInfo("mariadb", "11.4.0", "", 0)))
print(json.dumps({"rc": rc, "fs": type(store.fs).__name__, "manifest": store.manifest(info.id).info.to_dict(),
                  "valid": Validator(store).validate(info.id).valid}))
"""


def test_plugins_installed_as_packages_are_found_through_their_entry_points(tmp_path: Path) -> None:
    """A new interpreter, as an operator's: fsspec reads ``fsspec.specs`` when it is imported, and the
    plugin manager the ``schemasync_backup`` group; nothing registers anything by hand."""
    site = tmp_path / "site"
    sources = [install(site, "example_storage",
                       "[fsspec.specs]\nexamplefs = schemasync_example_storage:ExampleFileSystem\n"),
               install(site, "example_cipher", CIPHER_ENTRY_POINT)]
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  url: examplefs://backups\ncompression:\n  algorithm: xor-zlib\n  threshold: 0\n"
                      "encryption:\n  enabled: true\n  algorithm: chacha20-poly1305\n")
    done = subprocess.run(
        [sys.executable, "-c", _THROUGH_ENTRY_POINTS, str(config)], capture_output=True, text=True, timeout=120,
        check=False, env={"PYTHONPATH": ":".join(map(str, [site, *sources, SRC])),
                          "BACKUP_ENCRYPTION_KEY": KEY.material.hex(),
                          "MYSQL_SCHEMA_SYNC_LOG_FILE": str(tmp_path / "log"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0 and result["fs"] == "ExampleFileSystem" and result["valid"]
    assert result["manifest"]["compression"] == "xor-zlib" and result["manifest"]["encryption"] == "chacha20-poly1305"
