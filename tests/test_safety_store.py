"""Faults and attacks on the store: keys are not damage, manifests are bound to their backups,
ids and archives are untrusted input, a read-only store is readable, salvage never writes nothing.

Each test reproduces something that once destroyed a backup or restored the wrong schema.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemasync_backup import RetentionPolicy, RollbackPlanner, Snapshot
from schemasync_backup.errors import (
    ArchiveError,
    BackupFormatError,
    BackupNotFoundError,
    EncryptionKeyError,
    InvalidBackupIdError,
    ManifestAuthenticationError,
    UnsealedBackupError,
)
from schemasync_backup.formats.manifest import Status
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate.parse_checks import ParseCache, default_cache_path
from schemasync_backup.validate.validator import RecoveryError, Validator

pytestmark = pytest.mark.server

KEY = EncryptionKey.generate()
OTHER_KEY = EncryptionKey.generate()


@pytest.fixture(scope="module")
def shop(mariadb: ThrowawayServer) -> str:
    load_sample(mariadb.dsn, "safety_shop")
    return "safety_shop"


@pytest.fixture(scope="module")
def tiny(mariadb: ThrowawayServer) -> str:
    """A second, different schema: a manifest of it put in place of shop's must never pass."""
    import pymysql

    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS safety_tiny")
        cursor.execute("CREATE TABLE IF NOT EXISTS safety_tiny.only_table (id int PRIMARY KEY)")
    connection.close()
    return "safety_tiny"


def manifest_file(store: BackupStore, backup_id: str) -> Path:
    return Path(store.root) / "manifests" / f"{backup_id}.json"


# --- keys are not damage ---------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [(), (OTHER_KEY,)], ids=["no key", "wrong key"])
def test_a_missing_or_wrong_key_is_not_damage(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str, keys: tuple[EncryptionKey, ...]
) -> None:
    writer = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    ids = [writer.create(mariadb.dsn, shop).id for _ in range(3)]
    reader = BackupStore.open(str(tmp_path), encryption_keys=keys)
    validator = Validator(reader)
    for backup_id in ids:
        result = validator.validate(backup_id)
        assert not result.valid and not result.damaged, result.errors
        assert result.keys_needed == (KEY.key_id,)
        assert all(error.kind == "key" for error in result.errors)
        assert reader.status_of(backup_id) == Status.COMPLETED
        assert not (tmp_path / "status" / f"{backup_id}.json").exists()
    # Everything that needs no plaintext works without the key.
    assert [info.status for info in reader.list()] == [Status.COMPLETED] * 3
    assert reader.get(ids[0]).key_id == KEY.key_id
    assert all(validator.integrity_check(backup_id).valid for backup_id in ids)
    assert reader.usage().backup_count == 3
    assert not [entry for entry in validator.recovery_scan() if entry.kind == "damaged"]
    # Retention keeps every backup: none counts as unusable because it could not be read.
    report = reader.apply_retention(RetentionPolicy(max_backups=5), dry_run=False)
    assert {decision.backup_id for decision in report.decisions if decision.keep} == set(ids)
    assert sorted(info.id for info in reader.list()) == sorted(ids)
    # A rollback says which key it needs.
    with pytest.raises(EncryptionKeyError, match=f"key {KEY.key_id} is needed"):
        RollbackPlanner(reader).plan(mariadb.dsn, ids[0])
    # With the key, everything is valid, and always was.
    assert all(Validator(writer).validate(backup_id).valid for backup_id in ids)


def test_damage_with_the_right_key_is_still_damage(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    info = store.create(mariadb.dsn, shop)
    record = store.manifest(info.id).snapshot_object
    path = tmp_path / "objects" / record.path
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    path.write_bytes(bytes(data))
    result = Validator(store).validate(info.id)
    assert result.damaged and store.status_of(info.id) == Status.CORRUPTED
    # Without the key, a keyless checksum mismatch is proven damage too.
    assert Validator(BackupStore.open(str(tmp_path))).validate(info.id).damaged


# --- a manifest is bound to its backup -------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(encrypted=st.booleans(), how=st.sampled_from(["copy", "rename swap"]))
def test_a_manifest_swapped_or_copied_over_another_is_refused(
    tmp_path_factory: pytest.TempPathFactory, mariadb: ThrowawayServer, shop: str, tiny: str, encrypted: bool,
    how: str,
) -> None:
    root = tmp_path_factory.mktemp("swap")
    store = BackupStore.open(str(root), encryption_keys=KEY if encrypted else None)
    first, second = store.create(mariadb.dsn, shop), store.create(mariadb.dsn, tiny)
    a, b = manifest_file(store, first.id), manifest_file(store, second.id)
    if how == "copy":
        shutil.copyfile(b, a)
    else:
        a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
        a.write_bytes(b_bytes)
        b.write_bytes(a_bytes)
    swapped = [first.id] if how == "copy" else [first.id, second.id]
    for backup_id in swapped:
        with pytest.raises(BackupFormatError, match="belongs to backup"):
            store.get(backup_id)
        with pytest.raises(BackupFormatError, match="belongs to backup"):
            store.snapshot(backup_id)
        with pytest.raises(BackupFormatError, match="belongs to backup"):
            store.export(backup_id, root / "out.tar.gz")
        with pytest.raises(BackupFormatError, match="belongs to backup"):
            RollbackPlanner(store).plan(mariadb.dsn, backup_id)
        result = Validator(store).validate(backup_id)
        assert result.damaged and not result.checksum_valid
        assert store.status_of(backup_id) == Status.CORRUPTED
        assert not Validator(store).integrity_check(backup_id).valid
    listed = {info.id: info for info in store.list()}
    assert set(listed) == {first.id, second.id}  # each listed once, under its own name
    assert all(not listed[backup_id].schema_hash for backup_id in swapped)  # as damaged, not as the other


def test_a_forged_manifest_fails_authentication(tmp_path: Path, mariadb: ThrowawayServer, shop: str,
                                                tiny: str) -> None:
    """Someone without the key rewrites the id in another backup's manifest and fixes its checksum."""
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    first, second = store.create(mariadb.dsn, shop), store.create(mariadb.dsn, tiny)
    document = json.loads(manifest_file(store, second.id).read_bytes())
    document["backup"]["id"] = first.id
    manifest_file(store, first.id).write_bytes(_resealed_without_key(document))
    with pytest.raises(ManifestAuthenticationError, match="failed authentication"):
        store.snapshot(first.id)
    result = Validator(store).validate(first.id)
    assert result.damaged and store.status_of(first.id) == Status.CORRUPTED
    # Stripping the seal makes an unsealed manifest, which an encrypted store refuses (not damage).
    document.pop("seal")
    manifest_file(store, second.id).write_bytes(_resealed_without_key(document | {"backup": {
        **document["backup"], "id": second.id}}))
    with pytest.raises(UnsealedBackupError, match="accept_unsealed"):
        store.snapshot(second.id)
    unsealed = Validator(store).validate(second.id)
    assert not unsealed.valid and not unsealed.damaged
    assert [error.kind for error in unsealed.errors] == ["untrusted"]


def _resealed_without_key(document: dict[str, Any]) -> bytes:
    import hashlib

    body = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return json.dumps({**document, "checksum": hashlib.sha256(canonical).hexdigest()}).encode()


def test_format_1_manifests_are_read(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    """A store written by 0.1 (manifest version 1, no seal) reads on; an encrypted one on opt-in."""
    store = BackupStore.open(str(tmp_path))
    info = store.create(mariadb.dsn, shop)
    document = json.loads(manifest_file(store, info.id).read_bytes())
    document["version"] = 1
    document["backup"].pop("partial")
    manifest_file(store, info.id).write_bytes(_resealed_without_key(document))
    assert store.snapshot(info.id).schema_hash == info.schema_hash
    assert Validator(store).validate(info.id).valid
    keyed = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    with pytest.raises(UnsealedBackupError):
        keyed.snapshot(info.id)
    trusting = BackupStore.open(str(tmp_path), encryption_keys=KEY, accept_unsealed=True)
    assert trusting.snapshot(info.id).schema_hash == info.schema_hash


def test_an_encrypted_store_imports_only_backups_it_can_authenticate(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str
) -> None:
    plain = BackupStore.open(str(tmp_path / "plain"))
    archive = plain.export(plain.create(mariadb.dsn, shop).id, tmp_path / "plain.tar.gz")
    encrypted = BackupStore.open(str(tmp_path / "encrypted"), encryption_keys=KEY)
    with pytest.raises(UnsealedBackupError):
        encrypted.import_archive(archive)
    assert encrypted.list() == []
    foreign = BackupStore.open(str(tmp_path / "foreign"), encryption_keys=OTHER_KEY)
    foreign_archive = foreign.export(foreign.create(mariadb.dsn, shop).id, tmp_path / "foreign.tar.gz")
    with pytest.raises(EncryptionKeyError, match=OTHER_KEY.key_id):
        encrypted.import_archive(foreign_archive)
    imported = encrypted.import_archive(archive, accept_unsealed=True)
    # Once the operator vouched for it, the store seals it: it reads like one of its own.
    assert encrypted.authenticated_manifest(imported.id).authenticated
    assert Validator(encrypted).validate(imported.id).valid


# --- ids are untrusted input -----------------------------------------------------------------------

HOSTILE_IDS = ["../../outside", "/etc/passwd", "*", "", "backup-*", "a\nb", "backup-20261202-010000-0a8eb15b\n",
               "backup-20261202-010000-0A8EB15B", "backup-20261399-010000-0a8eb15b", "manifests/../x",
               "backup-20261202-010000-0a8eb15b/../../x"]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_are_refused_before_any_io(tmp_path: Path, mariadb: ThrowawayServer, hostile: str) -> None:
    root = tmp_path / "store"
    store = BackupStore.open(str(root))
    validator, planner = Validator(store), RollbackPlanner(store)
    calls: list[Callable[[], Any]] = [
        lambda: store.get(hostile), lambda: store.manifest(hostile), lambda: store.snapshot(hostile),
        lambda: store.delete(hostile), lambda: store.export(hostile, tmp_path / "x.tar.gz"),
        lambda: store.status_of(hostile), lambda: store.set_status(hostile, Status.CORRUPTED),
        lambda: store.exists(hostile),
        lambda: validator.validate(hostile), lambda: validator.integrity_check(hostile),
        lambda: validator.test_encryption(hostile), lambda: validator.recalculate_checksum(hostile),
        lambda: validator.partial_recovery(hostile), lambda: validator.restore_test(hostile, mariadb.dsn),
        lambda: planner.plan(mariadb.dsn, hostile), lambda: planner.validate(mariadb.dsn, hostile),
        lambda: planner.recovery_info(hostile), lambda: planner.manual_steps(hostile),
    ]
    for call in calls:
        with pytest.raises(InvalidBackupIdError, match="invalid backup id"):
            call()
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # not even the store folder was made


def test_validating_an_unknown_id_records_nothing(tmp_path: Path) -> None:
    store = BackupStore.open(str(tmp_path))
    with pytest.raises(BackupNotFoundError):
        Validator(store).validate("backup-20261202-010000-0a8eb15b")
    assert list(tmp_path.iterdir()) == []


# --- archives are untrusted input ------------------------------------------------------------------


def _members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as archive:
        return [(member.name, archive.extractfile(member).read())  # type: ignore[union-attr]
                for member in archive.getmembers()]


def _write_archive(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


@pytest.fixture
def exported(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> tuple[Path, list[tuple[str, bytes]]]:
    store = BackupStore.open(str(tmp_path / "source"))
    path = Path(store.export(store.create(mariadb.dsn, shop).id, tmp_path / "good.tar.gz"))
    return path, _members(path)


@pytest.mark.parametrize("hostile", ["../../outside", "/tmp/abs", "*", "", "x\ny"])
def test_an_archive_cannot_steer_where_its_manifest_lands(
    tmp_path: Path, exported: tuple[Path, list[tuple[str, bytes]]], hostile: str
) -> None:
    _, members = exported
    document = json.loads(members[0][1])
    document["backup"]["id"] = hostile
    forged = _write_archive(tmp_path / "forged.tar.gz", [("manifest.json", _resealed_without_key(document)),
                                                          *members[1:]])
    target = BackupStore.open(str(tmp_path / "target" / "store"))
    with pytest.raises(ArchiveError, match="not a backup id"):
        target.import_archive(forged)
    assert not (tmp_path / "target").exists()
    assert not (tmp_path / "outside.json").exists()


def test_duplicate_members_and_wrong_sizes_are_refused(
    tmp_path: Path, exported: tuple[Path, list[tuple[str, bytes]]]
) -> None:
    _, members = exported
    target = BackupStore.open(str(tmp_path / "target"))
    doubled = _write_archive(tmp_path / "doubled.tar.gz", [*members, members[1]])
    with pytest.raises(ArchiveError, match="duplicate member"):
        target.import_archive(doubled)
    name, data = members[1]
    longer = _write_archive(tmp_path / "longer.tar.gz", [members[0], (name, data + b"x"), *members[2:]])
    with pytest.raises(ArchiveError, match="its manifest says"):
        target.import_archive(longer)
    reordered = _write_archive(tmp_path / "reordered.tar.gz", [*members[1:], members[0]])
    with pytest.raises(ArchiveError, match="does not start with manifest"):
        target.import_archive(reordered)
    assert target.list() == []


def test_a_decompression_bomb_is_refused_before_it_is_read(
    tmp_path: Path, exported: tuple[Path, list[tuple[str, bytes]]]
) -> None:
    """A small archive whose manifest declares a huge object: refused from the manifest alone."""
    _, members = exported
    document = json.loads(members[0][1])
    size = 256 * 1024 * 1024
    document["objects"][0]["stored_size"] = size
    name = members[1][0]
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as raw, tarfile.open(fileobj=raw, mode="w|") as archive:
        head = tarfile.TarInfo("manifest.json")
        manifest_bytes = _resealed_without_key(document)
        head.size = len(manifest_bytes)
        archive.addfile(head, io.BytesIO(manifest_bytes))
        member = tarfile.TarInfo(name)
        member.size = size
        archive.addfile(member, _Zeros(size))
    assert bomb.stat().st_size < size // 200
    code = f"""
from schemasync_backup.store.store import BackupStore
from schemasync_backup.errors import ArchiveError
store = BackupStore.open({str(tmp_path / 'target')!r})
try:
    store.import_archive({str(bomb)!r})
except ArchiveError as exc:
    print("refused:", exc.message)
# VmHWM, not ru_maxrss: the latter carries the parent's peak across exec.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print("rss_mib", int(peak.split()[1]) // 1024)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "decompression bomb" in done.stdout, done.stdout + done.stderr
    assert int(done.stdout.split("rss_mib")[1]) < 150
    assert not (tmp_path / "target").exists()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int = -1) -> bytes:
        count = self.left if size < 0 else min(size, self.left)
        self.left -= count
        return bytes(count)


# --- a read-only store -----------------------------------------------------------------------------


def test_a_read_only_store_lists_validates_and_exports(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    root = tmp_path / "store"
    store = BackupStore.open(str(root), encryption_keys=KEY)
    info = store.create(mariadb.dsn, shop)
    # The parse-check cache is read-only too, and warm: it is read, and not written.
    cache = tmp_path / "cache"
    warm = Validator(store, ParseCache(default_cache_path({"XDG_CACHE_HOME": str(cache)}))).validate(info.id)
    assert warm.parse_checked > 0
    before = {path: path.stat().st_mode for path in [root, *root.rglob("*")]}
    subprocess.run(["chmod", "-R", "a-w", str(root), str(cache)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    code = f"""
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.validator import Validator
from schemasync_backup.plugins.crypto import EncryptionKey
store = BackupStore.open({str(root)!r}, encryption_keys=EncryptionKey.from_value({KEY.material.hex()!r}))
print("listed", [info.id for info in store.list()])
result = Validator(store).validate({info.id!r})
print("valid", result.valid, "cached", result.parse_cached)
print("exported", store.export({info.id!r}, {str(out / 'copy.tar.gz')!r}))
"""
    try:
        done = subprocess.run(_without_root_override([sys.executable, "-c", code]), capture_output=True, text=True,
                              check=False, timeout=120,
                              env={**os.environ, "PYTHONWARNINGS": "ignore", "XDG_CACHE_HOME": str(cache)})
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root), str(cache)], check=True)
    assert done.returncode == 0, done.stderr
    assert f"listed ['{info.id}']" in done.stdout and f"valid True cached {warm.parse_checked}" in done.stdout
    assert (out / "copy.tar.gz").exists()
    assert "status could not be recorded" in done.stderr  # told, not failed
    subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
    assert {path: path.stat().st_mode for path in [root, *root.rglob("*")]} == before


def _without_root_override(command: list[str]) -> list[str]:
    """As root, drop the capability that ignores file modes, so a read-only folder is read-only."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv (util-linux) is missing")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]


def test_opening_a_store_writes_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    store = BackupStore.open(str(existing))
    assert store.list() == [] and list(existing.iterdir()) == []
    assert existing.stat().st_mode & 0o777 == 0o755
    BackupStore.open(str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


# --- salvage ---------------------------------------------------------------------------------------


def test_salvage_that_saves_nothing_fails_and_writes_nothing(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str
) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    info = store.create(mariadb.dsn, shop)
    record = store.manifest(info.id).snapshot_object
    (tmp_path / "objects" / record.path).write_bytes(b"\0" * record.stored_size)
    validator = Validator(store)
    assert [entry.recoverable for entry in validator.recovery_scan() if entry.kind == "damaged"] == [False]
    with pytest.raises(RecoveryError, match="nothing was written"):
        validator.partial_recovery(info.id)
    assert [found.id for found in store.list()] == [info.id]


def test_a_salvaged_backup_is_marked_partial(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path), frame_size=1024)
    info = store.create(mariadb.dsn, shop)
    record = store.manifest(info.id).snapshot_object
    path = tmp_path / "objects" / record.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    validator = Validator(store)
    assert [entry.recoverable for entry in validator.recovery_scan() if entry.kind == "damaged"] == [True]
    report = validator.partial_recovery(info.id)
    assert report.lost and report.recovered
    salvaged = store.get(report.new_backup_id)
    assert salvaged.partial and not store.get(info.id).partial
    assert {found.id: found.partial for found in store.list()}[report.new_backup_id]
    assert len(Snapshot.capture(mariadb.dsn, shop).objects()) > len(store.snapshot(report.new_backup_id).objects())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candidate=st.one_of(
    st.text(max_size=40),
    st.from_regex(r"backup-\d{8}-\d{6}-[0-9a-fA-F]{8}", fullmatch=False),
    st.builds(lambda stem, tail: stem + tail, st.just("backup-20261202-010000-0a8eb15b"),
              st.sampled_from(["\n", "/", "/../x", ".json", " ", "\0", "*"]))))
def test_any_string_that_is_not_an_id_is_refused_and_touches_nothing(tmp_path: Path, candidate: str) -> None:
    from schemasync_backup.formats.backup_id import PATTERN, created_at_of, is_backup_id

    store = BackupStore.open(str(tmp_path / "store"))
    if is_backup_id(candidate):
        assert PATTERN.fullmatch(candidate) and created_at_of(candidate) is not None
        return
    for call in (store.get, store.exists, store.delete, Validator(store).validate):
        with pytest.raises(InvalidBackupIdError):
            call(candidate)
    assert not (tmp_path / "store").exists()


# --- maintenance and copies never launder an untrusted manifest ------------------------------------


def test_optimize_never_reseals_a_forged_or_unsealed_manifest(tmp_path: Path, mariadb: ThrowawayServer,
                                                              shop: str) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY, compression="none")
    forged, unsealed = store.create(mariadb.dsn, shop), store.create(mariadb.dsn, shop)
    document = json.loads(manifest_file(store, forged.id).read_bytes())
    document["backup"]["description"] = "rewritten by someone without the key"
    manifest_file(store, forged.id).write_bytes(_resealed_without_key(document))
    plain = json.loads(manifest_file(store, unsealed.id).read_bytes())
    plain.pop("seal")
    manifest_file(store, unsealed.id).write_bytes(_resealed_without_key(plain))
    regzip = BackupStore.open(str(tmp_path), encryption_keys=KEY, compression="gzip")
    report = regzip.optimize(dry_run=False)
    assert not report.manifests_updated, report
    with pytest.raises(ManifestAuthenticationError):
        regzip.authenticated_manifest(forged.id)
    with pytest.raises(UnsealedBackupError):
        regzip.authenticated_manifest(unsealed.id)
    # A forged seal read unverified (repair paths) is tampering, not a missing key.
    with pytest.raises(ManifestAuthenticationError):
        Validator(regzip).recalculate_checksum(forged.id)


def test_copying_into_an_encrypted_store_needs_the_same_consent_as_importing(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str
) -> None:
    plain = BackupStore.open(str(tmp_path / "plain"))
    info = plain.create(mariadb.dsn, shop)
    encrypted = BackupStore.open(str(tmp_path / "encrypted"), encryption_keys=KEY)
    with pytest.raises(UnsealedBackupError):
        plain.copy_to(encrypted, info.id)
    with pytest.raises(UnsealedBackupError):
        plain.move_to(encrypted, info.id)
    assert encrypted.list() == [] and [found.id for found in plain.list()] == [info.id]
    trusting = BackupStore.open(str(tmp_path / "encrypted"), encryption_keys=KEY, accept_unsealed=True)
    assert plain.copy_to(trusting, info.id).id == info.id
    assert encrypted.authenticated_manifest(info.id).authenticated


def test_a_stray_file_in_manifests_breaks_no_maintenance(tmp_path: Path, mariadb: ThrowawayServer,
                                                         shop: str) -> None:
    store = BackupStore.open(str(tmp_path))
    info = store.create(mariadb.dsn, shop)
    stray = tmp_path / "manifests" / "notes.json"
    stray.write_bytes(manifest_file(store, info.id).read_bytes())
    store.delete(info.id)  # its objects are still named by the stray copy: prune keeps them
    assert store.prune(grace="0s").removed_objects == ()
    assert store.usage().object_count == 2
    assert store.list() == []
    assert [entry.kind for entry in Validator(store).recovery_scan()] == ["unknown_file"]


def test_listed_backups_whose_manifest_was_not_read_are_typed(tmp_path: Path, mariadb: ThrowawayServer,
                                                              shop: str) -> None:
    from schemasync_backup import UnreadBackupInfo

    store = BackupStore.open(str(tmp_path))
    good, bad = store.create(mariadb.dsn, shop), store.create(mariadb.dsn, shop)
    manifest_file(store, bad.id).write_bytes(b"{not json")
    (tmp_path / "pending" / "backup-20261202-010000-0000bbbb.json").write_text("{}")
    listed = {info.id: info for info in store.list()}
    assert not isinstance(listed[good.id], UnreadBackupInfo)
    assert isinstance(listed[bad.id], UnreadBackupInfo) and listed[bad.id].status == Status.CORRUPTED
    pending = listed["backup-20261202-010000-0000bbbb"]
    assert isinstance(pending, UnreadBackupInfo) and pending.status == Status.CREATING
    assert pending.to_dict().keys() == listed[good.id].to_dict().keys()  # one JSON shape
    decisions = {d.backup_id: d for d in store.apply_retention(RetentionPolicy(max_backups=1)).decisions}
    assert decisions[bad.id].keep and decisions[bad.id].rule == "unreadable"
