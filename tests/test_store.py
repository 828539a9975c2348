"""BackupStore, one shared suite over file://, memory://, S3 (moto), Azure (Azurite) and GCS emulators."""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import attrs
import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from schemasync_backup import Snapshot
from schemasync_backup.errors import (
    ArchiveError,
    BackupNotFoundError,
    EncryptionKeyError,
    IntegrityError,
    PluginError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def shop(mariadb: ThrowawayServer) -> str:
    """The bundled sample loaded once for the module; tests only read it."""
    load_sample(mariadb.dsn, "store_shop")
    return "store_shop"


def open_store(location: Any, **options: Any) -> BackupStore:
    return BackupStore.open(location.url, storage_options=location.options, **options)


def stored_files(store: BackupStore) -> dict[str, bytes]:
    return {path: store.fs.cat_file(path) for path in store.fs.find(store.root)}


# --- the shared suite: every backend ---------------------------------------------------------


def test_create_get_list_snapshot(storage_url: Any, mariadb: ThrowawayServer, shop: str) -> None:
    key = EncryptionKey.generate()
    store = open_store(storage_url, encryption_keys=key)
    info = store.create(mariadb.dsn, shop, description="before migration 42", tags={"env": "ci"},
                        migration_context={"plan_hash": "abc", "source_schema": shop})
    assert info.id.startswith("backup-") and info.status == "COMPLETED"
    assert info.database == shop and info.description == "before migration 42" and info.tags == {"env": "ci"}
    assert info.encryption == "aes-256-gcm" and info.key_id == key.key_id and info.compression == "lz4"
    assert info.migration_context is not None and info.migration_context.plan_hash == "abc"
    assert 0 < info.stored_size < info.raw_size
    live = Snapshot.capture(mariadb.dsn, shop)
    assert info.schema_hash == live.schema_hash
    assert store.get(info.id) == info
    restored = store.snapshot(info.id)
    assert restored.schema_hash == live.schema_hash
    assert restored == Snapshot.from_json(restored.to_json())
    assert [found.id for found in store.list()] == [info.id]
    # A new store object on the same location sees the same backup.
    assert open_store(storage_url, encryption_keys=key).snapshot(info.id) == restored


def test_save_gives_back_an_equal_snapshot(storage_url: Any, mariadb: ThrowawayServer, shop: str) -> None:
    store = open_store(storage_url)
    snapshot = Snapshot.capture(mariadb.dsn, shop)
    info = store.save(snapshot)
    assert store.snapshot(info.id) == snapshot
    assert info.encryption is None and info.key_id is None


def test_unchanged_schema_costs_one_manifest(storage_url: Any, mariadb: ThrowawayServer, shop: str) -> None:
    store = open_store(storage_url, encryption_keys=EncryptionKey.generate())
    first = store.create(mariadb.dsn, shop)
    before = stored_files(store)
    second = store.create(mariadb.dsn, shop)
    added = {path for path in stored_files(store) if path not in before}
    assert [path.rsplit("/", 1)[-1] for path in added] == [f"{second.id}.json"]
    assert store.snapshot(first.id).schema_hash == store.snapshot(second.id).schema_hash


def test_delete_keeps_shared_objects(storage_url: Any, mariadb: ThrowawayServer, shop: str) -> None:
    store = open_store(storage_url)
    first, second = store.create(mariadb.dsn, shop), store.create(mariadb.dsn, shop)
    store.delete(first.id)
    assert [info.id for info in store.list()] == [second.id]
    assert store.snapshot(second.id).schema_hash == second.schema_hash
    with pytest.raises(BackupNotFoundError, match=first.id):
        store.get(first.id)
    store.delete(second.id)
    assert not [path for path in stored_files(store) if "/objects/" in path]


def test_two_creates_at_once_both_succeed(storage_url: Any, mariadb: ThrowawayServer, shop: str) -> None:
    store = open_store(storage_url)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        infos = list(pool.map(lambda _: store.create(mariadb.dsn, shop, allow_concurrent=True), range(2)))
    assert len({info.id for info in infos}) == 2
    assert {info.id for info in store.list()} == {info.id for info in infos}
    for info in infos:
        assert store.snapshot(info.id).schema_hash == info.schema_hash


def test_export_import_and_copy(storage_url: Any, mariadb: ThrowawayServer, shop: str, tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    store = open_store(storage_url, encryption_keys=key)
    info = store.create(mariadb.dsn, shop)
    archive = store.export(info.id, tmp_path / "backup.tar.gz")
    elsewhere = BackupStore.open(str(tmp_path / "other"), encryption_keys=key)
    assert elsewhere.import_archive(archive) == info
    assert elsewhere.snapshot(info.id).schema_hash == info.schema_hash
    with pytest.raises(ArchiveError, match="already exists"):
        elsewhere.import_archive(archive)
    third = BackupStore.open(f"memory://copy-{os.getpid()}-{info.id}", encryption_keys=key)
    store.move_to(third, info.id)
    assert third.snapshot(info.id).schema_hash == info.schema_hash
    assert store.list() == []


# --- local storage and faults ----------------------------------------------------------------


def test_local_permissions(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path / "backups"))
    store.create(mariadb.dsn, shop)
    for path in (tmp_path / "backups").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    relaxed = BackupStore.open(str(tmp_path / "shared"), file_mode=0o640, dir_mode=0o750)
    relaxed.create(mariadb.dsn, shop)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "shared" / "manifests").iterdir()} == {0o640}


class FaultyMemoryFileSystem(MemoryFileSystem):
    """A third-party fsspec filesystem that fails writes the way a full or forbidden disk does."""

    protocol = "faultymem"
    fail_with: OSError | None = None

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if ("w" in mode or "x" in mode) and FaultyMemoryFileSystem.fail_with is not None:
            raise FaultyMemoryFileSystem.fail_with
        return super()._open(path, mode, *args, **kwargs)


fsspec.register_implementation("faultymem", FaultyMemoryFileSystem, clobber=True)


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), StorageFullError,
         "failed to write backup file: no space left on device"),
        (PermissionError(errno.EACCES, "Permission denied"), StoragePermissionError,
         "failed to create backup: permission denied: "),
        (ConnectionResetError(errno.ECONNRESET, "reset"), StorageError, "failed to create backup"),
    ],
)
def test_storage_faults_become_clear_errors(
    mariadb: ThrowawayServer, shop: str, fault: OSError, error: type[Exception], message: str
) -> None:
    store = BackupStore.open(f"faultymem://fault-{id(fault)}")
    FaultyMemoryFileSystem.fail_with = fault
    try:
        with pytest.raises(error, match=message) as caught:
            store.create(mariadb.dsn, shop)
    finally:
        FaultyMemoryFileSystem.fail_with = None
    assert caught.value.__cause__ is fault
    assert store.list() == []


def test_failed_capture_leaves_nothing_listed(tmp_path: Path, mariadb: ThrowawayServer) -> None:
    store = BackupStore.open(str(tmp_path))
    with pytest.raises(Exception, match="unknown database"):
        store.create(mariadb.dsn, "no_such_database")
    assert store.list() == []
    assert not list((tmp_path / "pending").iterdir())


def test_half_written_backup_never_lists_as_completed(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path))
    info = store.create(mariadb.dsn, shop)
    # What a crash leaves: a pending marker, objects, a staged manifest that was never renamed.
    (tmp_path / "pending" / "backup-20991231-235959-0000abcd.json").write_text("{}")
    (tmp_path / "tmp" / "deadbeef").write_bytes(b"half a manifest")
    listed = {found.id: found.status for found in store.list()}
    assert listed == {info.id: "COMPLETED", "backup-20991231-235959-0000abcd": "CREATING"}
    assert [found.id for found in store.list(status="COMPLETED")] == [info.id]


# --- list filters ----------------------------------------------------------------------------


def test_list_filters(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path))
    snapshot = Snapshot.capture(mariadb.dsn, shop)
    other = attrs.evolve(snapshot, database="other")
    a = store.save(snapshot, tags={"env": "prod", "team": "x"})
    b = store.save(other, tags={"env": "dev"})
    c = store.save(snapshot)
    assert [i.id for i in store.list()] == [c.id, b.id, a.id]
    assert [i.id for i in store.list(database="other")] == [b.id]
    assert [i.id for i in store.list(tags={"env": "prod"})] == [a.id]
    assert [i.id for i in store.list(tags=["team"])] == [a.id]
    assert [i.id for i in store.list(limit=2)] == [c.id, b.id]
    assert store.list(created_after="2999-01-01") == []
    assert len(store.list(created_before="2999-01-01", created_after="2000-01-01")) == 3
    assert [i.id for i in store.list(created_after=b.created_at)] == [c.id, b.id]
    assert len(store.list(created_after="1h")) == 3 and store.list(created_before="yesterday") == []
    with pytest.raises(ValueError, match="ISO 8601"):
        store.list(created_after="tomorrow")


# --- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4", "zstd", "xor-zlib"])
def test_every_codec_round_trips(tmp_path: Path, mariadb: ThrowawayServer, shop: str, codec: str) -> None:
    store = BackupStore.open(str(tmp_path), compression=codec, compression_level=1 if codec != "none" else None)
    info = store.create(mariadb.dsn, shop)
    assert info.compression == codec
    assert store.snapshot(info.id).schema_hash == info.schema_hash
    if codec != "none":
        assert info.stored_size < info.raw_size


def test_entry_point_plugin_codec_is_discovered() -> None:
    from schemasync_backup.plugins.manager import get_plugin_manager

    manager = get_plugin_manager()
    assert "example_codec" in {name for name, _ in manager.list_name_plugin()}
    assert "xor-zlib" in {codec.name for group in manager.hook.schemasync_codecs() for codec in group}
    bare = get_plugin_manager(load_entry_points=False)
    assert "xor-zlib" not in {codec.name for group in bare.hook.schemasync_codecs() for codec in group}


def test_small_objects_are_stored_raw_and_stores_mix_codecs(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str
) -> None:
    raw = BackupStore.open(str(tmp_path), compression="zstd", compression_threshold=10**9).create(mariadb.dsn, shop)
    assert raw.compression == "none"
    mixed = BackupStore.open(str(tmp_path), compression="gzip")
    gz = mixed.save(attrs.evolve(Snapshot.capture(mariadb.dsn, shop), database="renamed"))
    assert gz.compression == "gzip"
    assert {mixed.snapshot(i.id).database for i in mixed.list()} == {shop, "renamed"}


def test_unknown_codec_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="unknown compression codec 'brotli'"):
        BackupStore.open(str(tmp_path), compression="brotli")


# --- encryption ------------------------------------------------------------------------------


def test_keys_from_env_file_and_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    material = os.urandom(32)
    import base64

    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", material.hex())
    assert EncryptionKey.from_env().material == material
    monkeypatch.setenv("OTHER_KEY", base64.b64encode(material).decode())
    assert EncryptionKey.from_env("OTHER_KEY").material == material
    (tmp_path / "raw").write_bytes(material)
    (tmp_path / "hex").write_text(material.hex() + "\n")
    assert EncryptionKey.from_file(tmp_path / "raw").material == material
    assert EncryptionKey.from_file(tmp_path / "hex").material == material
    assert EncryptionKey.from_value(material).key_id == EncryptionKey.from_value(material.hex()).key_id
    monkeypatch.delenv("BACKUP_ENCRYPTION_KEY")
    with pytest.raises(EncryptionKeyError, match="BACKUP_ENCRYPTION_KEY is not set"):
        EncryptionKey.from_env()
    with pytest.raises(EncryptionKeyError, match="expected 32 bytes") as caught:
        EncryptionKey.from_value("not-a-key-" + material.hex()[:10])
    assert material.hex()[:10] not in str(caught.value)
    assert material.hex() not in repr(EncryptionKey(material))


def test_wrong_or_missing_key_names_the_key_id(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    key = EncryptionKey.generate()
    info = BackupStore.open(str(tmp_path), encryption_keys=key).create(mariadb.dsn, shop)
    for keys in (None, EncryptionKey.generate()):
        with pytest.raises(EncryptionKeyError, match=key.key_id):
            BackupStore.open(str(tmp_path), encryption_keys=keys).snapshot(info.id)
    # A key with the right id but other bytes cannot exist; a damaged key file is the closest case.
    impostor = EncryptionKey(os.urandom(32), key_id=key.key_id)
    with pytest.raises(IntegrityError, match="failed authentication"):
        BackupStore.open(str(tmp_path), encryption_keys=impostor).snapshot(info.id)


def test_no_key_material_in_any_file_or_message(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    key = EncryptionKey.generate()
    store = BackupStore.open(str(tmp_path), encryption_keys=key)
    info = store.create(mariadb.dsn, shop)
    secrets = (key.material, key.material.hex().encode(), key.material.hex().upper().encode())
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), path
    assert key.material.hex() not in repr(store) + repr(info) + str(info.to_dict())


def test_swapped_objects_are_detected(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    key = EncryptionKey.generate()
    store = BackupStore.open(str(tmp_path), encryption_keys=key)
    first = store.create(mariadb.dsn, shop)
    second = store.save(Snapshot.capture(mariadb.dsn, "mysql"))
    paths = [tmp_path / "objects" / store.manifest(i.id).snapshot_object.path for i in (first, second)]
    data = [path.read_bytes() for path in paths]
    paths[0].write_bytes(data[1])
    paths[1].write_bytes(data[0])
    for info in (first, second):
        with pytest.raises(IntegrityError):
            store.snapshot(info.id)


def test_rotate_key(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    old, new = EncryptionKey.generate(), EncryptionKey.generate()
    store = BackupStore.open(str(tmp_path), encryption_keys=old)
    info = store.create(mariadb.dsn, shop)
    both = BackupStore.open(str(tmp_path), encryption_keys=[new, old])
    assert both.snapshot(info.id).schema_hash == info.schema_hash  # newest writes, all read
    assert both.rotate_key() == [info.id]
    only_new = BackupStore.open(str(tmp_path), encryption_keys=new)
    assert only_new.get(info.id).key_id == new.key_id
    assert only_new.snapshot(info.id).schema_hash == info.schema_hash
    with pytest.raises(EncryptionKeyError, match=new.key_id):
        BackupStore.open(str(tmp_path), encryption_keys=old).snapshot(info.id)
    assert not list((tmp_path / "objects").rglob(f"*.{old.key_id}"))


# --- archives --------------------------------------------------------------------------------


def _archive(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        if link:
            member = tarfile.TarInfo(link)
            member.type = tarfile.SYMTYPE
            member.linkname = "/etc/passwd"
            archive.addfile(member)
    return path


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_import_refuses_unsafe_or_damaged_archives(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path / "store"))
    info = store.create(mariadb.dsn, shop)
    exported = Path(store.export(info.id, tmp_path / "good.tar.gz"))
    with tarfile.open(exported) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]
    target = BackupStore.open(str(tmp_path / "target"))
    object_name = next(name for name in members if name.startswith("objects/"))
    cases = {
        "traversal": ({**members, "../evil": b"x"}, None, "path traversal"),
        "absolute": ({**members, "/etc/evil": b"x"}, None, "path traversal"),
        "link": (members, "objects/aa/link", "refusing link"),
        "unexpected": ({**members, "notes.txt": b"x"}, None, "unexpected member"),
        "checksum": ({**members, object_name: _flip_last(members[object_name])}, None, "checksum mismatch"),
        "missing": ({"manifest.json": members["manifest.json"]}, None, "lacks object"),
    }
    for case, (content, link, message) in cases.items():
        with pytest.raises(ArchiveError if case != "checksum" else IntegrityError, match=message):
            target.import_archive(_archive(tmp_path / f"{case}.tar.gz", content, link))
    with pytest.raises(ArchiveError, match="over the limit"):
        target.import_archive(exported, max_member_size=10)
    assert target.list() == []
    assert target.import_archive(exported).id == info.id


def test_object_names_are_content_addresses(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path))
    info = store.create(mariadb.dsn, shop)
    record = store.manifest(info.id).snapshot_object
    plaintext = store.read_object(record)
    assert hashlib.sha256(plaintext).hexdigest() == record.address
    assert (tmp_path / "objects" / record.path).name.startswith(record.address)


def test_encrypted_manifest_names_no_schema_object(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=EncryptionKey.generate())
    info = store.create(mariadb.dsn, shop)
    manifest_text = (tmp_path / "manifests" / f"{info.id}.json").read_text()
    for name in ("customer", "order_line", "live_product", "recalc_order_total"):
        assert name not in manifest_text
    assert {entry.name for entry in store.contents(store.manifest(info.id))} >= {"customer", "live_product"}


@pytest.mark.parametrize("storage_url", ["file", "s3"], indirect=True)
def test_large_objects_stream_in_bounded_memory(storage_url: Any) -> None:
    import tracemalloc

    store = open_store(storage_url, encryption_keys=EncryptionKey.generate(), compression="lz4",
                       frame_size=1024 * 1024)
    block = os.urandom(1024 * 1024)
    total = 128

    def chunks() -> Any:
        for index in range(total):
            yield block[index:] + block[:index]  # distinct, incompressible MiBs

    digest = hashlib.sha256()
    for chunk in chunks():
        digest.update(chunk)
    tracemalloc.start()
    record = store.put_object(chunks())
    _, peak_write = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    check = hashlib.sha256()
    size = 0
    for piece in store.open_object(record):
        check.update(piece)
        size += len(piece)
    _, peak_read = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert record.address == digest.hexdigest() == check.hexdigest() and size == total * 2**20
    assert len(record.frames) == total
    # The object is 128 MiB; neither direction may hold more than the spool and a few frames/parts.
    assert peak_write < 48 * 2**20, peak_write
    assert peak_read < 48 * 2**20, peak_read
    assert store.put_object(chunks()) == record  # stored once, recognised by content


def test_marker_left_after_the_commit_does_not_list_twice(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path))
    info = store.create(mariadb.dsn, shop)
    (tmp_path / "pending" / f"{info.id}.json").write_text("{}")  # a crash between commit and cleanup
    assert [(found.id, found.status) for found in store.list()] == [(info.id, "COMPLETED")]
