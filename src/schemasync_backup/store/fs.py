"""The store's files: the one owner of storage I/O (the only fsspec importer) and of the layout.

Layout under the store's URL (docs/storage-format.md is normative)::

    objects/<aa>/<sha256 of plaintext>.<key id or "plain">   immutable, written once
    manifests/<backup id>.json                               written last; a backup exists iff this does
    pending/<backup id>.json                                 while a create runs; left behind by a crash
    status/<backup id>.json                                  what validation learned (CORRUPTED, ...)
    locks/, journals/                                        the store lock; rollback journals
    tmp/<random>                                             staging where rename is atomic (disk, memory)

Every provider error is translated here, once, into the package's errors, naming the operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar

import attrs
import fsspec
from fsspec.implementations.local import LocalFileSystem

from schemasync_backup.errors import (
    SchemaSyncBackupError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from schemasync_backup.formats.backup_id import check_backup_id
from schemasync_backup.formats.framing import ObjectRecord

T = TypeVar("T")
#: Protocols whose PUT becomes visible only once complete, so objects can be written in place.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"}
_UPLOAD_BLOCK = 8 * 1024 * 1024
#: The smallest part of a multipart upload S3 accepts (s3fs refuses a smaller block).
_SMALLEST_PART = 5 * 1024 * 1024


def open_files(url: str, storage_options: Mapping[str, Any] | None, *, file_mode: int, dir_mode: int,
               upload_block: int = _UPLOAD_BLOCK) -> StoreFiles:
    """The files of the store at ``url`` (a path or any fsspec URL); opening writes nothing."""
    try:
        fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open backup storage {url}: {exc}; for s3://, az:// or gs:// install "
            "schemasync_backup[s3], [azure] or [gcs]",
            subject=url,
            url=url,
        ) from exc
    # A block size the caller chose (s3fs's default_block_size: the multipart part size) is the upload
    # buffer; otherwise ``upload_block`` (the store's buffer size), far below s3fs's 50 MiB.
    block = int((storage_options or {}).get("default_block_size") or max(upload_block, _SMALLEST_PART))
    return StoreFiles(url=url, fs=fs, root=root.rstrip("/"), file_mode=file_mode, dir_mode=dir_mode,
                      upload_block=block)


@attrs.frozen
class StoreFiles:
    url: str
    fs: fsspec.AbstractFileSystem = attrs.field(repr=False)
    root: str
    file_mode: int = 0o600
    dir_mode: int = 0o700
    #: The buffer of one upload (an object storage's part size).
    upload_block: int = _UPLOAD_BLOCK

    # --- the layout -----------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts]) if self.root else "/".join(parts)

    def manifest_path(self, backup_id: str) -> str:
        return self.path("manifests", f"{check_backup_id(backup_id)}.json")

    def status_path(self, backup_id: str) -> str:
        return self.path("status", f"{check_backup_id(backup_id)}.json")

    def object_path(self, record: ObjectRecord) -> str:
        return self.path("objects", record.path)

    def relative(self, path: str) -> str:
        """``path`` relative to the store's root, as reports show it."""
        prefix = f"{self.root}/" if self.root else ""
        return path[len(prefix):] if prefix and path.startswith(prefix) else path

    # --- what the storage is --------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def atomic_put(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return bool(_ATOMIC_PUT_PROTOCOLS & set(protocols))

    # --- I/O ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def io(self, action: str, path: str) -> Iterator[None]:
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

    def makedirs(self, path: str, action: str = "create backup") -> None:
        if self.is_local:
            # Only folders made here get the store's mode: an existing one (a shared mount, a
            # folder someone else owns) is left as it is.
            missing = []
            while path and not os.path.isdir(path):
                missing.append(path)
                path = os.path.dirname(path.rstrip("/"))
            for folder in reversed(missing):
                with self.io(action, folder), contextlib.suppress(FileExistsError):
                    os.mkdir(folder, self.dir_mode)
                    os.chmod(folder, self.dir_mode)
        elif not self.atomic_put:
            self.fs.makedirs(path, exist_ok=True)

    def put(
        self, path: str, write: Callable[[BinaryIO], T], *, exclusive: bool = False, action: str = "create backup"
    ) -> T:
        """Write ``path`` so that nobody ever sees it half-written."""
        with self.io(action, path):
            if self.atomic_put:
                # A bounded upload buffer: s3fs otherwise holds 50 MiB per part, and copies it.
                with self.fs.open(path, "xb" if exclusive else "wb", block_size=self.upload_block) as sink:
                    return write(sink)
            parent = path.rsplit("/", 1)[0]
            self.makedirs(parent, action)
            staging = self.path("tmp", uuid.uuid4().hex)
            self.makedirs(self.path("tmp"), action)
            try:
                with self.fs.open(staging, "wb") as sink:
                    result = write(sink)
                if self.is_local:
                    os.chmod(staging, self.file_mode)
                if exclusive and self.fs.exists(path):
                    raise FileExistsError(path)
                self.fs.mv(staging, path)
                return result
            finally:
                if self.fs.exists(staging):
                    self.fs.rm(staging)

    def put_bytes(self, path: str, data: bytes, *, exclusive: bool = False, action: str = "create backup") -> None:
        self.put(path, lambda sink: sink.write(data), exclusive=exclusive, action=action)

    def open_read(self, path: str) -> BinaryIO:
        # Sequential reads through a bounded read-ahead buffer, whatever the provider's default.
        return self.fs.open(path, "rb", block_size=self.upload_block, cache_type="readahead")  # type: ignore[no-any-return]

    def read(self, path: str, action: str = "read backup") -> bytes:
        with self.io(action, path):
            return bytes(self.fs.cat_file(path))

    def exists(self, path: str) -> bool:
        with self.io("read backup", path):
            return bool(self.fs.exists(path))

    def remove(self, paths: Sequence[str], action: str = "delete backup") -> None:
        if paths:
            with self.io(action, paths[0]):
                self.fs.rm(list(paths))

    def listdir(self, folder: str) -> list[str]:
        path = self.path(folder)
        with self.io("list backups", path):
            try:
                return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(path, detail=False)]
            except FileNotFoundError:
                return []

