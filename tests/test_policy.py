"""Policy that once lived only in the CLI, now in the library for embedding users too."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import pymysql
import pytest
from test_maintenance_faults import RecordingNotifier

from schemasync_backup import RetentionPolicy, RollbackPlanner
from schemasync_backup.backup_job import create_backup
from schemasync_backup.errors import ConcurrentCreateError
from schemasync_backup.plugins.manager import default_registry
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate.validator import Validator

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def shop(mariadb: ThrowawayServer) -> str:
    load_sample(mariadb.dsn, "policy_shop")
    return "policy_shop"


def recording_store(path: Path) -> tuple[BackupStore, RecordingNotifier]:
    registry = default_registry()
    recorder = RecordingNotifier()
    registry.manager.register(recorder, name="tests.policy-recorder")
    return BackupStore.open(str(path), registry=registry), recorder


def write_marker(root: Path, backup_id: str, database: str, pid: int) -> None:
    now = datetime.now(UTC).isoformat()
    (root / "pending").mkdir(parents=True, exist_ok=True)
    (root / "pending" / f"{backup_id}.json").write_text(json.dumps({
        "id": backup_id, "database": database, "started_at": now, "refreshed_at": now, "pid": pid,
        "host": socket.gethostname()}))


def test_a_second_create_of_a_database_is_refused_while_one_runs(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str
) -> None:
    store = BackupStore.open(str(tmp_path))
    write_marker(tmp_path, "backup-20261202-010000-0000aaaa", shop, os.getpid())  # alive: this process
    with pytest.raises(ConcurrentCreateError, match="allow_concurrent") as refused:
        store.create(mariadb.dsn, shop)
    assert refused.value.running == ("backup-20261202-010000-0000aaaa",)
    assert store.create(mariadb.dsn, shop, allow_concurrent=True).database == shop
    # A create of another database, and one beside a crashed create, go ahead.
    write_marker(tmp_path, "backup-20261202-010000-0000aaaa", shop, 2**22 + 1)  # no process has this pid
    assert store.create(mariadb.dsn, shop).database == shop


def test_create_backup_validates_then_applies_retention(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store, recorder = recording_store(tmp_path)
    first = create_backup(store, mariadb.dsn, shop, retention=RetentionPolicy(max_backups=1))
    second = create_backup(store, mariadb.dsn, shop, retention=RetentionPolicy(max_backups=1))
    assert first.ok and second.ok and second.validation is not None and second.validation.valid
    assert second.retention is not None and second.retention.removed == (first.info.id,)
    assert [info.id for info in store.list()] == [second.info.id]
    assert "retention.applied" in [event for event, _ in recorder.events]


def test_retention_applies_only_the_decision_that_was_confirmed(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str
) -> None:
    store = BackupStore.open(str(tmp_path))
    ids = [store.create(mariadb.dsn, shop).id for _ in range(3)]
    policy = RetentionPolicy(max_backups=2)
    shown = store.apply_retention(policy, dry_run=True)
    assert [decision.backup_id for decision in shown.to_remove] == [ids[0]]
    newest = store.create(mariadb.dsn, shop).id  # after the person said yes: now two would go
    done = store.apply_retention(policy, dry_run=False, confirmed=shown)
    assert done.removed == (ids[0],)
    assert sorted(info.id for info in store.list()) == sorted([ids[1], ids[2], newest])


def test_the_library_sends_the_events(tmp_path: Path, mariadb: ThrowawayServer, shop: str,
                                      root: pymysql.connections.Connection) -> None:
    store, recorder = recording_store(tmp_path)
    info = store.create(mariadb.dsn, shop)
    planner = RollbackPlanner(store)
    with root.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {shop}.customer ADD COLUMN policy_probe int NULL")
    planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id), force=True)
    assert "rollback.executed" in [event for event, _ in recorder.events]
    record = store.manifest(info.id).snapshot_object
    path = tmp_path / "objects" / record.path
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert not Validator(store).validate(info.id).valid
    failed = [payload for event, payload in recorder.events if event == "validation.failed"]
    assert failed and failed[-1]["backup_id"] == info.id and failed[-1]["damaged"]
    store.delete(info.id)
    assert ("backup.deleted", {"backup_id": info.id, "database": shop}) in recorder.events
