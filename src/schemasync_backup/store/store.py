"""BackupStore: backups on any fsspec storage, content-addressed, with the manifest written last.

The layout and all storage I/O belong to :mod:`schemasync_backup.store.fs` (``BackupStore.files``);
docs/storage-format.md is normative. This module writes and reads backups through it.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import getpass
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from schemasync_backup.capture import data_snapshot, table_data
from schemasync_backup.capture.connection import Source
from schemasync_backup.errors import (
    BackupFormatError,
    BackupNotFoundError,
    ConcurrentCreateError,
    EncryptionKeyError,
    IntegrityError,
    InvalidInputError,
    ManifestAuthenticationError,
    SchemaSyncBackupError,
    StorageError,
    StoreError,
    UnsealedBackupError,
)
from schemasync_backup.formats import framing, manifest
from schemasync_backup.formats.backup_id import is_backup_id
from schemasync_backup.formats.data_index import ChunkRecord, DataIndex, DataMode, DataSummary
from schemasync_backup.formats.framing import Encoding, FrameRecord, ObjectRecord
from schemasync_backup.formats.manifest import BackupInfo, Manifest, MigrationContext, Status, UnreadBackupInfo
from schemasync_backup.formats.snapshot_stream import (
    ContentEntry,
    decode_contents,
    decode_fingerprints,
    decode_snapshot,
    encode_contents,
    encode_snapshot,
)
from schemasync_backup.model.moments import moment
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.plugins.crypto import DEFAULT_CIPHER, EncryptionKey, Keyring
from schemasync_backup.plugins.manager import Registry, default_registry
from schemasync_backup.store import data_backup
from schemasync_backup.store.data_backup import DEFAULT_CHUNK_BYTES, DataRequest, Migration
from schemasync_backup.store.fs import StoreFiles, open_files
from schemasync_backup.store.locks import heartbeat, pending_creates, wait_for_maintenance

if TYPE_CHECKING:
    from datetime import timedelta

    import fsspec

    from schemasync_backup.store.maintenance import OptimizeReport, PruneResult, StorageHealth, UsageReport
    from schemasync_backup.store.retention import RetentionPolicy, RetentionReport

T = TypeVar("T")
#: A manifest is small; an archive member called manifest.json that is not, is refused before it is read.
_DOCUMENT_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: The smallest ``buffer_size``: below it a data chunk could not hold a row of any size worth reading.
SMALLEST_BUFFER = 4096


@functools.cache
def _tool_version() -> str:
    # From the installed metadata, the one source of the version (pyproject.toml), not the package root.
    return importlib.metadata.version("schemasync_backup")


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


@attrs.define
class _Told:
    """Frames, plaintext bytes and objects: of a write's progress, done or in all."""

    frames: int = 0
    size: int = 0
    objects: int = 0


#: How many decoded snapshots a store keeps in memory.
_DECODED_KEPT = 2


@attrs.define
class _Attempt:
    """One create's writing: whether the caller's ``check`` refused what was captured."""

    refused: bool = False

    def check(self, check: Callable[[Snapshot], None] | None, snapshot: Snapshot) -> None:
        if check is None:
            return
        try:
            check(snapshot)
        except BaseException:
            self.refused = True
            raise


@attrs.frozen
class BackupStore:
    """Backups of database schemas on one fsspec location. Build one with :meth:`open`."""

    #: Where the store lives and how its files are read and written (the layout's one owner).
    files: StoreFiles
    encoding: Encoding = attrs.field(repr=False)
    keyring: Keyring = attrs.field(repr=False)
    registry: Registry = attrs.field(repr=False)
    #: Read manifests no key of this store sealed (a store that has keys refuses them otherwise).
    accept_unsealed: bool = False
    #: The memory bound of the object and data pipelines (``backup.buffer_size``): data chunks of
    #: about this much, frames of at most this much plaintext, spools kept in memory up to it.
    buffer_size: int = DEFAULT_CHUNK_BYTES
    #: Snapshots decoded lately, by the address of their (immutable) stream: planning and then
    #: executing a rollback reads its backup's snapshot once.
    _decoded: dict[tuple[str, str, str], Snapshot] = attrs.field(factory=dict, init=False, repr=False, eq=False)

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
        cipher: str = DEFAULT_CIPHER,
        frame_size: int = framing.DEFAULT_FRAME_SIZE,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        registry: Registry | None = None,
        accept_unsealed: bool = False,
        buffer_size: int = DEFAULT_CHUNK_BYTES,
    ) -> BackupStore:
        """Open the store at ``url``: a path or any fsspec URL. Opening writes nothing: folders
        are made by the first write, so a read-only store can be listed, validated and exported.

        ``buffer_size`` bounds the memory of the object and data pipelines: a create reads table
        data in chunks of about this much, frames objects of at most ``min(frame_size, buffer_size)``
        bytes, and uploads and reads in blocks of this much (at least 5 MiB, S3's smallest part);
        a create or restore then holds a few buffers per connection, whatever the backup's size.

        ``encryption_keys``: one key or several (the first writes, all read). New objects are
        encrypted when a key is given, unless ``encrypt=False``. Manifests are sealed with the
        writing key; a store with keys reads only manifests one of its keys sealed, unless
        ``accept_unsealed`` (for backups written without a key, which nothing authenticates).
        ``compression`` and ``cipher`` name any codec and cipher a plugin registers.
        """
        registry = registry or default_registry()
        registry.codec(compression)  # fail now, not in the middle of a backup
        registry.cipher(cipher)
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < SMALLEST_BUFFER:
            raise InvalidInputError(f"buffer_size must be a whole number of bytes, at least {SMALLEST_BUFFER}, not "
                                    f"{buffer_size!r}", subject=buffer_size)
        keyring = _keyring(encryption_keys)
        if encrypt and keyring.writer is None:
            raise EncryptionKeyError(
                "encryption is enabled but no key is configured: pass encryption_keys=, e.g. "
                "EncryptionKey.from_env('BACKUP_ENCRYPTION_KEY')",
                subject=url,
            )
        use_key = keyring.writer if encrypt is not False else None
        return cls(
            files=open_files(url, storage_options, file_mode=file_mode, dir_mode=dir_mode, upload_block=buffer_size),
            encoding=Encoding(
                compression, compression_level, compression_threshold, cipher=cipher, key=use_key,
                frame_size=min(frame_size, buffer_size),
            ),
            keyring=keyring,
            registry=registry,
            accept_unsealed=accept_unsealed,
            buffer_size=buffer_size,
        )

    @property
    def url(self) -> str:
        return self.files.url

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self.files.fs

    @property
    def root(self) -> str:
        return self.files.root

    @property
    def file_mode(self) -> int:
        return self.files.file_mode

    @property
    def dir_mode(self) -> int:
        return self.files.dir_mode

    # --- small documents beside the backups (journals, locks, reports) ------------------------

    def put_document(self, relative: str, data: bytes) -> None:
        """Write ``relative`` (e.g. ``journals/<id>/<run>.json``) atomically, replacing it."""
        self.files.put_bytes(self.files.path(_document_path(relative)), data, action="write document")

    def get_document(self, relative: str) -> bytes:
        """Read a document written by :meth:`put_document`; FileNotFoundError when absent."""
        return self.files.read(self.files.path(_document_path(relative)), "read document")

    def list_documents(self, folder: str) -> builtins.list[str]:
        """Names in a folder of documents, sorted; empty when the folder does not exist."""
        return sorted(self.files.listdir(_document_path(folder)))

    def remove_document(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.files.remove([self.files.path(_document_path(relative))])

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
        allow_concurrent: bool = False,
        data: DataRequest = "none",
        migration: Migration | None = None,
        chunk_bytes: int | None = None,
        max_workers: int = 1,
        known: Snapshot | None = None,
        check: Callable[[Snapshot], None] | None = None,
        progress: ProgressCallback | None = None,
        parallel: bool = True,
    ) -> BackupInfo:
        """Capture ``database`` from ``source`` and store it as a new backup.

        ``known``: an earlier capture of the database; only what changed since is read
        (``Snapshot.capture(..., known=)``), with the same result. ``check`` is called with the
        captured snapshot before anything of the backup is stored: what it raises ends the create
        (a rollback refuses a stale plan so, in the very capture its pre-rollback backup holds).

        ``data`` says what table data the backup holds besides the schema: ``"none"``, ``"all"``,
        ``"at-risk"`` (exactly what ``migration`` would destroy: its SQL statements, or the target
        Snapshot) or a list of table names. The rows are read in one consistent snapshot, in
        chunks of about ``chunk_bytes`` (default: the store's ``buffer_size``), each stored as an
        object (see :mod:`.data_backup`), on
        ``max_workers`` connections at once (``backup.max_workers``); more than one needs the RELOAD
        privilege, for the moment's FLUSH TABLES WITH READ LOCK that starts them at one point in time.

        Refuses (ConcurrentCreateError) while another create of ``database`` is running, since
        two backups of one moment are one too many and usually a retried job; ``allow_concurrent``
        lets it run anyway. A crashed create's marker never counts (locks.pending_creates).

        ``progress`` is told how far the create is (:class:`~schemasync_backup.model.progress.ProgressUpdate`):
        stage ``"objects"`` (schema objects captured of those listed), ``"data"`` (tables read of
        those selected, with chunks stored, rows and bytes read), then ``"writing"`` (frames of the
        snapshot's objects written, with their plaintext bytes).

        ``parallel=False`` keeps the schema's capture to one connection (``backup.parallel_operations:
        false``); the data is read on ``max_workers`` connections.
        """
        mode = data_backup.data_mode(data, migration)
        if max_workers < 1:
            raise InvalidInputError(f"max_workers must be at least 1, not {max_workers}", subject=max_workers)
        running = [holder for holder in pending_creates(self) if holder.database == database and holder.live]
        if running and not allow_concurrent:
            raise ConcurrentCreateError(
                f"another backup of {database} is being created ({running[0].describe()}); wait for it, or pass "
                "allow_concurrent=True",
                subject=database, running=tuple(holder.name for holder in running))
        started = _now()
        backup_id = manifest.new_backup_id(started)
        with self._writing(backup_id, database) as attempt:
            if mode == DataMode.NONE:
                snapshot = Snapshot.capture(source, database, known=known, progress=progress, parallel=parallel)
                attempt.check(check, snapshot)
                return self._save(snapshot, backup_id, started, description, tags, migration_context, pinned,
                                  progress=progress)
            dsn = table_data.data_source(source, f"data={data!r}", database)
            data_snapshot.require_privileges(dsn, database, max_workers)
            with contextlib.ExitStack() as readers:
                connections = [readers.enter_context(contextlib.closing(table_data.open_data_connection(dsn,
                                                                                                       database)))
                               for _ in range(max_workers)]
                position = data_snapshot.start_consistent_snapshot(connections)
                try:
                    # The schema is read once the rows' snapshot is open: a table altered in between
                    # cannot be read in that snapshot (InnoDB error 1412), so rows never mismatch it.
                    snapshot = Snapshot.capture(source, database, known=known, progress=progress, parallel=parallel)
                    attempt.check(check, snapshot)
                    selections, warnings = data_backup.select(snapshot, mode, data, migration)
                    held, records = data_backup.write(connections, selections, mode, position, self.store_object,
                                                      chunk_bytes=chunk_bytes or self.buffer_size, warnings=warnings,
                                                      progress=progress)
                finally:
                    for connection in connections:
                        if connection.open:
                            connection.rollback()
            return self._save(snapshot, backup_id, started, description, tags, migration_context, pinned,
                              data=(held, records), progress=progress)

    def save(
        self,
        snapshot: Snapshot,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        migration_context: MigrationContext | Mapping[str, str] | None = None,
        pinned: bool = False,
        partial: bool = False,
        progress: ProgressCallback | None = None,
    ) -> BackupInfo:
        """Store an already captured snapshot as a new backup; ``partial`` marks a salvaged one.
        ``progress`` is told the frames written (stage ``"writing"``, as in :meth:`create`)."""
        started = _now()
        backup_id = manifest.new_backup_id(started)
        with self._writing(backup_id, snapshot.database):
            return self._save(snapshot, backup_id, started, description, tags, migration_context, pinned, partial,
                              progress=progress)

    @contextlib.contextmanager
    def _writing(self, backup_id: str, database: str) -> Iterator[_Attempt]:
        """Hold a pending marker while a backup is written: prune never runs beside it (it could
        delete an object this backup reuses), and a crash leaves the marker for recovery_scan.

        A heartbeat keeps the marker's ``refreshed_at`` fresh, so a long create is never taken for
        a crashed one. ``backup.failed`` is told only when no manifest was committed: an error
        after the commit (an interrupt) never reports a backup that exists as failed. Nor is it told
        when the caller's ``check`` refused the capture: that is a decision, not a failure.
        """
        marker = self.files.path("pending", f"{backup_id}.json")
        started = _now()
        attempt = _Attempt()
        self.files.put_bytes(marker, _pending_marker(backup_id, database, started))
        try:
            with heartbeat(lambda: self.files.put_bytes(marker, _pending_marker(backup_id, database, started, _now())),
                           f"the pending marker of {backup_id}"):
                wait_for_maintenance(self, backup_id)
                yield attempt
        except BaseException as exc:
            committed = False
            with contextlib.suppress(SchemaSyncBackupError, FileNotFoundError):
                committed = self.manifest(backup_id).info.id == backup_id
            if not committed and not attempt.refused:
                self.registry.notify("backup.failed",
                                     {"backup_id": backup_id, "database": database, "error": str(exc)})
            raise
        finally:
            with contextlib.suppress(SchemaSyncBackupError, FileNotFoundError):
                self.files.remove([marker])

    def _save(
        self,
        snapshot: Snapshot,
        backup_id: str,
        started: datetime,
        description: str,
        tags: Mapping[str, str] | None,
        migration_context: MigrationContext | Mapping[str, str] | None,
        pinned: bool,
        partial: bool = False,
        data: tuple[DataIndex, list[ObjectRecord]] | None = None,
        progress: ProgressCallback | None = None,
    ) -> BackupInfo:
        plaintext, contents = encode_snapshot(snapshot)
        record, index = self._store_told([plaintext, encode_contents(contents, snapshot.fingerprints)], progress)
        held, chunks = data if data is not None else (None, [])
        objects = (record, index, *(chunk for chunk in chunks if chunk.address not in (record.address, index.address)))
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
                raw_size=sum(found.size for found in objects),
                stored_size=sum(found.stored_size for found in objects),
                compression=record.codec,
                encryption=record.cipher,
                key_id=record.key_id,
                schema_hash=snapshot.schema_hash,
                checksum="",
                tool_version=_tool_version(),
                captured_at=snapshot.captured_at,
                migration_context=context,
                pinned=pinned,
                partial=partial,
                data=DataSummary.of(held) if held is not None else None,
            ),
            objects=objects,
            data=held,
        )
        info = self.commit_manifest(draft)
        self.registry.notify("backup.created", info.to_dict())
        return info

    def commit_manifest(self, draft: Manifest) -> BackupInfo:
        """Seal and write a new backup's manifest: the moment the backup comes to exist."""
        return self.write_manifest(draft, exclusive=True).info

    def write_manifest(self, draft: Manifest, *, exclusive: bool = False) -> Manifest:
        """Seal ``draft`` with the writing key, write it, and read it back.

        The one way a manifest is written or replaced (create, import, copy, key rotation,
        checksum repair, optimize): a manifest counts only once the storage gives back what we wrote.
        """
        sealed = manifest.seal(attrs.evolve(draft, info=attrs.evolve(draft.info, status=Status.COMPLETED)),
                               self.keyring.writer)
        path = self.files.manifest_path(sealed.info.id)
        self.files.put_bytes(path, manifest.dump(sealed), exclusive=exclusive,
                        action="create backup" if exclusive else "write backup manifest")
        committed = manifest.load(self.files.read(path), path, backup_id=sealed.info.id, keyring=self.keyring)
        if committed != sealed:
            raise IntegrityError(f"{path}: the manifest read back differs from the one written", subject=path)
        return committed

    def store_object(self, plaintext: bytes, address: str | None = None, *,
                     written: Callable[[FrameRecord], None] | None = None) -> ObjectRecord:
        """Store ``plaintext`` as an object; ``address`` is its sha256 (hex) when the caller knows it already.
        ``written`` is told of each frame written (none when an intact copy is reused)."""
        return self._store_chunks([plaintext], address or hashlib.sha256(plaintext).hexdigest(), len(plaintext),
                                  written)

    def _store_told(self, plaintexts: Sequence[bytes], progress: ProgressCallback | None) -> list[ObjectRecord]:
        """Store each plaintext as an object, telling ``progress`` of every frame (stage ``"writing"``):
        frames and plaintext bytes of all; an object reused counts whole at once."""
        if progress is None:
            return [self.store_object(plaintext) for plaintext in plaintexts]
        frame_size = self.encoding.frame_size
        total = _Told(frames=sum(framing.frame_count(len(p), frame_size) for p in plaintexts),
                      size=sum(len(p) for p in plaintexts), objects=len(plaintexts))
        done = _Told()

        def tell() -> None:
            progress(ProgressUpdate("writing", done.frames, total.frames, done.objects, total.objects, done.size,
                                    total.size))

        def written(frame: FrameRecord) -> None:
            done.frames, done.size = done.frames + 1, done.size + frame.plaintext_size
            tell()

        records = []
        tell()
        for plaintext in plaintexts:
            before = attrs.evolve(done)
            records.append(self.store_object(plaintext, written=written))
            done.frames = before.frames + framing.frame_count(len(plaintext), frame_size)
            done.size, done.objects = before.size + len(plaintext), before.objects + 1
            tell()
        return records

    def put_object(self, chunks: Iterable[bytes]) -> ObjectRecord:
        """Store a large object from a stream of chunks in bounded memory; returns its record.

        The address (sha256 of the plaintext) must be known before the first frame is sealed,
        so the plaintext is spooled once to a temporary file (in memory up to 8 MiB) while it
        is hashed, then compressed, sealed and uploaded frame by frame.
        """
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=self.buffer_size) as spool:
            for chunk in chunks:
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            return self._store_chunks(iter(lambda: spool.read(framing.READ_CHUNK), b""), digest.hexdigest(), size)

    def _store_chunks(self, chunks: Iterable[bytes], address: str, size: int,
                      written: Callable[[FrameRecord], None] | None = None) -> ObjectRecord:
        key = self.encoding.key
        path = self.files.path("objects", framing.object_path(address, key.key_id if key else None))
        reused = self._intact_record(path, address, size)
        if reused is not None:
            return reused
        try:
            return self.files.put(path, lambda sink: framing.encode(
                chunks, address, size, self.encoding, self.registry, sink, written
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
            with self.files.io("read backup", path), self.files.open_read(path) as stream:
                return framing.verified_record(stream, address, size, self.keyring, self.registry, path)
        except (FileNotFoundError, IntegrityError, BackupFormatError, EncryptionKeyError):
            return None

    # --- reading -------------------------------------------------------------------------------

    def manifest(self, backup_id: str, *, verify: bool = True) -> Manifest:
        """The backup's manifest, which must be the one of ``backup_id`` (needs no key).

        ``verify=False`` reads one whose checksum no longer matches. Before reading a backup's
        content, pass it to :meth:`authenticate` (or use :meth:`authenticated_manifest`).
        """
        path, data = self.manifest_bytes(backup_id)
        return manifest.load(data, path, backup_id=backup_id, keyring=self.keyring,
                             status=self.status_of(backup_id), verify=verify)

    def manifest_bytes(self, backup_id: str) -> tuple[str, bytes]:
        """The path and stored bytes of a backup's manifest, unparsed (export archives exactly these)."""
        path = self.files.manifest_path(backup_id)
        try:
            return path, self.files.read(path)
        except FileNotFoundError:
            raise BackupNotFoundError(
                f"backup {backup_id} not found in {self.url} (`backup list` shows them)", subject=backup_id
            ) from None

    def authenticated_manifest(self, backup_id: str) -> Manifest:
        """The backup's manifest, proven to be the one this store wrote (see :meth:`authenticate`)."""
        found = self.manifest(backup_id)
        self.authenticate(found)
        return found

    def authenticate(self, found: Manifest) -> None:
        """Refuse a manifest whose content must not be trusted here.

        A store with keys trusts a manifest only when one of its keys sealed it: a sealed
        manifest whose key is not configured needs that key (EncryptionKeyError, not damage),
        an unsealed one is refused unless the store accepts unsealed manifests. A store without
        keys has nothing to authenticate with and reads every manifest whose checksum verifies.
        """
        if found.authenticated or not self.keyring.keys:
            return
        if found.seal is not None and found.seal.key_id in self.keyring.key_ids:
            # Read unverified (verify=False), and the seal failed under a key we have: proven tampering.
            raise ManifestAuthenticationError(
                f"backup {found.info.id}: the manifest failed authentication under key {found.seal.key_id}: it was "
                "altered or forged after it was written; do not restore from it",
                subject=found.info.id,
            )
        if found.seal is not None:
            configured = ", ".join(self.keyring.key_ids)
            raise EncryptionKeyError(
                f"encryption key {found.seal.key_id} is needed to authenticate backup {found.info.id} "
                f"(configured: {configured}); add that key, e.g. in BACKUP_ENCRYPTION_KEY",
                subject=found.seal.key_id,
            )
        if not self.accept_unsealed:
            raise UnsealedBackupError(
                f"backup {found.info.id} is not sealed by a key of this store (it was written without a key, "
                "or by someone else), so nothing proves it is the backup it claims to be; this encrypted store "
                "refuses it. If you trust it, open the store with accept_unsealed=True "
                "(config: backup.encryption.accept_unsealed: true)",
                subject=found.info.id,
            )

    def status_of(self, backup_id: str) -> str:
        """COMPLETED unless validation recorded otherwise (VALIDATING, CORRUPTED, FAILED)."""
        recorded = self.recorded_status(backup_id)
        return recorded["status"] if recorded is not None else Status.COMPLETED

    def recorded_status(self, backup_id: str) -> dict[str, str] | None:
        """The status document validation recorded, or None when there is none (COMPLETED)."""
        path = self.files.status_path(backup_id)
        try:
            document = json.loads(self.files.read(path, "read backup status"))
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(document, dict) or not isinstance(document.get("status"), str):
            return None
        return {str(key): str(value) for key, value in document.items()}

    def set_status(self, backup_id: str, status: str, reason: str = "") -> None:
        """Record what validation learned about a backup (the manifest itself never changes)."""
        document = {"status": status, "reason": reason, "at": _now().isoformat(timespec="seconds")}
        self.files.put_bytes(self.files.status_path(backup_id), json.dumps(document).encode(),
                             action="record backup status")

    def restore_status(self, backup_id: str, recorded: Mapping[str, str] | None) -> None:
        """Put back a status document read by :meth:`recorded_status` (None: no document)."""
        if recorded is None:
            with contextlib.suppress(FileNotFoundError):
                self.files.remove([self.files.status_path(backup_id)], "record backup status")
        else:
            self.files.put_bytes(self.files.status_path(backup_id), json.dumps(dict(recorded)).encode(),
                            action="record backup status")


    def contents(self, found: Manifest) -> tuple[ContentEntry, ...]:
        """Where each schema object lies in the snapshot (needs the key when encrypted)."""
        self.authenticate(found)
        index = found.index_object
        return decode_contents(self.read_object(index)) if index is not None else ()

    def get(self, backup_id: str) -> BackupInfo:
        """A backup's metadata (needs no key)."""
        return self.manifest(backup_id).info

    def exists(self, backup_id: str) -> bool:
        """Whether a manifest is stored under ``backup_id`` (readable or not)."""
        return self.files.exists(self.files.manifest_path(backup_id))

    def open_object(self, record: ObjectRecord) -> Iterator[bytes]:
        """An object's plaintext as a stream of frames, each authenticated; the address is checked
        at the end, so a consumer must read to the end before trusting what it got."""
        path = self.files.object_path(record)
        with self.files.io("read backup", path), self.files.open_read(path) as stream:
            yield from framing.decode(stream, record.address, self.keyring, self.registry, path, record=record)

    def data_index(self, backup_id: str) -> DataIndex | None:
        """The tables and chunks of the data a backup holds (None: schema only)."""
        return self.authenticated_manifest(backup_id).data

    def chunk_reader(self, backup_id: str) -> Callable[[ChunkRecord], bytes]:
        """Reads chunks of a backup's data, authenticated and checked against their addresses; the
        manifest is read and authenticated once, not per chunk."""
        records = {record.address: record for record in self.authenticated_manifest(backup_id).objects}

        def read(chunk: ChunkRecord) -> bytes:
            if chunk.address not in records:
                raise IntegrityError(f"backup {backup_id} is damaged: its manifest lists no object for chunk "
                                     f"{chunk.address}", subject=backup_id)
            return self.read_object(records[chunk.address])

        return read

    def read_object(self, record: ObjectRecord) -> bytes:
        """An object's plaintext, every frame authenticated and the address checked."""
        path = self.files.object_path(record)
        with self.files.io("read backup", path), self.files.open_read(path) as stream:
            return b"".join(framing.decode(stream, record.address, self.keyring, self.registry, path,
                                           record=record))

    def snapshot(self, backup_id: str) -> Snapshot:
        """The snapshot a backup holds, equal to the one captured."""
        found = self.authenticated_manifest(backup_id)
        record = found.snapshot_object
        key = (record.address, found.info.captured_at, found.index_object.address if found.index_object else "")
        kept = self._decoded.get(key)
        if kept is None:
            try:
                data = self.read_object(record)
            except FileNotFoundError:
                raise IntegrityError(
                    f"backup {backup_id} is damaged: object {record.path} is missing", subject=backup_id
                ) from None
            kept = attrs.evolve(decode_snapshot(data, found.info.captured_at), fingerprints=self._fingerprints(found))
            while len(self._decoded) >= _DECODED_KEPT:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[key] = kept
        return kept

    def _fingerprints(self, found: Manifest) -> dict[str, str]:
        """The capture's fingerprints, kept in the snapshot's index; none when it cannot be read
        (they only spare the next capture reading what did not change)."""
        index = found.index_object
        if index is None:
            return {}
        try:
            return decode_fingerprints(self.read_object(index))
        except (SchemaSyncBackupError, FileNotFoundError):
            return {}

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
        """Backups, newest first. Backups still being written list as CREATING, never COMPLETED.

        ``created_after`` and ``created_before`` are datetimes or what :func:`~schemasync_backup.model.moments.moment`
        reads: ISO 8601, a duration ago (``"24h"``, ``"7d"``) or ``"now"``, ``"today"``, ``"yesterday"`` (UTC)."""
        after, before = _as_time(created_after), _as_time(created_before)

        def in_window(backup_id: str) -> bool:
            minted = manifest.created_at_of(backup_id)
            return minted is not None and (after is None or minted >= after.replace(microsecond=0)) and (
                before is None or minted <= before
            )

        # A file whose name is no backup id is not a backup (recovery_scan reports it).
        ids = [backup_id for name in self.files.listdir("manifests") if name.endswith(".json")
               for backup_id in [name.removesuffix(".json")] if is_backup_id(backup_id)]
        wanted = [self.files.manifest_path(backup_id) for backup_id in ids if in_window(backup_id)]
        with self.files.io("list backups", self.files.path("manifests")):
            raw = self.fs.cat(wanted) if wanted else {}
        statuses = {name.removesuffix(".json") for name in self.files.listdir("status")}
        found: list[BackupInfo] = []
        for path in wanted:
            data = raw.get(path) if isinstance(raw, dict) else raw
            backup_id = path.rsplit("/", 1)[-1].removesuffix(".json")
            recorded = self.status_of(backup_id) if backup_id in statuses else Status.COMPLETED
            try:
                found.append(manifest.load(data or b"", path, backup_id=backup_id, keyring=self.keyring,
                                           status=recorded).info)
            except (BackupFormatError, IntegrityError):
                found.append(UnreadBackupInfo.of(backup_id, Status.CORRUPTED))
        # A marker whose manifest exists was left by a crash after the commit: that backup lists once.
        found += [UnreadBackupInfo.of(backup_id, Status.CREATING)
                  for name in self.files.listdir("pending") if name.endswith(".json")
                  for backup_id in [name.removesuffix(".json")]
                  if is_backup_id(backup_id) and in_window(backup_id) and backup_id not in ids]
        selected = [info for info in found if _matches(info, database, status, tags, after, before)]
        selected.sort(key=lambda info: (info.created_at, info.id), reverse=True)
        return selected[:limit] if limit is not None else selected

    # --- removing, moving ----------------------------------------------------------------------

    def object_paths(self) -> builtins.list[str]:
        """Every object file in the store, whether or not a manifest names it."""
        return [self.files.path("objects", sub, name) for sub in self.files.listdir("objects")
                for name in self.files.listdir(f"objects/{sub}")]

    def delete(self, backup_id: str) -> None:
        """Remove a backup; objects other backups still use stay.

        The manifest goes first; its objects then go through a prune under the store lock, so
        a create that is reusing one of them at this moment never loses it. While creates are
        running the objects stay for the next prune.
        """
        try:
            database = self.manifest(backup_id, verify=False).info.database
        except BackupFormatError:
            database = ""  # a damaged manifest can still be deleted
        self.files.remove([self.files.manifest_path(backup_id)])
        self.registry.notify("backup.deleted", {"backup_id": backup_id, "database": database})
        with contextlib.suppress(FileNotFoundError):
            self.files.remove([self.files.status_path(backup_id)])
        self.reclaim()

    def reclaim(self) -> None:
        from datetime import timedelta

        from schemasync_backup.store.maintenance import StoreBusyError, prune

        with contextlib.suppress(StoreBusyError):
            prune(self, grace=timedelta(0))

    def copy_to(self, other: BackupStore, backup_id: str) -> BackupInfo:
        """Copy a backup into another store, checking every byte against the manifest on the way;
        the copy is sealed with the other store's key."""
        source = self.authenticated_manifest(backup_id)
        if not source.authenticated:
            # The other store seals the copy, so it must be one it would accept unsealed.
            other.authenticate(attrs.evolve(source, seal=None))
        for record in source.objects:
            target = other.files.object_path(record)
            if not other.files.exists(target):
                with self.files.io("read backup", self.files.object_path(record)), \
                        self.files.open_read(self.files.object_path(record)) as stream:
                    other.put_verified(target, stream, record, self.files.object_path(record))
        return other.commit_manifest(source)

    def move_to(self, other: BackupStore, backup_id: str) -> BackupInfo:
        """Copy, verify the copy as ``other`` stores it, and only then delete here."""
        copied = self.copy_to(other, backup_id)
        for record in other.manifest(backup_id).objects:
            path = other.files.object_path(record)
            with other.files.io("read backup", path), other.files.open_read(path) as stream:
                framing.drain_checked(stream, record, path)
        self.delete(backup_id)
        return copied

    def put_verified(self, target: str, stream: framing.Readable, record: ObjectRecord, where: str) -> None:
        """Store an object's stored bytes read from ``stream`` at ``target``, only if they are the
        bytes ``record`` vouches for; spooled to a temporary file, so memory stays bounded."""
        with tempfile.SpooledTemporaryFile(max_size=self.buffer_size) as spool:
            framing.drain_checked(stream, record, where, spool)
            spool.seek(0)
            self.files.put(target, lambda sink: shutil.copyfileobj(spool, sink, framing.READ_CHUNK))

    # --- archives: archive.py does the work -----------------------------------------------------

    def export(self, backup_id: str, path: str | os.PathLike[str], *, progress: ProgressCallback | None = None) -> str:
        """Write one backup, manifest and objects, into a ``.tar.gz`` at a local path (see :mod:`.archive`);
        ``progress`` is told the objects archived and the bytes written (stage ``"archiving"``)."""
        from schemasync_backup.store.archive import export

        return export(self, backup_id, path, progress=progress)

    def import_archive(
        self,
        path: str | os.PathLike[str],
        *,
        max_member_size: int = 16 * 1024**3,
        max_expansion: int = 100,
        accept_unsealed: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> BackupInfo:
        """Import an archive written by :meth:`export`, refusing anything unsafe or damaged (see :mod:`.archive`);
        ``progress`` is told the objects imported and their stored bytes (stage ``"importing"``)."""
        from schemasync_backup.store.archive import import_archive

        return import_archive(self, path, max_member_size=max_member_size, max_expansion=max_expansion,
                              accept_unsealed=accept_unsealed, progress=progress)

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
        for name in store.files.listdir("manifests"):
            backup_id = name.removesuffix(".json")
            if not is_backup_id(backup_id):
                continue
            old = store.authenticated_manifest(backup_id)
            if all(record.key_id == writer.key_id for record in old.objects) and old.seal is not None \
                    and old.seal.key_id == writer.key_id:
                continue
            records = tuple(store.store_object(store.read_object(record)) for record in old.objects)
            info = attrs.evolve(old.info, stored_size=sum(r.stored_size for r in records), key_id=writer.key_id,
                                encryption=records[0].cipher)
            store.write_manifest(attrs.evolve(old, info=info, objects=records))
            rotated.append(backup_id)
        if rotated:
            store.reclaim()
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
        confirmed: RetentionReport | None = None,
    ) -> RetentionReport:
        """Keep or remove every backup by ``policy`` and say which rule decided; without
        ``dry_run``, remove the manifests of the backups no rule keeps, then prune. With
        ``confirmed`` (an approved dry run), remove only what it and the decision made now agree on."""
        from schemasync_backup.store.maintenance import apply_retention

        return apply_retention(self, policy, dry_run=dry_run, database=database, now=now, grace=grace,
                               confirmed=confirmed)

    def prune(
        self, *, grace: timedelta | str | None = None, dry_run: bool = False, wait: float = 0.0
    ) -> PruneResult:
        """Delete objects no manifest names and older than ``grace`` (default 1 h), under the store lock."""
        from schemasync_backup.store.maintenance import prune

        return prune(self, grace=grace, dry_run=dry_run, wait=wait)

    def usage(self, detailed: bool = False) -> UsageReport:
        """Backup count, stored and raw bytes, dedup savings, per database (and per backup if ``detailed``)."""
        from schemasync_backup.store.maintenance import usage

        return usage(self, detailed=detailed)

    def health(self) -> StorageHealth:
        """Reachability, a write/read/delete probe, free space, locks, incomplete backups, spans."""
        from schemasync_backup.store.maintenance import health

        return health(self)

    def optimize(self, dry_run: bool = True, *, wait: float = 0.0) -> OptimizeReport:
        """What re-compressing objects with the configured codec saves; without ``dry_run``, do it."""
        from schemasync_backup.store.maintenance import optimize

        return optimize(self, dry_run=dry_run, wait=wait)


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




def _as_time(value: datetime | str | None) -> datetime | None:
    return None if value is None else moment(value)


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


def _document_path(relative: str) -> str:
    """A document path inside the store: plain names only, never outside it."""
    parts = relative.split("/")
    if not relative or any(part in ("", ".", "..") or not _DOCUMENT_PART.fullmatch(part) for part in parts):
        raise StoreError(f"invalid document path {relative!r}", subject=relative)
    return relative
