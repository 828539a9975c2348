"""Storage maintenance: prune unreferenced objects safely, report usage and health, re-compress.

Functions here take a :class:`~schemasync_backup.store.BackupStore`; the store's ``prune``,
``usage``, ``health`` and ``optimize`` methods delegate to them. docs/retention.md describes
the locking protocol between ``create`` and ``prune``:

* a create writes ``pending/<id>.json`` first, then waits while ``locks/prune.json`` is held;
* a prune (or optimize) creates ``locks/prune.json`` exclusively, then refuses while any
  live pending marker exists;

so whichever comes second sees the other. On top of that, objects modified less than a grace
period ago are never pruned (age measured against the storage's own clock).

One rule decides whether a marker or the lock is live or stale (:func:`pending_creates`,
:func:`read_lock`): stale when written on this host by a process that is gone, or when its
heartbeat (``refreshed_at``) is older than the threshold. Whoever holds one keeps it fresh with
:func:`heartbeat`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from schemasync_backup.converter import report, unstructure
from schemasync_backup.display import Card, Rows, Shown, brief_repr, human_size, yes_no
from schemasync_backup.errors import (
    BackupFormatError,
    EncryptionKeyError,
    IntegrityError,
    PluginError,
    SchemaSyncBackupError,
)
from schemasync_backup.errors import CreateRunningError as CreateRunningError  # noqa: PLC0414 - re-export
from schemasync_backup.errors import PruneRunningError as PruneRunningError  # noqa: PLC0414 - re-export
from schemasync_backup.errors import StoreBusyError as StoreBusyError  # noqa: PLC0414 - re-export
from schemasync_backup.formats import framing, journal
from schemasync_backup.formats.backup_id import is_backup_id
from schemasync_backup.formats.framing import ObjectRecord
from schemasync_backup.formats.manifest import BackupInfo, Manifest, Status
from schemasync_backup.store.catalog import Catalog, address_of, read_catalog, stored_objects
from schemasync_backup.store.locks import (
    LockHolder,
    StoreLock,
    modified_at,
    pending_creates,
    read_lock,
    stale_threshold,
    store_lock,
    utc_now,
)
from schemasync_backup.store.retention import RetentionPolicy, RetentionReport, decide, parse_duration

if TYPE_CHECKING:
    from schemasync_backup.store.store import BackupStore


logger = logging.getLogger(__name__)
#: The store-wide lock prune and optimize hold (relative to the store's root).


#: Objects modified less than this long ago are never pruned.
DEFAULT_GRACE = timedelta(hours=1)
#: A staging file under tmp/ lives for one write; one this old was left by a crash (whatever the grace).
STAGING_MIN_AGE = timedelta(minutes=10)
_DELETE_BATCH = 100


# --- prune -------------------------------------------------------------------------------------


@attrs.frozen(repr=False)
class PruneResult(Shown):
    """What a prune removed (or, on a dry run, would remove) and what it kept on purpose.

    Paths are relative to the store's root (``objects/ab/ab12...plain``).
    """

    dry_run: bool
    grace_seconds: float
    removed_objects: tuple[str, ...]
    removed_bytes: int
    referenced_objects: int
    #: Unreferenced, but modified within the grace period: a create may be about to name them.
    kept_recent: tuple[str, ...]
    #: Unreferenced, but the storage cannot say when they were written.
    kept_unknown_age: tuple[str, ...]
    #: Unreferenced, but their address appears in a manifest that cannot be parsed.
    kept_unreadable: tuple[str, ...]
    #: Leftover staging files under tmp/ older than the grace period.
    removed_staging: tuple[str, ...]
    #: Pending markers of creates that crashed (process gone, or not refreshed for too long).
    removed_markers: tuple[str, ...]
    #: Creates seen running (dry run only: a real prune refuses to run beside them).
    running_creates: tuple[str, ...] = ()
    unreadable_manifests: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, dry_run=self.dry_run, removed_objects=len(self.removed_objects),
                          removed_bytes=self.removed_bytes, referenced_objects=self.referenced_objects)

    def _card(self) -> Card:
        verb = "would remove" if self.dry_run else "removed"
        kept = (("kept: written within the grace period", self.kept_recent),
                ("kept: age unknown", self.kept_unknown_age),
                ("kept: named by an unreadable manifest", self.kept_unreadable),
                (f"staging files {verb}", self.removed_staging), (f"abandoned markers {verb}", self.removed_markers),
                ("creates running", self.running_creates), ("unreadable manifests", self.unreadable_manifests))
        return Card(f"Prune{' (dry run)' if self.dry_run else ''}: {verb} {len(self.removed_objects)} unreferenced "
                    f"object(s), {human_size(self.removed_bytes)}",
                    (("referenced objects", self.referenced_objects), ("grace period", f"{self.grace_seconds:g} s"),
                     *((label, len(paths)) for label, paths in kept if paths)),
                    tables=(Rows(f"objects the prune {verb}", ("path",), [(path,) for path in self.removed_objects]),),
                    kind="prune")


def prune(
    store: BackupStore,
    *,
    grace: timedelta | str | None = None,
    dry_run: bool = False,
    stale_after: timedelta | str | None = None,
    wait: float = 0.0,
) -> PruneResult:
    """Delete the objects no manifest names, unless modified within ``grace`` (default 1 hour).

    Holds the store lock and refuses (:class:`CreateRunningError`) while backups are being
    created, waiting up to ``wait`` seconds for them; a dry run takes no lock and deletes nothing.
    Also removes staging leftovers under tmp/ and the pending markers of crashed creates.
    """
    grace_period = DEFAULT_GRACE if grace is None else parse_duration(grace)
    threshold = stale_threshold(stale_after)
    if dry_run:
        store.fs.invalidate_cache()
        now = utc_now()
        markers = pending_creates(store, now=now, stale_after=threshold)
        running = [marker for marker in markers if marker.live]
        stale = [marker for marker in markers if marker.stale]
        return _prune(store, grace_period, now, stale, running, dry_run=True, lock=None)
    with store_lock(store, "prune", stale_after=threshold, wait=wait) as lock:
        result = _prune(store, grace_period, lock.server_time, lock.stale_markers, [], dry_run=False, lock=lock)
    store.registry.notify("store.pruned", result.to_dict())
    return result


def _prune(
    store: BackupStore,
    grace: timedelta,
    reference: datetime,
    stale_markers: Sequence[LockHolder],
    running: Sequence[LockHolder],
    *,
    dry_run: bool,
    lock: StoreLock | None,
) -> PruneResult:
    catalog = read_catalog(store)
    referenced = catalog.referenced(store)
    protected = catalog.protected_addresses()
    objects = stored_objects(store)
    doomed: list[str] = []
    recent: list[str] = []
    unknown: list[str] = []
    unreadable: list[str] = []
    for path in sorted(objects):
        if path in referenced:
            continue
        if address_of(store, path) in protected:
            unreadable.append(path)
            continue
        modified = modified_at(store, path)
        if modified is None:
            unknown.append(path)
        elif reference - modified < grace:
            recent.append(path)
        else:
            doomed.append(path)
    staging = []
    for name in store.files.listdir("tmp"):
        path = store.files.path("tmp", name)
        modified = modified_at(store, path)
        if modified is not None and reference - modified >= max(grace, STAGING_MIN_AGE):
            staging.append(path)
    markers = [store.files.path(marker.path) for marker in stale_markers]
    if not dry_run:
        for start in range(0, len(doomed), _DELETE_BATCH):
            _remove_quietly(store, doomed[start : start + _DELETE_BATCH])
        _remove_quietly(store, staging)
        _remove_quietly(store, markers)
    return PruneResult(
        dry_run=dry_run,
        grace_seconds=grace.total_seconds(),
        removed_objects=tuple(store.files.relative(path) for path in doomed),
        removed_bytes=sum(objects[path] for path in doomed),
        referenced_objects=sum(1 for path in objects if path in referenced),
        kept_recent=tuple(store.files.relative(path) for path in recent),
        kept_unknown_age=tuple(store.files.relative(path) for path in unknown),
        kept_unreadable=tuple(store.files.relative(path) for path in unreadable),
        removed_staging=tuple(store.files.relative(path) for path in staging),
        removed_markers=tuple(marker.name for marker in stale_markers),
        running_creates=tuple(marker.name for marker in running),
        unreadable_manifests=tuple(sorted(catalog.unreadable)),
    )


def _remove_quietly(store: BackupStore, paths: Sequence[str]) -> None:
    """Remove ``paths``; one already gone (removed by someone else) is no error."""
    try:
        store.files.remove(list(paths))
    except FileNotFoundError:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                store.files.remove([path])


# --- usage -------------------------------------------------------------------------------------

_GB = 10**9


@attrs.frozen
class DatabaseUsage:
    database: str
    backup_count: int
    raw_bytes: int  # plaintext of every backup, as if each were stored alone and uncompressed
    stored_bytes: int  # the distinct objects this database's backups name
    oldest: str
    newest: str

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


@attrs.frozen
class BackupUsage:
    backup_id: str
    database: str
    created_at: str
    status: str
    pinned: bool
    raw_bytes: int
    stored_bytes: int
    #: Stored bytes of the objects only this backup names: what removing it would reclaim.
    exclusive_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


@report(..., "total_size_gb", "dedup_ratio", "databases", "backups")
@attrs.frozen(repr=False)
class UsageReport(Shown):
    """How much the store holds and how much dedup and compression save. Sizes in bytes; GB = 10^9."""

    url: str
    backup_count: int
    database_count: int
    object_count: int
    #: Every file under the store's root: objects, manifests, markers, sidecars, staging.
    total_stored_bytes: int
    object_bytes: int
    manifest_bytes: int
    #: Objects no manifest names (prune reclaims them once older than the grace period).
    unreferenced_bytes: int
    #: Plaintext of every backup, each counted in full.
    total_raw_bytes: int
    #: Plaintext of the distinct objects.
    unique_raw_bytes: int
    #: ``total_raw_bytes - unique_raw_bytes``: what naming objects by content saved.
    dedup_savings_bytes: int
    #: ``unique_raw_bytes`` minus the stored size of the referenced objects.
    compression_savings_bytes: int
    databases: tuple[DatabaseUsage, ...]
    backups: tuple[BackupUsage, ...] | None = None

    @property
    def total_size_gb(self) -> float:
        return round(self.total_stored_bytes / _GB, 6)

    @property
    def dedup_ratio(self) -> float:
        return round(self.total_raw_bytes / self.unique_raw_bytes, 3) if self.unique_raw_bytes else 1.0

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, url=self.url, backup_count=self.backup_count, database_count=self.database_count,
                          total_stored_bytes=self.total_stored_bytes)

    def _card(self) -> Card:
        tables = [Rows("databases", ("database", "backups", "raw", "stored", "oldest", "newest"),
                       [(entry.database, entry.backup_count, human_size(entry.raw_bytes),
                         human_size(entry.stored_bytes), entry.oldest, entry.newest) for entry in self.databases])]
        if self.backups is not None:
            tables.append(Rows("backups", ("backup", "database", "status", "stored", "only this backup's", "pinned"),
                               [(entry.backup_id, entry.database, entry.status, human_size(entry.stored_bytes),
                                 human_size(entry.exclusive_bytes), yes_no(entry.pinned)) for entry in self.backups]))
        return Card(f"Store {self.url}: {self.backup_count} backup(s) of {self.database_count} database(s), "
                    f"{human_size(self.total_stored_bytes)} stored",
                    (("objects", f"{self.object_count}, {human_size(self.object_bytes)}"),
                     ("manifests", human_size(self.manifest_bytes)),
                     ("unreferenced", human_size(self.unreferenced_bytes)),
                     ("raw (every backup in full)", human_size(self.total_raw_bytes)),
                     ("dedup", f"saves {human_size(self.dedup_savings_bytes)} (ratio {self.dedup_ratio})"),
                     ("compression", f"saves {human_size(self.compression_savings_bytes)}")),
                    tables=tuple(tables), kind="usage")


def usage(store: BackupStore, *, detailed: bool = False) -> UsageReport:
    """Backup count, stored and raw bytes, dedup savings; per database, and per backup when ``detailed``."""
    store.fs.invalidate_cache()
    catalog = read_catalog(store)
    objects = stored_objects(store)
    with store.files.io("list backups", store.root):
        try:
            everything = store.fs.find(store.root, detail=True)
        except FileNotFoundError:
            everything = {}
    total = sum(int(info.get("size") or 0) for info in everything.values() if info.get("type", "file") == "file")
    manifests_folder = store.files.path("manifests") + "/"
    manifest_bytes = sum(int(info.get("size") or 0) for path, info in everything.items()
                         if path.startswith(manifests_folder))
    statuses = {name.removesuffix(".json") for name in store.files.listdir("status")}

    def stored(record: ObjectRecord) -> int:
        return objects.get(store.files.object_path(record), record.stored_size)

    unique: dict[str, ObjectRecord] = {}
    users: dict[str, set[str]] = {}
    for backup_id, found in catalog.manifests.items():
        for record in found.objects:
            path = store.files.object_path(record)
            unique.setdefault(path, record)
            users.setdefault(path, set()).add(backup_id)
    total_raw = sum(record.size for found in catalog.manifests.values() for record in found.objects)
    unique_raw = sum(record.size for record in unique.values())
    unique_stored = sum(stored(record) for record in unique.values())

    per_database: dict[str, list[Manifest]] = {}
    for found in catalog.manifests.values():
        per_database.setdefault(found.info.database, []).append(found)
    databases = []
    for name, group in sorted(per_database.items()):
        paths = {store.files.object_path(record): record for found in group for record in found.objects}
        times = sorted(found.info.created_at for found in group)
        databases.append(DatabaseUsage(
            database=name, backup_count=len(group),
            raw_bytes=sum(record.size for found in group for record in found.objects),
            stored_bytes=sum(stored(record) for record in paths.values()), oldest=times[0], newest=times[-1],
        ))
    backups = None
    if detailed:
        backups = tuple(
            BackupUsage(
                backup_id=backup_id, database=found.info.database, created_at=found.info.created_at,
                status=store.status_of(backup_id) if backup_id in statuses else Status.COMPLETED,
                pinned=found.info.pinned, raw_bytes=sum(record.size for record in found.objects),
                stored_bytes=sum(stored(record) for record in found.objects),
                exclusive_bytes=sum(stored(record) for record in found.objects
                                    if users[store.files.object_path(record)] == {backup_id}),
            )
            for backup_id, found in sorted(catalog.manifests.items(), key=lambda item: item[1].info.created_at,
                                           reverse=True)
        )
    referenced = set(unique)
    return UsageReport(
        url=store.url,
        backup_count=len(catalog.manifests) + len(catalog.unreadable),
        database_count=len(per_database),
        object_count=len(objects),
        total_stored_bytes=total,
        object_bytes=sum(objects.values()),
        manifest_bytes=manifest_bytes,
        unreferenced_bytes=sum(size for path, size in objects.items() if path not in referenced),
        total_raw_bytes=total_raw,
        unique_raw_bytes=unique_raw,
        dedup_savings_bytes=total_raw - unique_raw,
        compression_savings_bytes=unique_raw - unique_stored,
        databases=tuple(databases),
        backups=backups,
    )


# --- health ------------------------------------------------------------------------------------


@attrs.frozen
class ProbeResult:
    """Writing, reading back and deleting a small file under tmp/."""

    ok: bool
    write_ms: float | None
    read_ms: float | None
    delete_ms: float | None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


@attrs.frozen
class DatabaseSpan:
    database: str
    backup_count: int
    oldest_id: str
    oldest_at: str
    newest_id: str
    newest_at: str

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


@report("url", "checked_at", "healthy", ...)
@attrs.frozen(repr=False)
class StorageHealth(Shown):
    """Whether the store works, and what needs attention. ``healthy`` is False only on ``errors``.

    The one storage verdict: ``store.health()``, ``backup storage-health`` and the storage check of
    :func:`schemasync_backup.health.health_check` all read it (one probe, under tmp/).
    """

    url: str
    checked_at: str
    reachable: bool
    probe: ProbeResult | None
    #: Free and total bytes of the filesystem under the store; None where the storage cannot tell.
    free_bytes: int | None
    total_bytes: int | None
    #: The prune/optimize lock, if held (stale or not).
    lock: LockHolder | None
    stale_locks: tuple[LockHolder, ...]
    running_creates: tuple[LockHolder, ...]
    #: Creates that crashed: a pending marker whose process is gone, and no manifest.
    incomplete_backups: tuple[LockHolder, ...]
    corrupted_backups: tuple[str, ...]
    databases: tuple[DatabaseSpan, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    #: Backups listed, not counting creates still running.
    backup_count: int = 0

    @property
    def healthy(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, url=self.url, healthy=self.healthy, errors=len(self.errors),
                          warnings=len(self.warnings), backup_count=self.backup_count)

    def _card(self) -> Card:
        probe = self.probe
        facts: list[tuple[str, object]] = [
            ("checked", self.checked_at), ("reachable", yes_no(self.reachable)),
            ("probe", "not run" if probe is None else
             f"ok (write {probe.write_ms} ms, read {probe.read_ms} ms, delete {probe.delete_ms} ms)" if probe.ok
             else f"FAILED: {probe.error}"),
            ("free space", "unknown" if self.free_bytes is None
             else f"{human_size(self.free_bytes)} of {human_size(self.total_bytes)}"),
            ("backups", self.backup_count),
            ("lock", "none" if self.lock is None else self.lock.describe()),
        ]
        facts += [(label, ", ".join(items)) for label, items in (
            ("creates running", [holder.describe() for holder in self.running_creates]),
            ("incomplete backups", [holder.name for holder in self.incomplete_backups]),
            ("corrupted backups", self.corrupted_backups)) if items]
        return Card(f"Storage {self.url}: {'healthy' if self.healthy else 'UNHEALTHY'}", tuple(facts),
                    notes=(*(f"error: {error}" for error in self.errors),
                           *(f"warning: {warning}" for warning in self.warnings)),
                    tables=(Rows("databases", ("database", "backups", "oldest", "newest"),
                                 [(span.database, span.backup_count, span.oldest_at, span.newest_at)
                                  for span in self.databases]),),
                    kind="storage-health")


def health(store: BackupStore, *, stale_after: timedelta | str | None = None) -> StorageHealth:
    """Reachability, a write/read/delete probe, free space, locks, incomplete backups, spans per database.

    Never raises for a storage failure: that is what it reports.
    """
    threshold = stale_threshold(stale_after)
    checked_at = utc_now()
    errors: list[str] = []
    warnings: list[str] = []

    def report(**fields: Any) -> StorageHealth:
        defaults: dict[str, Any] = {
            "url": store.url, "checked_at": checked_at.isoformat(timespec="seconds"), "reachable": False,
            "probe": None, "free_bytes": None, "total_bytes": None, "lock": None, "stale_locks": (),
            "running_creates": (), "incomplete_backups": (), "corrupted_backups": (), "databases": (),
        }
        return StorageHealth(**{**defaults, **fields}, errors=tuple(errors), warnings=tuple(warnings))

    try:
        store.fs.invalidate_cache()
        store.files.listdir("manifests")
    except SchemaSyncBackupError as exc:
        errors.append(f"storage unreachable: {exc}")
        return report()
    probe = _probe(store)
    if not probe.ok:
        errors.append(f"storage probe failed: {probe.error}")
    free = total = None
    if store.files.is_local:
        with contextlib.suppress(OSError):
            disk = shutil.disk_usage(store.root)
            free, total = disk.free, disk.total
    try:
        lock = read_lock(store, now=checked_at, stale_after=threshold)
        markers = pending_creates(store, now=checked_at, stale_after=threshold)
        listed = store.list()
    except SchemaSyncBackupError as exc:
        errors.append(f"cannot read the store: {exc}")
        return report(reachable=True, probe=probe, free_bytes=free, total_bytes=total)
    stale_locks = (lock,) if lock is not None and lock.stale else ()
    for holder in stale_locks:
        warnings.append(f"abandoned lock: {holder.describe()} ({holder.path}); the next prune takes it over")
    running = tuple(marker for marker in markers if marker.live)
    incomplete = tuple(marker for marker in markers if marker.stale)
    for marker in incomplete:
        warnings.append(f"incomplete backup: {marker.describe()} never finished ({marker.path}); prune removes "
                        "the marker and, after the grace period, any objects it left")
    backups = [info for info in listed if info.status != Status.CREATING]
    corrupted = tuple(info.id for info in backups if info.status == Status.CORRUPTED)
    for backup_id in corrupted:
        warnings.append(f"backup {backup_id} is CORRUPTED; Validator.partial_recovery salvages what is intact")
    spans: dict[str, list[Any]] = {}
    for info in backups:
        if info.database:
            spans.setdefault(info.database, []).append(info)
    databases = tuple(
        DatabaseSpan(name, len(group), group[-1].id, group[-1].created_at, group[0].id, group[0].created_at)
        for name, group in sorted(spans.items())  # list() is newest first
    )
    return report(reachable=True, probe=probe, free_bytes=free, total_bytes=total, lock=lock,
                  stale_locks=stale_locks, running_creates=running, incomplete_backups=incomplete,
                  corrupted_backups=corrupted, databases=databases, backup_count=len(backups))


def _probe(store: BackupStore) -> ProbeResult:
    """The one storage probe: write, read back and delete a small file under tmp/ (prune clears tmp/)."""
    relative = f"tmp/health-{uuid.uuid4().hex}"
    payload = os.urandom(64)
    timings: list[float] = []
    try:
        started = time.perf_counter()
        store.put_document(relative, payload)
        timings.append(time.perf_counter())
        back = store.get_document(relative)
        timings.append(time.perf_counter())
        store.remove_document(relative)
        timings.append(time.perf_counter())
    except (SchemaSyncBackupError, FileNotFoundError) as exc:
        with contextlib.suppress(SchemaSyncBackupError, FileNotFoundError):
            store.remove_document(relative)
        return ProbeResult(False, None, None, None, str(exc) or type(exc).__name__)
    write_ms, read_ms, delete_ms = (round((after - before) * 1000, 3)
                                    for before, after in itertools.pairwise([started, *timings]))
    if back != payload:
        return ProbeResult(False, write_ms, read_ms, delete_ms, "the probe read back differs from what was written")
    if store.files.exists(store.files.path(relative)):
        return ProbeResult(False, write_ms, read_ms, delete_ms, "the probe file is still there after deleting it")
    return ProbeResult(True, write_ms, read_ms, delete_ms)


# --- optimize ----------------------------------------------------------------------------------


@report(..., "savings")
@attrs.frozen
class ObjectOptimization:
    """One object: its size now and with the configured codec, and whether it was (or would be) rewritten.

    ``path`` is the object as the manifests named it; ``new_path`` the re-encoded object written
    beside it (empty on a dry run, or when nothing was written).
    """

    path: str
    codec_before: str
    codec_after: str
    stored_before: int
    stored_after: int
    backups: tuple[str, ...]
    rewritten: bool
    skipped: str = ""
    new_path: str = ""

    @property
    def savings(self) -> int:
        return self.stored_before - self.stored_after if not self.skipped else 0

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


@report("dry_run", "codec", "level", "objects_checked", "objects_improved", "stored_before", "savings_bytes", ...,
        objects_checked=lambda report: len(report.objects), objects_improved=lambda report: len(report.improvable))
@attrs.frozen(repr=False)
class OptimizeReport(Shown):
    """What re-compressing every object with the configured codec saves, and (without dry_run) did."""

    dry_run: bool
    codec: str
    level: int | None
    objects: tuple[ObjectOptimization, ...]
    #: Backups whose manifests were re-recorded to name the re-encoded objects.
    manifests_updated: tuple[str, ...]
    #: The objects the re-encoded ones replaced, removed once no manifest named them.
    removed_objects: tuple[str, ...] = ()
    #: Replaced objects kept: a manifest still names them (one written meanwhile) or may (one that
    #: cannot be parsed names their address). A later prune removes them once nothing does.
    kept_objects: tuple[str, ...] = ()

    @property
    def stored_before(self) -> int:
        return sum(entry.stored_before for entry in self.objects if not entry.skipped)

    @property
    def savings_bytes(self) -> int:
        return sum(entry.savings for entry in self.objects if entry.savings > 0)

    @property
    def improvable(self) -> tuple[ObjectOptimization, ...]:
        return tuple(entry for entry in self.objects if entry.savings > 0)

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, dry_run=self.dry_run, codec=self.codec, objects=len(self.objects),
                          improvable=len(self.improvable), savings_bytes=self.savings_bytes)

    def _card(self) -> Card:
        codec = self.codec if self.level is None else f"{self.codec} level {self.level}"
        verb = "would save" if self.dry_run else "saved"
        return Card(f"Optimize{' (dry run)' if self.dry_run else ''} with {codec}: {len(self.improvable)} of "
                    f"{len(self.objects)} object(s) smaller, {verb} {human_size(self.savings_bytes)} of "
                    f"{human_size(self.stored_before)}",
                    (("manifests re-recorded", len(self.manifests_updated)),
                     ("replaced objects removed", len(self.removed_objects)),
                     ("replaced objects kept", len(self.kept_objects))),
                    tables=(Rows("objects", ("object", "codec", "stored", "with " + codec, "rewritten", "skipped"),
                                 [(entry.path, entry.codec_before, human_size(entry.stored_before),
                                   human_size(entry.stored_after), yes_no(entry.rewritten), entry.skipped)
                                  for entry in self.objects]),),
                    kind="optimize")


def optimize(store: BackupStore, *, dry_run: bool = True, stale_after: timedelta | str | None = None,
             wait: float = 0.0) -> OptimizeReport:
    """Re-compress objects with the store's configured codec and level where that makes them smaller.

    Never rewrites an object in place, so a validation running beside it never finds a manifest
    vouching for bytes that changed. For each object that gets smaller:

    1. the re-encoded object is written under a new name, ``<address>.<key>.s-<sha256 of its
       stored bytes>`` (same plaintext address, same key: still content-addressed), read back
       and decoded to its address;
    2. every manifest that names the old object is re-recorded to name the new one, re-sealed,
       written and read back;

    and once every object is done, the old objects no manifest names any more are removed.
    Without ``dry_run`` this holds the store lock like prune. Objects named by a manifest that
    does not verify, objects that do not decode, and objects whose key or codec plugin is not
    available are skipped, with the reason.
    """
    if dry_run:
        store.fs.invalidate_cache()
        return _optimize(store, dry_run=True)
    threshold = stale_threshold(stale_after)
    with store_lock(store, "optimize", stale_after=threshold, wait=wait):
        report = _optimize(store, dry_run=False)
    store.registry.notify("store.optimized", report.to_dict())
    return report


def _optimize(store: BackupStore, *, dry_run: bool) -> OptimizeReport:
    catalog = read_catalog(store)
    current = dict(catalog.manifests)
    named: dict[str, list[str]] = {}
    records: dict[str, ObjectRecord] = {}
    for backup_id, found in sorted(catalog.manifests.items()):
        for record in found.objects:
            path = store.files.object_path(record)
            named.setdefault(path, []).append(backup_id)
            records.setdefault(path, record)
    entries = []
    updated: list[str] = []
    superseded: list[str] = []
    for path in sorted(named):
        entry, new = _optimize_object(store, path, records[path], tuple(named[path]), catalog, dry_run=dry_run)
        entries.append(entry)
        if new is None:
            continue
        # The new object is written and proven; now switch the manifests to it, object by object.
        # An interruption leaves some manifests naming the old object and some the new: both exist
        # and both are intact, so every backup stays valid; the next optimize or prune tidies up.
        for backup_id in named[path]:
            current[backup_id] = _rerecord(store, current[backup_id], path, new)
            if backup_id not in updated:
                updated.append(backup_id)
        superseded.append(path)
    removed, kept = _remove_superseded(store, superseded) if superseded else ((), ())
    return OptimizeReport(dry_run, store.encoding.codec, store.encoding.level, tuple(entries), tuple(sorted(updated)),
                          removed, kept)


def _optimize_object(
    store: BackupStore, path: str, record: ObjectRecord, backups: tuple[str, ...], catalog: Catalog, *, dry_run: bool
) -> tuple[ObjectOptimization, ObjectRecord | None]:
    relative = store.files.relative(path)

    def skip(reason: str, stored: int = record.stored_size) -> tuple[ObjectOptimization, None]:
        return ObjectOptimization(relative, record.codec, record.codec, stored, stored, backups, False, reason), None

    damaged = [backup_id for backup_id in backups if backup_id in catalog.unverified]
    if damaged:
        return skip(f"named by backup {damaged[0]}, whose manifest does not verify (checksum, id or seal); "
                    "validate it, and repair its checksum with Validator.recalculate_checksum")
    try:
        data = store.files.read(path)
        if hashlib.sha256(data).hexdigest() != record.stored_sha256:
            return skip("damaged: its stored bytes differ from what the manifest records; validate the backups "
                        "that name it", len(data))
        plaintext = b"".join(framing.decode(io.BytesIO(data), record.address, store.keyring, store.registry, path,
                                            record=record))
    except FileNotFoundError:
        return skip("object missing")
    except EncryptionKeyError as exc:
        return skip(f"cannot read it: {exc}")
    except (IntegrityError, BackupFormatError) as exc:
        return skip(f"damaged: {exc}")
    except PluginError as exc:
        return skip(f"cannot read it here: {exc}")
    key = store.keyring.get(record.key_id) if record.key_id else None
    encoding = attrs.evolve(store.encoding, key=key, cipher=record.cipher or store.encoding.cipher)
    sink = io.BytesIO()
    try:
        framing.encode(plaintext, record.address, len(plaintext), encoding, store.registry, sink)
    except PluginError as exc:
        return skip(f"cannot encode: {exc}", len(data))
    candidate = sink.getvalue()
    codec_after = encoding.codec if len(plaintext) >= encoding.threshold else "none"
    better = len(candidate) < len(data)
    entry = ObjectOptimization(relative, record.codec, codec_after if better else record.codec, len(data),
                               len(candidate) if better else len(data), backups, better and not dry_run)
    if not better or dry_run:
        return entry, None
    new = attrs.evolve(framing.record_from_bytes(candidate, record.address, len(plaintext), path), stored_suffix=True)
    target = store.files.object_path(new)
    _write_proven(store, target, candidate, new)
    return attrs.evolve(entry, new_path=store.files.relative(target)), new


def _write_proven(store: BackupStore, target: str, data: bytes, record: ObjectRecord) -> None:
    """Write a re-encoded object under its own new name, read it back and decode it to its address.

    Raises IntegrityError (removing what it wrote) when the storage gives back anything else:
    no manifest is switched to an object that was not proven.
    """
    with contextlib.suppress(FileNotFoundError):
        if hashlib.sha256(store.files.read(target)).hexdigest() == record.stored_sha256:
            return  # an earlier, interrupted optimize wrote exactly these bytes (unencrypted: deterministic)
    store.files.put_bytes(target, data)
    try:
        back = store.files.read(target)
        if len(back) != record.stored_size or hashlib.sha256(back).hexdigest() != record.stored_sha256:
            raise IntegrityError(f"{target}: the re-encoded object read back differs from the one written; optimize "
                                 "stopped before any manifest named it", subject=target)
        for _ in framing.decode(io.BytesIO(back), record.address, store.keyring, store.registry, target,
                                record=record):
            pass
    except BaseException:
        _remove_quietly(store, [target])
        raise


def _remove_superseded(store: BackupStore, paths: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Remove the objects optimize replaced, each only when no manifest names it: read afresh, so a
    manifest written meanwhile (copy_to, import_archive take no lock) still protects its objects."""
    store.fs.invalidate_cache()
    catalog = read_catalog(store)
    referenced = catalog.referenced(store)
    protected = catalog.protected_addresses()
    doomed = [path for path in paths if path not in referenced and address_of(store, path) not in protected]
    kept = [path for path in paths if path not in doomed]
    for path in kept:
        logger.warning("optimize kept %s: a manifest still names it (or one that cannot be parsed may); a later "
                       "prune removes it once nothing does", store.files.relative(path))
    for start in range(0, len(doomed), _DELETE_BATCH):
        _remove_quietly(store, doomed[start : start + _DELETE_BATCH])
    return tuple(store.files.relative(path) for path in doomed), tuple(store.files.relative(path) for path in kept)


def _rerecord(store: BackupStore, found: Manifest, path: str, new: ObjectRecord) -> Manifest:
    """The manifest with the object at ``path`` re-recorded, re-sealed, written and read back."""
    objects = tuple(new if store.files.object_path(record) == path else record for record in found.objects)
    info = attrs.evolve(found.info, stored_size=sum(record.stored_size for record in objects),
                        compression=objects[0].codec)
    return store.write_manifest(attrs.evolve(found, info=info, objects=objects))


# --- retention, applied -------------------------------------------------------------------------


def needed_by_rollbacks(store: BackupStore, backups: Iterable[BackupInfo]) -> dict[str, str]:
    """The pre-rollback backups an unfinished rollback still needs (the way back from where it
    stopped), each with why: those the latest run to each backup names when it failed or is
    running. A latest journal that cannot be parsed keeps every pre-rollback backup of a rollback to
    that backup; one that cannot be read raises (nothing is removed on a guess)."""
    infos = list(backups)
    needed: dict[str, str] = {}
    for target in filter(is_backup_id, store.list_documents(journal.FOLDER)):  # the planner writes no other name
        latest = journal.latest(store.list_documents(journal.folder(target)))
        if latest is None:
            continue
        try:
            document = json.loads(store.get_document(journal.path(target, latest)))
        except FileNotFoundError:  # removed meanwhile: no run to finish
            continue
        except ValueError:
            document = None
        if not isinstance(document, dict):
            for info in infos:
                if journal.is_pre_rollback(info) and info.tags.get(journal.ROLLBACK_TO_TAG) == target:
                    needed[info.id] = (f"the journal of the latest rollback to {target} ({latest}) cannot be parsed, "
                                       f"so its state is unknown (see `rollback recovery-info --backup-id {target}`)")
            continue
        pre = journal.unfinished_pre_rollback(document)
        if pre is not None:
            needed[pre] = (f"the latest rollback to {target} ({latest.removesuffix('.json')}) is "
                           f"{document['status']} (see `rollback recovery-info --backup-id {target}`)")
    return needed


def apply_retention(
    store: BackupStore,
    policy: RetentionPolicy,
    *,
    dry_run: bool = True,
    database: str | None = None,
    now: datetime | None = None,
    grace: timedelta | str | None = None,
    confirmed: RetentionReport | None = None,
) -> RetentionReport:
    """Decide every backup of ``store`` (of ``database`` only, if given) by ``policy``.

    Without ``dry_run``: remove the manifests (and status sidecars) of the backups no rule
    keeps, then prune unreferenced objects. A prune that cannot run because backups are being
    created is reported in ``prune_skipped``; the next prune reclaims those objects.

    ``confirmed``: the dry-run report a person approved. Only backups it removes *and* the
    decision made now removes go: never one the person did not see, never one that a change
    since (a new tag, a pin, a newer backup failing) now keeps.
    """
    moment = now if now is not None else datetime.now(UTC)
    store.fs.invalidate_cache()  # decide from what the storage holds now, not a cached listing
    backups = store.list(database=database)
    decisions = decide(backups, policy, now=moment, needed=needed_by_rollbacks(store, backups))
    decided_at = moment.isoformat(timespec="seconds")
    if dry_run:
        return RetentionReport(True, policy, decided_at, decisions)
    approved = None if confirmed is None else {decision.backup_id for decision in confirmed.to_remove}
    removed = []
    for decision in decisions:
        if decision.keep or (approved is not None and decision.backup_id not in approved):
            continue
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by someone else
            store.files.remove([store.files.manifest_path(decision.backup_id)])
        with contextlib.suppress(FileNotFoundError):
            store.files.remove([store.files.status_path(decision.backup_id)])
        removed.append(decision.backup_id)
    store.registry.notify("retention.applied", {"removed": list(removed), "kept": sum(d.keep for d in decisions)})
    try:
        pruned = prune(store, grace=grace)
    except StoreBusyError as exc:
        return RetentionReport(False, policy, decided_at, decisions, tuple(removed), None, str(exc))
    return RetentionReport(False, policy, decided_at, decisions, tuple(removed), pruned)
