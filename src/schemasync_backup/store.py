"""BackupStore: backups on any fsspec storage, content-addressed, with the manifest written last.

Layout under the store's URL (docs/storage-format.md is normative)::

    objects/<aa>/<sha256 of plaintext>.<key id or "plain">   immutable, written once
    manifests/<backup id>.json                               written last; a backup exists iff this does
    pending/<backup id>.json                                 while a create runs; left behind by a crash
    status/<backup id>.json                                  what validation learned (CORRUPTED, ...)
    tmp/<random>                                             staging where rename is atomic (disk, memory)
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import getpass
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import attrs
import fsspec
from fsspec.implementations.local import LocalFileSystem

from . import framing, manifest
from .connection import Source
from .crypto import EncryptionKey, Keyring
from .errors import (
    ArchiveError,
    BackupFormatError,
    BackupNotFoundError,
    EncryptionKeyError,
    IntegrityError,
    SchemaSyncBackupError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from .framing import Encoding, ObjectRecord
from .manifest import BackupInfo, Manifest, MigrationContext, Status
from .plugins import Registry, default_registry
from .snapshot import Snapshot
from .snapshot_stream import ContentEntry, decode_contents, decode_snapshot, encode_contents, encode_snapshot

if TYPE_CHECKING:
    from datetime import timedelta

    from .maintenance import HealthReport, OptimizeReport, PruneResult, UsageReport
    from .retention import RetentionPolicy, RetentionReport

T = TypeVar("T")
#: Protocols whose PUT becomes visible only once complete, so objects can be written in place.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"}
_ARCHIVE_OBJECT = re.compile(r"^objects/[0-9a-f]{2}/[0-9a-f]{64}\.(?:plain|k-[0-9a-f]{16})$")
_READ_CHUNK = 1024 * 1024
_UPLOAD_BLOCK = 8 * 1024 * 1024


def _tool_version() -> str:
    from . import __version__

    return __version__


def _now() -> datetime:
    return datetime.now(UTC)


def _keyring(keys: EncryptionKey | Sequence[EncryptionKey] | Keyring | None) -> Keyring:
    if keys is None:
        return Keyring()
    if isinstance(keys, Keyring):
        return keys
    if isinstance(keys, EncryptionKey):
        return Keyring((keys,))
    return Keyring(tuple(keys))


@attrs.frozen
class BackupStore:
    """Backups of database schemas on one fsspec location. Build one with :meth:`open`."""

    url: str
    fs: fsspec.AbstractFileSystem = attrs.field(repr=False)
    root: str
    encoding: Encoding = attrs.field(repr=False)
    keyring: Keyring = attrs.field(repr=False)
    registry: Registry = attrs.field(repr=False)
    file_mode: int = 0o600
    dir_mode: int = 0o700

    @classmethod
    def open(
        cls,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        compression: str = "lz4",
        compression_level: int | None = None,
        compression_threshold: int = 256,
        encryption_keys: EncryptionKey | Sequence[EncryptionKey] | Keyring | None = None,
        encrypt: bool | None = None,
        frame_size: int = framing.DEFAULT_FRAME_SIZE,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        registry: Registry | None = None,
    ) -> BackupStore:
        """Open (and on first use, create) the store at ``url``: a path or any fsspec URL.

        ``encryption_keys``: one key or several (the first writes, all read). New objects are
        encrypted when a key is given, unless ``encrypt=False``.
        """
        registry = registry or default_registry()
        registry.codec(compression)  # fail now, not in the middle of a backup
        keyring = _keyring(encryption_keys)
        if encrypt and keyring.writer is None:
            raise EncryptionKeyError(
                "encryption is enabled but no key is configured: pass encryption_keys=, e.g. "
                "EncryptionKey.from_env('BACKUP_ENCRYPTION_KEY')",
                subject=url,
            )
        use_key = keyring.writer if encrypt is not False else None
        try:
            fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise StorageError(
                f"cannot open backup storage {url}: {exc}; for s3://, az:// or gs:// install "
                "schemasync_backup[s3], [azure] or [gcs]",
                subject=url,
                url=url,
            ) from exc
        store = cls(
            url=url,
            fs=fs,
            root=root.rstrip("/"),
            encoding=Encoding(
                compression, compression_level, compression_threshold, key=use_key, frame_size=frame_size
            ),
            keyring=keyring,
            registry=registry,
            file_mode=file_mode,
            dir_mode=dir_mode,
        )
        store._prepare()
        return store

    # --- paths and raw I/O -------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts]) if self.root else "/".join(parts)

    def _manifest_path(self, backup_id: str) -> str:
        return self._path("manifests", f"{backup_id}.json")

    def _object_path(self, record: ObjectRecord) -> str:
        return self._path("objects", record.path)

    @property
    def _is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def _atomic_put(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return bool(_ATOMIC_PUT_PROTOCOLS & set(protocols))

    @contextlib.contextmanager
    def _io(self, action: str, path: str) -> Iterator[None]:
        """Translate whatever the provider raised into the package's errors, once, here."""
        try:
            yield
        except (SchemaSyncBackupError, FileNotFoundError, FileExistsError):
            raise
        except PermissionError as exc:
            raise StoragePermissionError(
                f"failed to {action}: permission denied: {path}", subject=path, url=self.url, path=path
            ) from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StorageFullError(
                    "failed to write backup file: no space left on device", subject=path, url=self.url, path=path
                ) from exc
            raise StorageError(
                f"failed to {action}: {exc.strerror or exc} ({self.url}: {path})", subject=path, url=self.url,
                path=path,
            ) from exc
        except Exception as exc:
            raise StorageError(
                f"failed to {action}: storage error {type(exc).__name__}: {exc} ({self.url}: {path})",
                subject=path, url=self.url, path=path,
            ) from exc

    def _makedirs(self, path: str) -> None:
        if self._is_local:
            os.makedirs(path, mode=self.dir_mode, exist_ok=True)
            os.chmod(path, self.dir_mode)
        elif not self._atomic_put:
            self.fs.makedirs(path, exist_ok=True)

    def _prepare(self) -> None:
        with self._io("create backup", self.root or self.url):
            if self._is_local:
                for folder in ("", "objects", "manifests", "pending", "status", "tmp"):
                    self._makedirs(self._path(folder) if folder else self.root)

    def _put(self, path: str, write: Callable[[BinaryIO], T], *, exclusive: bool = False) -> T:
        """Write ``path`` so that nobody ever sees it half-written."""
        with self._io("create backup", path):
            if self._atomic_put:
                # A bounded upload buffer: s3fs otherwise holds 50 MiB per part, and copies it.
                with self.fs.open(path, "xb" if exclusive else "wb", block_size=_UPLOAD_BLOCK) as sink:
                    return write(sink)
            parent = path.rsplit("/", 1)[0]
            self._makedirs(parent)
            staging = self._path("tmp", uuid.uuid4().hex)
            self._makedirs(self._path("tmp"))
            try:
                with self.fs.open(staging, "wb") as sink:
                    result = write(sink)
                if self._is_local:
                    os.chmod(staging, self.file_mode)
                if exclusive and self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.mv(staging, path)
                return result
            finally:
                if self.fs.exists(staging):
                    self.fs.rm(staging)

    def _put_bytes(self, path: str, data: bytes, *, exclusive: bool = False) -> None:
        self._put(path, lambda sink: sink.write(data), exclusive=exclusive)

    def _open_read(self, path: str) -> BinaryIO:
        # Sequential reads through a bounded read-ahead buffer, whatever the provider's default.
        return self.fs.open(path, "rb", block_size=_UPLOAD_BLOCK, cache_type="readahead")  # type: ignore[no-any-return]

    def _read(self, path: str, action: str = "read backup") -> bytes:
        with self._io(action, path):
            return bytes(self.fs.cat_file(path))

    def _exists(self, path: str) -> bool:
        with self._io("read backup", path):
            return bool(self.fs.exists(path))

    def _remove(self, paths: Sequence[str]) -> None:
        if paths:
            with self._io("delete backup", paths[0]):
                self.fs.rm(list(paths))

    def _listdir(self, folder: str) -> list[str]:
        path = self._path(folder)
        with self._io("list backups", path):
            try:
                return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(path, detail=False)]
            except FileNotFoundError:
                return []

    # --- small documents beside the backups (journals, locks, reports) ------------------------

    def put_document(self, relative: str, data: bytes) -> None:
        """Write ``relative`` (e.g. ``journals/<id>/<run>.json``) atomically, replacing it."""
        self._put_bytes(self._path(relative), data)

    def get_document(self, relative: str) -> bytes:
        """Read a document written by :meth:`put_document`; FileNotFoundError when absent."""
        return self._read(self._path(relative))

    def list_documents(self, folder: str) -> builtins.list[str]:
        """Names in a folder of documents, sorted; empty when the folder does not exist."""
        return sorted(self._listdir(folder))

    def remove_document(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._remove([self._path(relative)])

    # --- writing -------------------------------------------------------------------------------

    def create(
        self,
        source: Source,
        database: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        migration_context: MigrationContext | Mapping[str, str] | None = None,
        pinned: bool = False,
    ) -> BackupInfo:
        """Capture ``database`` from ``source`` and store it as a new backup."""
        started = _now()
        backup_id = manifest.new_backup_id(started)
        with self._writing(backup_id, database):
            snapshot = Snapshot.capture(source, database)
            return self._save(snapshot, backup_id, started, description, tags, migration_context, pinned)

    def save(
        self,
        snapshot: Snapshot,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        migration_context: MigrationContext | Mapping[str, str] | None = None,
        pinned: bool = False,
    ) -> BackupInfo:
        """Store an already captured snapshot as a new backup."""
        started = _now()
        backup_id = manifest.new_backup_id(started)
        with self._writing(backup_id, snapshot.database):
            return self._save(snapshot, backup_id, started, description, tags, migration_context, pinned)

    @contextlib.contextmanager
    def _writing(self, backup_id: str, database: str) -> Iterator[None]:
        """Hold a pending marker while a backup is written: prune never runs beside it (it could
        delete an object this backup reuses), and a crash leaves the marker for recovery_scan.

        A heartbeat keeps the marker's ``refreshed_at`` fresh, so a long create is never taken for
        a crashed one. ``backup.failed`` is told only when no manifest was committed: an error
        after the commit (an interrupt) never reports a backup that exists as failed.
        """
        from .maintenance import heartbeat, wait_for_maintenance

        marker = self._path("pending", f"{backup_id}.json")
        started = _now()
        self._put_bytes(marker, _pending_marker(backup_id, database, started))
        try:
            with heartbeat(lambda: self._put_bytes(marker, _pending_marker(backup_id, database, started, _now())),
                           f"the pending marker of {backup_id}"):
                wait_for_maintenance(self, backup_id)
                yield
        except BaseException as exc:
            committed = False
            with contextlib.suppress(SchemaSyncBackupError, FileNotFoundError):
                committed = self.manifest(backup_id).info.id == backup_id
            if not committed:
                self.registry.notify("backup.failed",
                                     {"backup_id": backup_id, "database": database, "error": str(exc)})
            raise
        finally:
            with contextlib.suppress(SchemaSyncBackupError, FileNotFoundError):
                self._remove([marker])

    def _save(
        self,
        snapshot: Snapshot,
        backup_id: str,
        started: datetime,
        description: str,
        tags: Mapping[str, str] | None,
        migration_context: MigrationContext | Mapping[str, str] | None,
        pinned: bool,
    ) -> BackupInfo:
        plaintext, contents = encode_snapshot(snapshot)
        record = self._store_object(plaintext)
        index = self._store_object(encode_contents(contents))
        context = (
            MigrationContext(**migration_context) if isinstance(migration_context, Mapping) else migration_context
        )
        draft = Manifest(
            info=BackupInfo(
                id=backup_id,
                database=snapshot.database,
                created_at=started.isoformat(timespec="microseconds"),
                created_by=_who(),
                description=description,
                tags=dict(tags or {}),
                status=Status.COMPLETED,
                raw_size=record.size + index.size,
                stored_size=record.stored_size + index.stored_size,
                compression=record.codec,
                encryption=record.cipher,
                key_id=record.key_id,
                schema_hash=snapshot.schema_hash,
                checksum="",
                tool_version=_tool_version(),
                captured_at=snapshot.captured_at,
                migration_context=context,
                pinned=pinned,
            ),
            objects=(record, index),
        )
        info = self._commit(manifest.seal(draft))
        self.registry.notify("backup.created", info.to_dict())
        return info

    def _commit(self, sealed: Manifest) -> BackupInfo:
        path = self._manifest_path(sealed.info.id)
        self._put_bytes(path, manifest.dump(sealed), exclusive=True)
        # Read back: a backup counts only once the storage gives back what we wrote.
        committed = manifest.load(self._read(path), path)
        if committed != sealed:
            raise IntegrityError(f"{path}: the manifest read back differs from the one written", subject=path)
        return committed.info

    def _store_object(self, plaintext: bytes) -> ObjectRecord:
        return self._store_chunks([plaintext], hashlib.sha256(plaintext).hexdigest(), len(plaintext))

    def put_object(self, chunks: Iterable[bytes]) -> ObjectRecord:
        """Store a large object from a stream of chunks in bounded memory; returns its record.

        The address (sha256 of the plaintext) must be known before the first frame is sealed,
        so the plaintext is spooled once to a temporary file (in memory up to 8 MiB) while it
        is hashed, then compressed, sealed and uploaded frame by frame.
        """
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as spool:
            for chunk in chunks:
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            return self._store_chunks(iter(lambda: spool.read(_READ_CHUNK), b""), digest.hexdigest(), size)

    def _store_chunks(self, chunks: Iterable[bytes], address: str, size: int) -> ObjectRecord:
        key = self.encoding.key
        path = self._path("objects", framing.object_path(address, key.key_id if key else None))
        reused = self._intact_record(path, address, size)
        if reused is not None:
            return reused
        try:
            return self._put(path, lambda sink: framing.encode(
                chunks, address, size, self.encoding, self.registry, sink
            ))
        except StorageError:
            # Two creates of one schema race for one object (Azure then rejects one block list):
            # the object the winner wrote is as good as ours.
            reused = self._intact_record(path, address, size)
            if reused is None:
                raise
            return reused

    def _intact_record(self, path: str, address: str, size: int) -> ObjectRecord | None:
        """The record of an object already stored, if it proves intact; None if absent or damaged.

        A damaged object is never reused: the caller writes it anew, which also heals the
        backups that share it (recalculate_checksum then re-records them).
        """
        try:
            with self._io("read backup", path), self._open_read(path) as stream:
                return verified_record(stream, address, size, self.keyring, self.registry, path)
        except (FileNotFoundError, IntegrityError, BackupFormatError, EncryptionKeyError):
            return None

    # --- reading -------------------------------------------------------------------------------

    def manifest(self, backup_id: str, *, verify: bool = True) -> Manifest:
        """The backup's manifest; ``verify=False`` reads one whose checksum no longer matches."""
        path = self._manifest_path(backup_id)
        try:
            data = self._read(path)
        except FileNotFoundError:
            raise BackupNotFoundError(
                f"backup {backup_id} not found in {self.url}; list backups with store.list()", subject=backup_id
            ) from None
        return manifest.load(data, path, status=self.status_of(backup_id), verify=verify)

    def status_of(self, backup_id: str) -> str:
        """COMPLETED unless validation recorded otherwise (VALIDATING, CORRUPTED, FAILED)."""
        try:
            return str(json.loads(self._read(self._status_path(backup_id)))["status"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return Status.COMPLETED

    def set_status(self, backup_id: str, status: str, reason: str = "") -> None:
        """Record what validation learned about a backup (the manifest itself never changes)."""
        document = {"status": status, "reason": reason, "at": _now().isoformat(timespec="seconds")}
        self._put_bytes(self._status_path(backup_id), json.dumps(document).encode())

    def _status_path(self, backup_id: str) -> str:
        return self._path("status", f"{backup_id}.json")

    def contents(self, found: Manifest) -> tuple[ContentEntry, ...]:
        """Where each schema object lies in the snapshot (needs the key when encrypted)."""
        index = found.index_object
        return decode_contents(self.read_object(index)) if index is not None else ()

    def get(self, backup_id: str) -> BackupInfo:
        return self.manifest(backup_id).info

    def open_object(self, record: ObjectRecord) -> Iterator[bytes]:
        """An object's plaintext as a stream of frames, each authenticated; the address is checked
        at the end, so a consumer must read to the end before trusting what it got."""
        path = self._object_path(record)
        with self._io("read backup", path), self._open_read(path) as stream:
            yield from framing.decode(stream, record.address, self.keyring, self.registry, path)

    def read_object(self, record: ObjectRecord) -> bytes:
        """An object's plaintext, every frame authenticated and the address checked."""
        path = self._object_path(record)
        with self._io("read backup", path), self._open_read(path) as stream:
            return b"".join(framing.decode(stream, record.address, self.keyring, self.registry, path))

    def snapshot(self, backup_id: str) -> Snapshot:
        """The snapshot a backup holds, equal to the one captured."""
        found = self.manifest(backup_id)
        try:
            data = self.read_object(found.snapshot_object)
        except FileNotFoundError:
            raise IntegrityError(
                f"backup {backup_id} is damaged: object {found.snapshot_object.path} is missing", subject=backup_id
            ) from None
        return decode_snapshot(data, found.info.captured_at)

    def list(
        self,
        *,
        database: str | None = None,
        status: str | None = None,
        tags: Mapping[str, str] | Iterable[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[BackupInfo]:
        """Backups, newest first. Backups still being written list as CREATING, never COMPLETED."""
        after, before = _as_time(created_after), _as_time(created_before)

        def in_window(backup_id: str) -> bool:
            minted = manifest.created_at_of(backup_id)
            return minted is not None and (after is None or minted >= after.replace(microsecond=0)) and (
                before is None or minted <= before
            )

        ids = [name.removesuffix(".json") for name in self._listdir("manifests") if name.endswith(".json")]
        wanted = [self._manifest_path(backup_id) for backup_id in ids if in_window(backup_id)]
        with self._io("list backups", self._path("manifests")):
            raw = self.fs.cat(wanted) if wanted else {}
        statuses = {name.removesuffix(".json") for name in self._listdir("status")}
        found: list[BackupInfo] = []
        for path in wanted:
            data = raw.get(path) if isinstance(raw, dict) else raw
            backup_id = path.rsplit("/", 1)[-1].removesuffix(".json")
            recorded = self.status_of(backup_id) if backup_id in statuses else Status.COMPLETED
            try:
                found.append(manifest.load(data or b"", path, status=recorded).info)
            except BackupFormatError:
                found.append(_damaged_info(backup_id))
        # A marker whose manifest exists was left by a crash after the commit: that backup lists once.
        found += [_pending_info(backup_id) for name in self._listdir("pending") if name.endswith(".json")
                  for backup_id in [name.removesuffix(".json")] if in_window(backup_id) and backup_id not in ids]
        selected = [info for info in found if _matches(info, database, status, tags, after, before)]
        selected.sort(key=lambda info: (info.created_at, info.id), reverse=True)
        return selected[:limit] if limit is not None else selected

    # --- removing, moving ----------------------------------------------------------------------

    def _referenced(self) -> set[str]:
        """Object paths some manifest still names; a damaged manifest still protects its objects."""
        paths: set[str] = set()
        for name in self._listdir("manifests"):
            if not name.endswith(".json"):
                continue
            try:
                found = self.manifest(name.removesuffix(".json"), verify=False)
            except BackupFormatError:
                continue
            paths.update(self._object_path(record) for record in found.objects)
        return paths

    def object_paths(self) -> builtins.list[str]:
        """Every object file in the store, whether or not a manifest names it."""
        return [self._path("objects", sub, name) for sub in self._listdir("objects")
                for name in self._listdir(f"objects/{sub}")]

    def delete(self, backup_id: str) -> None:
        """Remove a backup; objects other backups still use stay.

        The manifest goes first; its objects then go through a prune under the store lock, so
        a create that is reusing one of them at this moment never loses it. While creates are
        running the objects stay for the next prune.
        """
        self.manifest(backup_id, verify=False)
        self._remove([self._manifest_path(backup_id)])
        with contextlib.suppress(FileNotFoundError):
            self._remove([self._status_path(backup_id)])
        self._reclaim()

    def _reclaim(self) -> None:
        from datetime import timedelta

        from .maintenance import StoreBusyError, prune

        with contextlib.suppress(StoreBusyError):
            prune(self, grace=timedelta(0))

    def copy_to(self, other: BackupStore, backup_id: str) -> BackupInfo:
        """Copy a backup into another store, checking every byte against the manifest on the way."""
        source = self.manifest(backup_id)
        for record in source.objects:
            target = other._object_path(record)
            if other._exists(target):
                continue
            data = self._read(self._object_path(record))
            _check_stored(record, data, self._object_path(record))
            other._put_bytes(target, data)
        return other._commit(source)

    def move_to(self, other: BackupStore, backup_id: str) -> BackupInfo:
        """Copy, verify the copy as ``other`` stores it, and only then delete here."""
        copied = self.copy_to(other, backup_id)
        for record in other.manifest(backup_id).objects:
            path = other._object_path(record)
            _check_stored(record, other._read(path), path)
        self.delete(backup_id)
        return copied

    # --- archives ------------------------------------------------------------------------------

    def export(self, backup_id: str, path: str | os.PathLike[str]) -> str:
        """Write one backup, manifest and objects, into a ``.tar.gz`` at a local path."""
        found = self.manifest(backup_id)
        manifest_bytes = self._read(self._manifest_path(backup_id))
        with tarfile.open(path, "w:gz") as archive:
            _add_member(archive, "manifest.json", manifest_bytes)
            for record in found.objects:
                data = self._read(self._object_path(record))
                _check_stored(record, data, self._object_path(record))
                _add_member(archive, f"objects/{record.path}", data)
        return os.fspath(path)

    def import_archive(self, path: str | os.PathLike[str], *, max_member_size: int = 16 * 1024**3) -> BackupInfo:
        """Import an archive written by :meth:`export`, refusing anything unsafe or damaged."""
        where = os.fspath(path)
        try:
            archive = tarfile.open(where, "r:gz")  # noqa: SIM115 - opened here to translate errors, closed below
        except (OSError, tarfile.TarError) as exc:
            raise ArchiveError(f"cannot read archive {where}: {exc}", subject=where) from exc
        with archive:
            members: dict[str, tarfile.TarInfo] = {}
            for member in archive.getmembers():
                _check_member(member, where, max_member_size)
                members[member.name] = member
            if "manifest.json" not in members:
                raise ArchiveError(f"archive {where} has no manifest.json", subject=where)
            found = manifest.load(_extract(archive, members["manifest.json"]), f"{where}:manifest.json")
            if self._exists(self._manifest_path(found.info.id)):
                raise ArchiveError(f"backup {found.info.id} already exists in {self.url}", subject=found.info.id)
            for record in found.objects:
                name = f"objects/{record.path}"
                if name not in members:
                    raise ArchiveError(f"archive {where} lacks object {name}", subject=name)
                data = _extract(archive, members[name])
                _check_stored(record, data, f"{where}:{name}")
                target = self._object_path(record)
                if not self._exists(target):
                    self._put_bytes(target, data)
        return self._commit(found)

    # --- keys ------------------------------------------------------------------------------------

    def with_keys(self, keys: EncryptionKey | Sequence[EncryptionKey] | Keyring) -> BackupStore:
        """The same store with another keyring; its first key writes."""
        keyring = _keyring(keys)
        return attrs.evolve(self, keyring=keyring, encoding=attrs.evolve(self.encoding, key=keyring.writer))

    def rotate_key(self, new_key: EncryptionKey | None = None) -> builtins.list[str]:
        """Re-encrypt every backup not yet under the writing key; returns the ids rewritten.

        New objects are written beside the old ones, then each manifest is replaced, then old
        objects nobody names any more are removed, so a crash at any point loses nothing.
        """
        store = self.with_keys((new_key, *self.keyring.keys)) if new_key is not None else self
        writer = store.encoding.key
        if writer is None:
            raise EncryptionKeyError("no key to rotate to: pass new_key= or configure one", subject=self.url)
        rotated: builtins.list[str] = []
        for name in store._listdir("manifests"):
            backup_id = name.removesuffix(".json")
            old = store.manifest(backup_id)
            if all(record.key_id == writer.key_id for record in old.objects):
                continue
            records = tuple(store._store_object(store.read_object(record)) for record in old.objects)
            info = attrs.evolve(old.info, stored_size=sum(r.stored_size for r in records), key_id=writer.key_id,
                                encryption=records[0].cipher)
            sealed = manifest.seal(attrs.evolve(old, info=info, objects=records))
            path = store._manifest_path(backup_id)
            store._put_bytes(path, manifest.dump(sealed))
            rotated.append(backup_id)
        if rotated:
            store._reclaim()
        return rotated

    # --- retention and maintenance: retention.py and maintenance.py do the work ------------------

    def apply_retention(
        self,
        policy: RetentionPolicy,
        *,
        dry_run: bool = True,
        database: str | None = None,
        now: datetime | None = None,
        grace: timedelta | str | None = None,
    ) -> RetentionReport:
        """Keep or remove every backup by ``policy`` and say which rule decided; without
        ``dry_run``, remove the manifests of the backups no rule keeps, then prune."""
        from .retention import apply_retention

        return apply_retention(self, policy, dry_run=dry_run, database=database, now=now, grace=grace)

    def prune(
        self, *, grace: timedelta | str | None = None, dry_run: bool = False, wait: float = 0.0
    ) -> PruneResult:
        """Delete objects no manifest names and older than ``grace`` (default 1 h), under the store lock."""
        from .maintenance import prune

        return prune(self, grace=grace, dry_run=dry_run, wait=wait)

    def usage(self, detailed: bool = False) -> UsageReport:
        """Backup count, stored and raw bytes, dedup savings, per database (and per backup if ``detailed``)."""
        from .maintenance import usage

        return usage(self, detailed=detailed)

    def health(self) -> HealthReport:
        """Reachability, a write/read/delete probe, free space, locks, incomplete backups, spans."""
        from .maintenance import health

        return health(self)

    def optimize(self, dry_run: bool = True, *, wait: float = 0.0) -> OptimizeReport:
        """What re-compressing objects with the configured codec saves; without ``dry_run``, do it."""
        from .maintenance import optimize

        return optimize(self, dry_run=dry_run, wait=wait)


class _Counting:
    """A read-through wrapper that hashes and counts the bytes that pass."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = bytes(self._stream.read(size))
        self.digest.update(data)
        self.count += len(data)
        return data


def verified_record(
    stream: BinaryIO, address: str, size: int, keyring: Keyring | None, registry: Registry | None, where: str
) -> ObjectRecord:
    """The manifest record of a stored object, read in one bounded-memory pass.

    With a keyring and registry every frame is also decoded and the plaintext must hash to
    ``address`` (IntegrityError otherwise); without, only the framing is checked.
    """
    counting = _Counting(stream)
    # The address comes from the caller (the manifest), never from the object itself.
    header = attrs.evolve(framing.read_header(counting, where), address=address)
    plain = hashlib.sha256()
    frames = []
    for frame in framing.iter_raw_frames(counting, where):
        if keyring is not None and registry is not None:
            plain.update(framing.decode_frame(header, frame, keyring, registry, where))
        frames.append(framing.FrameRecord(hashlib.sha256(frame.stored).hexdigest(), len(frame.stored),
                                          max(0, min(header.frame_size, size - frame.index * header.frame_size))))
    if keyring is not None and plain.hexdigest() != address:
        raise IntegrityError(f"{where}: checksum mismatch (expected: {address}, got: {plain.hexdigest()})",
                             subject=where)
    return ObjectRecord(address=address, size=size, stored_size=counting.count,
                        stored_sha256=counting.digest.hexdigest(), codec=header.codec, cipher=header.cipher,
                        key_id=header.key_id, frames=tuple(frames))


def record_from_bytes(data: bytes, address: str, size: int, where: str) -> ObjectRecord:
    """The manifest record for an object's stored bytes (plaintext size known from elsewhere)."""
    return verified_record(io.BytesIO(data), address, size, None, None, where)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _pending_marker(backup_id: str, database: str, started: datetime, refreshed: datetime | None = None) -> bytes:
    """``pending/<id>.json``; ``refreshed_at`` is the heartbeat (docs/retention.md)."""
    return json.dumps({"id": backup_id, "database": database, "started_at": started.isoformat(),
                       "refreshed_at": (refreshed or started).isoformat(), "pid": os.getpid(),
                       "host": socket.gethostname()}).encode()


def _placeholder(backup_id: str, status: str) -> BackupInfo:
    minted = manifest.created_at_of(backup_id)
    return BackupInfo(
        id=backup_id, database="", created_at=minted.isoformat(timespec="microseconds") if minted else "",
        created_by="", description="", tags={}, status=status, raw_size=0, stored_size=0, compression="",
        encryption=None, key_id=None, schema_hash="", checksum="", tool_version="", captured_at="",
    )


def _damaged_info(backup_id: str) -> BackupInfo:
    return _placeholder(backup_id, Status.CORRUPTED)


def _pending_info(backup_id: str) -> BackupInfo:
    return _placeholder(backup_id, Status.CREATING)


def _as_time(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if value is not None and value.tzinfo else (
            value.replace(tzinfo=UTC) if value is not None else None)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"invalid time {value!r}: use ISO 8601, e.g. 2026-11-25 or 2026-11-25T14:00:00Z") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _matches(
    info: BackupInfo,
    database: str | None,
    status: str | None,
    tags: Mapping[str, str] | Iterable[str] | None,
    after: datetime | None,
    before: datetime | None,
) -> bool:
    if database is not None and info.database != database:
        return False
    if status is not None and info.status != status.upper():
        return False
    if tags:
        wanted: dict[str, str | None] = (
            dict(tags) if isinstance(tags, Mapping) else {tag.partition("=")[0]: tag.partition("=")[2] or None
                                                          for tag in tags})
        for key, value in wanted.items():
            if key not in info.tags or (value is not None and info.tags[key] != value):
                return False
    created = datetime.fromisoformat(info.created_at) if info.created_at else None
    if created is not None and after is not None and created < after:
        return False
    return not (created is not None and before is not None and created > before)


def _check_stored(record: ObjectRecord, data: bytes, where: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != record.stored_size or actual != record.stored_sha256:
        raise IntegrityError(
            f"{where}: backup validation failed: checksum mismatch (expected: {record.stored_sha256}, got: {actual})",
            subject=where,
        )


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mode = 0o600
    archive.addfile(member, io.BytesIO(data))


def _check_member(member: tarfile.TarInfo, where: str, max_size: int) -> None:
    name = member.name
    if not member.isfile():
        kind = "link" if member.issym() or member.islnk() else "non-file entry"
        raise ArchiveError(f"archive {where}: refusing {kind} {name!r}", subject=name)
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ArchiveError(f"archive {where}: refusing path traversal in member {name!r}", subject=name)
    if name != "manifest.json" and not _ARCHIVE_OBJECT.match(name):
        raise ArchiveError(f"archive {where}: unexpected member {name!r}", subject=name)
    if member.size > max_size:
        raise ArchiveError(
            f"archive {where}: member {name!r} is {member.size} bytes, over the limit of {max_size}", subject=name
        )


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = archive.extractfile(member)
    if stream is None:
        raise ArchiveError(f"archive member {member.name!r} cannot be read", subject=member.name)
    with stream:
        return stream.read()
