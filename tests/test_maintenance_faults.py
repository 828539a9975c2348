"""Faults around maintenance: crashed and long creates, optimize beside validation, failing plugins,
damaged object headers."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from schemasync_backup import Snapshot
from schemasync_backup.cli import health
from schemasync_backup.errors import (
    BackupFormatError,
    PluginError,
    StalePlanError,
    StaleThresholdError,
    UnknownObjectCodecError,
)
from schemasync_backup.formats import framing
from schemasync_backup.formats.manifest import Status
from schemasync_backup.model.snapshot import ServerInfo
from schemasync_backup.plugins.crypto import Keyring
from schemasync_backup.plugins.hookspecs import Codec, hookimpl
from schemasync_backup.plugins.manager import Registry, default_registry, get_plugin_manager
from schemasync_backup.store import locks, maintenance
from schemasync_backup.store.locks import LOCK_DOCUMENT, store_lock
from schemasync_backup.store.maintenance import CreateRunningError
from schemasync_backup.store.store import BackupStore, _pending_marker
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate.validator import Validator

BACKUP = "backup-20261125-120000-0000aaaa"


def small(variant: int, database: str = "app") -> Snapshot:
    return Snapshot(database, "utf8mb4", f"utf8mb4_variant_{variant}", ServerInfo("mariadb", "11.4.0", "", 0))


def orphan(store: BackupStore, variant: int) -> set[str]:
    """Save a backup and remove its manifest; the objects it leaves, relative to the store."""
    info = store.save(small(variant))
    objects = {store.files.relative(store.files.object_path(record)) for record in store.manifest(info.id).objects}
    store.files.remove([store.files.manifest_path(info.id)])
    return objects


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_marker(store: BackupStore, backup_id: str, *, pid: int | None = None, host: str | None = None,
                 started: datetime | None = None, refreshed: datetime | None = None) -> None:
    """A pending marker exactly as a create writes it (store._pending_marker), then edited."""
    moment = started or datetime.now(UTC)
    document = json.loads(_pending_marker(backup_id, "app", moment, refreshed))
    if pid is not None:
        document["pid"] = pid
    if host is not None:
        document["host"] = host
    store.put_document(f"pending/{backup_id}.json", json.dumps(document).encode())


# --- pending markers: one rule -----------------------------------------------------------------


def test_a_marker_left_by_a_dead_process_on_this_host_blocks_nothing(tmp_path: Path) -> None:
    store = BackupStore.open(str(tmp_path))
    lost = orphan(store, 1)
    write_marker(store, BACKUP, pid=dead_pid())  # written a second ago: only the dead pid makes it stale

    [holder] = locks.pending_creates(store)
    assert holder.stale and not holder.live and "is gone" in holder.reason and holder.database == "app"
    assert [(item.backup_id, item.stale) for item in health.pending_creates(store)] == [(BACKUP, True)]
    assert store.prune(grace="0s", dry_run=True).running_creates == ()
    done = store.prune(grace="0s")  # proceeds at once: no CreateRunningError
    assert set(done.removed_objects) == lost and done.removed_markers == (BACKUP,)
    assert store.list() == [] and store.files.listdir("pending") == []


def test_a_marker_from_another_host_is_stale_only_when_its_heartbeat_is_old(tmp_path: Path) -> None:
    store = BackupStore.open(str(tmp_path))
    orphan(store, 1)
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    # Started three hours ago on another host, and still beating: a long create, live.
    write_marker(store, BACKUP, host="elsewhere", pid=1, started=long_ago, refreshed=datetime.now(UTC))
    [holder] = locks.pending_creates(store)
    assert holder.live and holder.reason == ""
    with pytest.raises(CreateRunningError, match=BACKUP):
        store.prune(grace="0s")
    report = store.health()
    assert [m.name for m in report.running_creates] == [BACKUP] and report.incomplete_backups == ()

    # The same marker whose heartbeat stopped three hours ago: abandoned.
    write_marker(store, BACKUP, host="elsewhere", pid=1, started=long_ago, refreshed=long_ago)
    [holder] = locks.pending_creates(store)
    assert holder.stale and "not refreshed for" in holder.reason
    assert [m.name for m in store.health().incomplete_backups] == [BACKUP]
    assert store.prune(grace="0s").removed_markers == (BACKUP,)


def test_a_live_marker_with_a_fresh_heartbeat_blocks_prune_and_protects_its_objects(tmp_path: Path) -> None:
    store = BackupStore.open(str(tmp_path))
    lost = orphan(store, 1)
    write_marker(store, BACKUP)  # this process, fresh
    with pytest.raises(CreateRunningError, match=BACKUP) as caught:
        store.prune(grace="0s")
    assert [holder.name for holder in caught.value.holders] == [BACKUP] and caught.value.holders[0].live
    assert all((tmp_path / path).exists() for path in lost)
    assert not (tmp_path / LOCK_DOCUMENT).exists()
    assert [(item.backup_id, item.stale) for item in health.pending_creates(store)] == [(BACKUP, False)]


def test_a_threshold_shorter_than_the_heartbeat_allows_is_refused(tmp_path: Path) -> None:
    store = BackupStore.open(str(tmp_path))
    with pytest.raises(StaleThresholdError, match="too short"):
        maintenance.prune(store, stale_after="30s")


def _refreshed(store: BackupStore, relative: str) -> str:
    return str(json.loads(store.get_document(relative))["refreshed_at"])


def test_a_long_create_and_a_long_prune_keep_their_marker_and_lock_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "HEARTBEAT_SECONDS", 0.05)
    store = BackupStore.open(str(tmp_path))
    relative = f"pending/{BACKUP}.json"
    with store._writing(BACKUP, "app"):
        first = _refreshed(store, relative)
        time.sleep(0.4)
        second = _refreshed(store, relative)
        assert datetime.fromisoformat(second) > datetime.fromisoformat(first)
        [holder] = locks.pending_creates(store)
        assert holder.live and holder.refreshed_at >= second
    assert store.files.listdir("pending") == []  # the heartbeat stopped before the marker went
    time.sleep(0.2)
    assert store.files.listdir("pending") == []

    with store_lock(store, "prune"):
        first = _refreshed(store, LOCK_DOCUMENT)
        time.sleep(0.4)
        assert datetime.fromisoformat(_refreshed(store, LOCK_DOCUMENT)) > datetime.fromisoformat(first)
    time.sleep(0.2)
    assert not (tmp_path / LOCK_DOCUMENT).exists()


# --- optimize beside validation ----------------------------------------------------------------


@pytest.fixture(scope="module")
def faults_shop(mariadb: ThrowawayServer) -> str:
    load_sample(mariadb.dsn, "faults_shop")
    return "faults_shop"


@pytest.fixture(scope="module")
def shop_snapshot(mariadb: ThrowawayServer, faults_shop: str) -> Snapshot:
    return Snapshot.capture(mariadb.dsn, faults_shop)


@pytest.mark.server
def test_optimize_never_lets_a_concurrent_validation_see_changed_bytes(
    tmp_path: Path, shop_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = BackupStore.open(str(tmp_path), compression="none")
    backups = [raw.save(attrs.evolve(shop_snapshot, database=f"copy_{n}")) for n in range(4)]
    backups.append(raw.save(shop_snapshot))
    backups.append(raw.save(shop_snapshot))  # shares its objects with the one before
    before = {raw.files.relative(path) for path in raw.object_paths()}

    # Widen the windows between writing an object and switching the manifests that name it.
    rerecord = maintenance._rerecord

    def slow_rerecord(*args: Any) -> Any:
        time.sleep(0.02)
        return rerecord(*args)

    monkeypatch.setattr(maintenance, "_rerecord", slow_rerecord)
    reader = BackupStore.open(str(tmp_path))
    stop = threading.Event()
    findings: list[str] = []
    rounds = [0]

    def validate_all() -> None:
        validator = Validator(reader)
        while not stop.is_set():
            for info in backups:
                for result in (validator.integrity_check(info.id), validator.validate(info.id)):
                    findings.extend(str(error) for error in result.errors)
            rounds[0] += 1

    thread = threading.Thread(target=validate_all)
    thread.start()
    try:
        time.sleep(0.1)
        report = BackupStore.open(str(tmp_path), compression="gzip", compression_level=9).optimize(dry_run=False)
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join()

    assert rounds[0] > 2
    assert not [finding for finding in findings if "checksum mismatch" in finding], findings
    rewritten = {entry.path: entry.new_path for entry in report.objects if entry.rewritten}
    assert rewritten and set(report.removed_objects) == set(rewritten) and report.kept_objects == ()
    after = {raw.files.relative(path) for path in raw.object_paths()}
    assert after == (before - set(rewritten)) | set(rewritten.values())  # the old objects are gone
    validator = Validator(reader)
    for info in backups:
        assert validator.validate(info.id).valid
        assert reader.get(info.id).compression == "gzip"
        assert reader.status_of(info.id) == Status.COMPLETED
    # The new names are a documented object name: prune keeps what the manifests name.
    assert reader.prune(grace="0s").removed_objects == ()


# --- plugins that fail -------------------------------------------------------------------------


class ExplodingNotifier:
    @hookimpl
    def schemasync_notify(self, event: str, payload: Mapping[str, Any]) -> None:
        raise RuntimeError(f"webhook down while telling {event}")


@attrs.define
class RecordingNotifier:
    events: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)

    @hookimpl
    def schemasync_notify(self, event: str, payload: Mapping[str, Any]) -> None:
        self.events.append((event, dict(payload)))


class BoomCodec:
    name = "boom"

    def compress(self, data: bytes, level: int | None) -> bytes:
        raise RuntimeError("boom: out of cheese")

    def decompress(self, data: bytes) -> bytes:
        return data


class BoomCodecPlugin:
    @hookimpl
    def schemasync_codecs(self) -> list[Codec]:
        return [BoomCodec()]


@pytest.fixture
def plugin_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("schemasync_backup")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.mark.server
def test_a_notifier_that_raises_never_fails_a_committed_backup(
    tmp_path: Path, mariadb: ThrowawayServer, faults_shop: str, plugin_log: list[logging.LogRecord]
) -> None:
    registry = default_registry()
    recorder = RecordingNotifier()
    registry.manager.register(ExplodingNotifier(), name="tests.exploding-notifier")
    registry.manager.register(recorder, name="tests.recorder")
    store = BackupStore.open(str(tmp_path), registry=registry)

    info = store.create(mariadb.dsn, faults_shop)
    assert [(listed.id, listed.status) for listed in store.list()] == [(info.id, Status.COMPLETED)]
    assert [event for event, _ in recorder.events] == ["backup.created"]  # no backup.failed, the others still told
    messages = [record.getMessage() for record in plugin_log]
    assert any("plugin tests.exploding-notifier failed in schemasync_notify (backup.created)" in message
               and "webhook down" in message for message in messages), messages
    assert Validator(store).validate(info.id).valid and store.files.listdir("pending") == []
    store.prune(grace="0s")  # store.pruned goes to the exploding notifier too: logged, not raised


@pytest.mark.server
def test_a_codec_plugin_that_raises_fails_the_create_cleanly_naming_the_plugin(
    tmp_path: Path, mariadb: ThrowawayServer, faults_shop: str
) -> None:
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(BoomCodecPlugin(), name="tests.boom-codec")
    recorder = RecordingNotifier()
    manager.register(recorder, name="tests.recorder")
    registry = Registry.from_manager(manager)
    assert registry.provider("codec", "boom") == "tests.boom-codec"
    store = BackupStore.open(str(tmp_path), compression="boom", compression_threshold=0, registry=registry)

    with pytest.raises(PluginError, match=r"plugin tests\.boom-codec") as caught:
        store.create(mariadb.dsn, faults_shop)
    assert caught.value.subject == "tests.boom-codec"
    assert "failed to compress: RuntimeError: boom: out of cheese" in str(caught.value)
    assert not isinstance(caught.value.__cause__, PluginError)
    assert store.list() == [] and store.files.listdir("pending") == [] and store.object_paths() == []
    assert [event for event, _ in recorder.events] == ["backup.failed"]


# --- damaged object headers --------------------------------------------------------------------


@pytest.mark.server
def test_an_object_header_naming_an_unknown_codec_is_rewritten_by_the_next_create(
    tmp_path: Path, mariadb: ThrowawayServer, faults_shop: str
) -> None:
    store = BackupStore.open(str(tmp_path), compression="lz4")
    first = store.create(mariadb.dsn, faults_shop)
    record = store.manifest(first.id).snapshot_object
    assert record.codec == "lz4"
    path = Path(store.files.object_path(record))
    data = path.read_bytes()
    assert data.count(b'"codec": "lz4"') == 1
    path.write_bytes(data.replace(b'"codec": "lz4"', b'"codec": "xz9"'))  # still valid JSON, same length

    damaged = Validator(store).integrity_check(first.id)
    assert not damaged.valid and "checksum mismatch" in str(damaged.errors[0])
    # Read against the manifest's record, the header is damage, not a missing plugin.
    with pytest.raises(BackupFormatError, match="names codec 'xz9', the manifest records 'lz4'") as caught:
        b"".join(framing.decode(io.BytesIO(path.read_bytes()), record.address, store.keyring, store.registry,
                                str(path), record=record))
    assert not isinstance(caught.value, PluginError)

    second = store.create(mariadb.dsn, faults_shop)  # does not fail: the object is not reusable, so rewritten
    assert store.manifest(second.id).snapshot_object.path == record.path
    assert path.read_bytes() == data
    validator = Validator(store)
    assert validator.validate(second.id).valid
    assert validator.validate(first.id).valid  # healed: lz4 is deterministic, so the bytes are the old ones


def test_a_missing_codec_plugin_is_a_failure_to_read_not_damage() -> None:
    registry = default_registry()
    plaintext = b"create table t (id int);\n" * 100
    address = hashlib.sha256(plaintext).hexdigest()
    sink = io.BytesIO()
    record = framing.encode(plaintext, address, len(plaintext), framing.Encoding("gzip"), registry, sink)
    without_gzip = attrs.evolve(registry, codecs={name: codec for name, codec in registry.codecs.items()
                                                  if name != "gzip"})
    # With the record: the header agrees with it, so a plugin is missing here.
    with pytest.raises(PluginError, match="unknown compression codec 'gzip'") as caught:
        b"".join(framing.decode(io.BytesIO(sink.getvalue()), address, Keyring(), without_gzip, "obj",
                                record=record))
    assert not isinstance(caught.value, BackupFormatError)
    # Without a record (a create deciding whether to reuse the bytes): not reusable, whatever the cause.
    header = framing.read_header(io.BytesIO(sink.getvalue()), "obj")
    stream = io.BytesIO(sink.getvalue())
    framing.read_header(stream, "obj")
    frame = next(framing.iter_raw_frames(stream, "obj"))
    with pytest.raises(UnknownObjectCodecError, match="the header is damaged, or the plugin") as unknown:
        framing.decode_frame(header, frame, Keyring(), without_gzip, "obj")
    assert isinstance(unknown.value, BackupFormatError) and isinstance(unknown.value, PluginError)


def test_plugin_failure_log_names_the_plugin_and_hook(plugin_log: list[logging.LogRecord]) -> None:
    registry = Registry.from_manager(get_plugin_manager(load_entry_points=False))
    recorder = RecordingNotifier()
    registry.manager.register(ExplodingNotifier(), name="tests.exploding-notifier")
    registry.manager.register(recorder, name="tests.recorder")
    registry.notify("store.pruned", {"removed_objects": []})
    assert recorder.events == [("store.pruned", {"removed_objects": []})]
    assert [record.getMessage() for record in plugin_log] == [
        "plugin tests.exploding-notifier failed in schemasync_notify (store.pruned): RuntimeError: webhook down "
        "while telling store.pruned"]


@pytest.mark.server
def test_a_capture_the_caller_refuses_is_not_a_failed_backup(tmp_path: Path, mariadb: ThrowawayServer,
                                                              faults_shop: str) -> None:
    """A rollback's pre-rollback backup refuses a stale plan through ``check``: nothing is stored, and
    ``backup.failed`` is not told (the operator would be paged for a decision); a real failure still is."""
    registry = Registry.from_manager(get_plugin_manager(load_entry_points=False))
    recorder = RecordingNotifier()
    registry.manager.register(recorder, name="tests.recorder")
    store = BackupStore.open(str(tmp_path), registry=registry)

    def stale(snapshot: Snapshot) -> None:
        raise StalePlanError(f"{snapshot.database} changed since the plan was made", subject=snapshot.database)

    with pytest.raises(StalePlanError):
        store.create(mariadb.dsn, faults_shop, check=stale)
    with pytest.raises(StalePlanError):
        store.create(mariadb.dsn, faults_shop, check=stale, data="all")
    assert store.list() == [] and store.files.listdir("pending") == [] and recorder.events == []

    with pytest.raises(Exception, match="unknown database"):
        store.create(mariadb.dsn, "no_such_database_here")
    assert [event for event, _ in recorder.events] == ["backup.failed"]
