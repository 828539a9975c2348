"""Who holds the store: pending markers of creates, the store lock of prune and optimize, heartbeats.

The one rule for a marker or lock that nobody holds any more (:func:`abandoned`): its process
is gone on this host, or its heartbeat is older than the stale threshold."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from schemasync_backup.converter import unstructure
from schemasync_backup.errors import (
    CreateRunningError,
    PruneRunningError,
    SchemaSyncBackupError,
    StaleThresholdError,
)
from schemasync_backup.formats import manifest
from schemasync_backup.model.durations import format_duration
from schemasync_backup.store.retention import parse_duration

if TYPE_CHECKING:
    from schemasync_backup.store.store import BackupStore


logger = logging.getLogger(__name__)
#: The store-wide lock prune and optimize hold (relative to the store's root).


LOCK_DOCUMENT = "locks/prune.json"
#: A lock or pending marker from another host counts as abandoned after this long without a refresh.
STALE_AFTER = timedelta(hours=1)
#: How long a create waits for a running prune or optimize before it gives up, and how often it looks.
CREATE_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2
#: How often a running create refreshes its pending marker, and a prune or optimize its lock, so
#: that nobody takes them for abandoned. Read when each heartbeat starts.
HEARTBEAT_SECONDS = 60.0
#: A stale threshold must leave room for this many missed heartbeats (slow storage, a paused VM).
_HEARTBEATS_PER_THRESHOLD = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- who holds what --------------------------------------------------------------------------


@attrs.frozen
class LockHolder:
    """A running (or abandoned) create or prune/optimize, from its marker or lock document.

    ``stale`` is the one decision everything uses (:func:`abandoned`), made when it was read.
    """

    kind: str  # "create", "prune" or "optimize"
    name: str  # the backup id of a create, the lock token of a prune
    path: str  # relative to the store root
    host: str
    pid: int | None
    started_at: str
    refreshed_at: str
    database: str = ""  # of a create
    stale: bool = False
    #: Why it is stale, in words ("" when live).
    reason: str = ""

    @property
    def live(self) -> bool:
        return not self.stale

    @property
    def backup_id(self) -> str:
        return self.name

    def age(self, now: datetime) -> timedelta | None:
        try:
            return now - _aware(datetime.fromisoformat(self.refreshed_at or self.started_at))
        except ValueError:
            return None

    def describe(self) -> str:
        who = f"{self.host} pid {self.pid}" if self.pid is not None else self.host or "an unknown process"
        state = f" (stale: {self.reason})" if self.stale else ""
        return f"{self.kind} {self.name} by {who} since {self.started_at or 'an unknown time'}{state}"

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def abandoned(holder: LockHolder, now: datetime, stale_after: timedelta) -> str:
    """The rule for markers and locks alike: why ``holder`` is abandoned, or "" while it is live.

    Abandoned when it was written on this host by a process that no longer exists, or when its
    heartbeat (``refreshed_at``, else ``started_at``) is older than ``stale_after``. One whose
    age cannot be told and whose process cannot be checked stays live: nothing is decided on a guess.
    """
    if holder.host == socket.gethostname() and holder.pid is not None and not _pid_alive(holder.pid):
        return f"process {holder.pid} on this host is gone"
    age = holder.age(now)
    if age is not None and age > stale_after:
        return f"not refreshed for {format_duration(age)}, more than {format_duration(stale_after)}"
    return ""


def stale_threshold(stale_after: timedelta | str | None) -> timedelta:
    """``stale_after`` parsed (default :data:`STALE_AFTER`); refused when heartbeats could not keep up."""
    threshold = STALE_AFTER if stale_after is None else parse_duration(stale_after)
    minimum = timedelta(seconds=HEARTBEAT_SECONDS * _HEARTBEATS_PER_THRESHOLD)
    if threshold < minimum:
        raise StaleThresholdError(
            f"stale_after={format_duration(threshold)} is too short: running creates refresh their markers only "
            f"every {format_duration(timedelta(seconds=HEARTBEAT_SECONDS))}, so a live create would be taken for "
            f"abandoned and its objects pruned; use at least {format_duration(minimum)}",
            subject=str(stale_after),
        )
    return threshold


def _holder(kind: str, name: str, path: str, data: bytes, fallback_time: str, now: datetime,
            stale_after: timedelta) -> LockHolder:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    pid = document.get("pid")
    started = str(document.get("started_at") or fallback_time)
    holder = LockHolder(
        kind=str(document.get("operation") or kind), name=str(document.get("token") or name), path=path,
        host=str(document.get("host") or ""), pid=pid if isinstance(pid, int) else None, started_at=started,
        refreshed_at=str(document.get("refreshed_at") or started), database=str(document.get("database") or ""),
    )
    reason = abandoned(holder, now, stale_after)
    return attrs.evolve(holder, stale=bool(reason), reason=reason)


def read_lock(store: BackupStore, *, now: datetime | None = None,
              stale_after: timedelta = STALE_AFTER) -> LockHolder | None:
    """The prune/optimize lock's holder (``stale`` decided), or None when the store is not locked."""
    try:
        data = store.get_document(LOCK_DOCUMENT)
    except FileNotFoundError:
        return None
    return _holder("prune", "", LOCK_DOCUMENT, data, _modified_iso(store, store.files.path(LOCK_DOCUMENT)),
                   now or utc_now(), stale_after)


def pending_creates(store: BackupStore, *, now: datetime | None = None,
                    stale_after: timedelta = STALE_AFTER) -> list[LockHolder]:
    """Every pending marker, each decided live (a create running now) or stale (a crash left it).

    The one place that reads ``pending/``: prune and optimize refuse while a live one exists,
    health reports both kinds, the CLI refuses a second create of a database beside a live one.
    """
    moment = now or utc_now()
    holders = []
    for name in sorted(store.files.listdir("pending")):
        if not name.endswith(".json"):
            continue
        backup_id = name.removesuffix(".json")
        relative = f"pending/{name}"
        try:
            data = store.get_document(relative)
        except FileNotFoundError:
            continue  # finished meanwhile
        minted = manifest.created_at_of(backup_id)
        fallback = minted.isoformat() if minted else _modified_iso(store, store.files.path(relative))
        holders.append(_holder("create", backup_id, relative, data, fallback, moment, stale_after))
    return holders


# --- heartbeats ----------------------------------------------------------------------------------


class Heartbeat:
    """Calls ``refresh`` every :data:`HEARTBEAT_SECONDS` in a daemon thread until stopped.

    The one mechanism that keeps a pending marker and the store lock fresh. A failing refresh is
    logged and retried at the next beat; :meth:`stop` returns only once no refresh is running,
    so the caller can then remove what was refreshed without it coming back.
    """

    def __init__(self, refresh: Callable[[], None], what: str, interval: float | None = None) -> None:
        self.refresh = refresh
        self.what = what
        self.interval = HEARTBEAT_SECONDS if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {what}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception as exc:  # the next beat tries again; the threshold allows several misses
                logger.warning("could not refresh %s: %s", self.what, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


@contextlib.contextmanager
def heartbeat(refresh: Callable[[], None], what: str) -> Iterator[Heartbeat]:
    """Keep something fresh while the block runs (see :class:`Heartbeat`)."""
    beat = Heartbeat(refresh, what).start()
    try:
        yield beat
    finally:
        beat.stop()


def modified_at(store: BackupStore, path: str) -> datetime | None:
    """When the storage last modified ``path``, by its own clock; None when it cannot tell."""
    try:
        return _aware(store.fs.modified(path))
    except Exception:  # any backend failure means "cannot tell", which keeps the object
        return None


def _modified_iso(store: BackupStore, path: str) -> str:
    moment = modified_at(store, path)
    return moment.isoformat() if moment else ""


# --- the store lock ----------------------------------------------------------------------------


@attrs.define
class StoreLock:
    store: BackupStore
    operation: str
    token: str
    started_at: str
    #: The storage's clock when the lock was taken (its modified time), for grace periods.
    server_time: datetime
    stale_markers: list[LockHolder]

    def document(self, refreshed: datetime) -> bytes:
        return json.dumps({"operation": self.operation, "token": self.token, "host": socket.gethostname(),
                           "pid": os.getpid(), "started_at": self.started_at,
                           "refreshed_at": refreshed.isoformat()}).encode()

    def refresh(self) -> None:
        """Rewrite the lock with a fresh ``refreshed_at`` (the heartbeat), unless another process took it."""
        holder = read_lock(self.store)
        if holder is not None and holder.name == self.token:
            self.store.put_document(LOCK_DOCUMENT, self.document(utc_now()))

    def release(self) -> None:
        holder = read_lock(self.store)
        if holder is not None and holder.name == self.token:
            self.store.remove_document(LOCK_DOCUMENT)


def _create_exclusive(store: BackupStore, path: str, data: bytes) -> None:
    """Create ``path`` holding ``data``; FileExistsError if it exists. Atomic where the storage allows."""
    if store.files.is_local:
        with store.files.io("lock the backup store", path):
            store.files.makedirs(path.rsplit("/", 1)[0])
            store.files.makedirs(store.files.path("tmp"))
            staging = store.files.path("tmp", f"lock-{uuid.uuid4().hex}")
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, store.file_mode)
            try:
                with os.fdopen(fd, "wb") as sink:
                    sink.write(data)
                try:
                    os.link(staging, path)  # atomic, complete at once, and fails if path exists
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                        raise
                    _create_in_place(path, data, store.file_mode)  # a filesystem without hard links
            finally:
                os.unlink(staging)
        return
    store.files.put_bytes(path, data, exclusive=True)


def _create_in_place(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)


@contextlib.contextmanager
def store_lock(
    store: BackupStore, operation: str, *, stale_after: timedelta = STALE_AFTER, wait: float = 0.0
) -> Iterator[StoreLock]:
    """Hold the store lock for ``operation`` ("prune" or "optimize") while no create runs.

    Waits up to ``wait`` seconds for another holder or for running creates; then raises
    :class:`PruneRunningError` or :class:`CreateRunningError`. An abandoned lock is taken over.
    """
    lock = _acquire(store, operation, stale_after, time.monotonic() + wait)
    try:
        with heartbeat(lock.refresh, f"the store lock ({LOCK_DOCUMENT})"):
            yield lock
    finally:
        with contextlib.suppress(SchemaSyncBackupError, FileNotFoundError):
            lock.release()


def _acquire(store: BackupStore, operation: str, stale_after: timedelta, deadline: float) -> StoreLock:
    path = store.files.path(LOCK_DOCUMENT)
    while True:
        started = utc_now()
        lock = StoreLock(store, operation, uuid.uuid4().hex, started.isoformat(), started, [])
        try:
            _create_exclusive(store, path, lock.document(started))
        except FileExistsError:
            holder = read_lock(store, stale_after=stale_after)
            if holder is not None and holder.stale:
                logger.warning("taking over the abandoned store lock of %s", holder.describe())
                lock_release_if(store, holder.name)
                continue
            if time.monotonic() >= deadline:
                who = holder.describe() if holder is not None else "another process"
                raise PruneRunningError(
                    f"cannot {operation} {store.url}: the store is locked by {who} ({LOCK_DOCUMENT}); retry when "
                    f"it finishes. If that process is gone, the lock counts as abandoned after "
                    f"{format_duration(stale_after)} and is taken over then",
                    subject=LOCK_DOCUMENT, holders=(holder,) if holder is not None else (),
                ) from None
            time.sleep(POLL_SECONDS)
            continue
        holder = read_lock(store)
        if holder is None or holder.name != lock.token:  # a storage that ignored "create if absent"
            if time.monotonic() >= deadline:
                raise PruneRunningError(f"cannot {operation} {store.url}: another process took the store lock",
                                        subject=LOCK_DOCUMENT, holders=(holder,) if holder is not None else ())
            time.sleep(POLL_SECONDS)
            continue
        lock.server_time = modified_at(store, path) or utc_now()
        store.fs.invalidate_cache()  # other processes wrote meanwhile: never decide from a cached listing
        now = utc_now()
        markers = pending_creates(store, now=now, stale_after=stale_after)
        running = [marker for marker in markers if marker.live]
        if not running:
            lock.stale_markers = [marker for marker in markers if marker.stale]
            return lock
        lock.release()
        if time.monotonic() >= deadline:
            raise CreateRunningError(
                f"cannot {operation} {store.url} while backups are being created: "
                + "; ".join(marker.describe() for marker in running)
                + ". Retry when they finish (or pass wait= seconds). A create that crashed stops counting once its "
                f"process is gone (same host) or its marker has not been refreshed for {format_duration(stale_after)}",
                subject=store.url, holders=running,
            )
        time.sleep(POLL_SECONDS)


def lock_release_if(store: BackupStore, token: str) -> None:
    """Remove the store lock if ``token`` still holds it (taking over an abandoned lock)."""
    holder = read_lock(store)
    if holder is not None and holder.name == token:
        store.remove_document(LOCK_DOCUMENT)


def wait_for_maintenance(store: BackupStore, backup_id: str, *, timeout: float | None = None) -> None:
    """Called by ``create`` after it wrote its pending marker: wait while a prune/optimize runs.

    Raises :class:`PruneRunningError` if the lock is still held after ``timeout`` seconds
    (default :data:`CREATE_WAIT_SECONDS`). An abandoned lock does not block.
    """
    deadline = time.monotonic() + (CREATE_WAIT_SECONDS if timeout is None else timeout)
    while True:
        holder = read_lock(store)
        if holder is None or holder.stale:
            return
        if time.monotonic() >= deadline:
            raise PruneRunningError(
                f"cannot create backup {backup_id}: {holder.describe()} holds the store lock ({LOCK_DOCUMENT}) "
                f"of {store.url}; retry when it finishes. If that process is gone, the lock counts as abandoned "
                f"after {format_duration(STALE_AFTER)}",
                subject=backup_id, holders=(holder,),
            )
        time.sleep(POLL_SECONDS)
