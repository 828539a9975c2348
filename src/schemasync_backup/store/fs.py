"""The store's files: the one owner of storage I/O (the only fsspec importer) and of the layout.

Layout under the store's URL (docs/storage-format.md is normative)::

    objects/<aa>/<sha256 of plaintext>.<key id or "plain">   immutable, written once
    manifests/<backup id>.json                               written last; a backup exists iff this does
    pending/<backup id>.json                                 while a create runs; left behind by a crash
    status/<backup id>.json                                  what validation learned (CORRUPTED, ...)
    locks/, journals/                                        the store lock; rollback journals
    tmp/<random>                                             staging where rename is atomic (disk, memory)

Every provider error is translated here, once, into the package's errors, naming the operation;
every operation is logged here, once, at DEBUG on ``schemasync_backup.storage`` with its duration.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import time
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
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
)
from schemasync_backup.formats.backup_id import check_backup_id
from schemasync_backup.formats.framing import ObjectRecord

T = TypeVar("T")
#: Protocols whose PUT becomes visible only once complete, so objects can be written in place.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"}
_S3 = ("s3", "s3a")
_GCS = ("gs", "gcs")
_AZURE = ("az", "abfs", "abfss")
_UPLOAD_BLOCK = 8 * 1024 * 1024
#: The smallest part of a multipart upload S3 accepts (s3fs refuses a smaller block).
_SMALLEST_PART = 5 * 1024 * 1024
#: Storage options every object storage takes, in seconds and counts, whatever its library calls them.
CONNECTION_TIMEOUT = "connection_timeout"
READ_TIMEOUT = "read_timeout"
RETRY_ATTEMPTS = "retry_attempts"
#: What each object storage calls its container, and the configuration key naming it.
_CONTAINERS = {**dict.fromkeys(_S3, ("bucket", "backup.storage.s3.bucket")),
               **dict.fromkeys(_GCS, ("bucket", "backup.storage.gcs.bucket")),
               **dict.fromkeys(_AZURE, ("container", "backup.storage.azure.container_name"))}
#: What to check when an object storage refuses access.
_ACCESS_HINTS = {
    **dict.fromkeys(_S3, "check the credentials (backup.storage.s3.access_key/secret_key, or the AWS credential "
                         "chain) and that the bucket and IAM policies allow s3:ListBucket, s3:GetObject, "
                         "s3:PutObject and s3:DeleteObject"),
    **dict.fromkeys(_GCS, "check the credentials (backup.storage.gcs.credentials_path, or the application default "
                          "credentials) and that they hold roles/storage.objectAdmin on the bucket"),
    **dict.fromkeys(_AZURE, "check the account key, SAS token or connection string (backup.storage.azure) and that "
                            "the identity may list, read, write and delete blobs in the container"),
}
#: Codes by which providers say a bucket or container does not exist (botocore, azure-storage).
_MISSING_CONTAINER_CODES = {"NoSuchBucket", "ContainerNotFound"}
#: The storage operations that show whether the bucket exists (a read of a missing object is routine).
_CONTAINER_OPERATIONS = frozenset({"list", "write", "mkdir"})
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_QUERY = re.compile(r"(://[^\s?'\"]*)\?[^\s'\"]*")

_log = logging.getLogger("schemasync_backup.storage")
_ROUTINE: dict[type[BaseException], str] = {FileNotFoundError: "not found", FileExistsError: "exists already"}


def shown(text: str) -> str:
    """``text`` with the userinfo and query of every URL in it hidden: they carry passwords and SAS tokens."""
    return _QUERY.sub(r"\1?***", _USERINFO.sub("***@", text))


def known_protocols() -> list[str]:
    """Every protocol fsspec can open: its own, those packages register under the ``fsspec.specs``
    entry point group, and those registered at run time with ``fsspec.register_implementation``."""
    return sorted({*fsspec.available_protocols(), *fsspec.registry})


def check_protocol(protocol: str) -> None:
    """Refuse a protocol fsspec does not know, or whose implementation cannot be imported here."""
    if protocol not in known_protocols():
        raise StorageError(
            f"unknown storage protocol {protocol!r}: available: {', '.join(known_protocols())}; install a package "
            "that registers it with fsspec (entry point group fsspec.specs)", subject=protocol,
        )
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        raise StorageError(f"storage protocol {protocol!r} cannot be used here: {exc}", subject=protocol) from None


def open_files(url: str, storage_options: Mapping[str, Any] | None, *, file_mode: int, dir_mode: int,
               upload_block: int = _UPLOAD_BLOCK) -> StoreFiles:
    """The files of the store at ``url`` (a path or any fsspec URL); opening writes nothing.

    Besides the provider's own options, ``storage_options`` may hold ``connection_timeout`` and
    ``read_timeout`` (seconds) and ``retry_attempts`` for S3, Azure and GCS; they reach each
    library in its own terms (botocore's config, the Azure service client, gcsfs's aiohttp timeout).
    """
    options = dict(storage_options or {})
    # A block size the caller chose (s3fs's default_block_size: the multipart part size) is the upload
    # buffer; otherwise ``upload_block`` (the store's buffer size), far below s3fs's 50 MiB.
    block = int(options.get("default_block_size") or max(upload_block, _SMALLEST_PART))
    try:
        fs, root = _filesystem(url, options)
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open backup storage {shown(url)}: {shown(str(exc))}; for s3://, az:// or gs:// install "
            "schemasync_backup[s3], [azure] or [gcs]",
            subject=shown(url),
            url=shown(url),
        ) from exc
    return StoreFiles(url=url, fs=fs, root=root.rstrip("/"), file_mode=file_mode, dir_mode=dir_mode,
                      upload_block=block)


def _filesystem(url: str, options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    tuning = {name: options.pop(name) for name in (CONNECTION_TIMEOUT, READ_TIMEOUT, RETRY_ATTEMPTS)
              if name in options}
    if protocol in _S3:
        _tune_s3(options, **tuning)
    elif protocol in _GCS:
        _tune_gcs(options, **tuning)
        if options.get("endpoint_url"):
            # gcsfs's default class asks a gRPC Storage Control service about every bucket first;
            # an emulator or proxy serves only the JSON API, so each call would wait out that handshake.
            from gcsfs.core import GCSFileSystem

            return _instance(GCSFileSystem, url, options)
    elif protocol in _AZURE:
        return _instance(_azure_filesystem_class(), url, {**options, "client_settings": _azure_settings(**tuning)})
    fs, root = fsspec.core.url_to_fs(url, **options)
    return fs, str(root)


def _instance(cls: type[Any], url: str, options: Mapping[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    """What ``fsspec.core.url_to_fs`` does with ``url``, with a class of our choosing."""
    kwargs = {**cls._get_kwargs_from_urls(url), **options}
    return cls(**kwargs), str(cls._strip_protocol(url))


def _tune_s3(options: dict[str, Any], connection_timeout: float | None = None, read_timeout: float | None = None,
             retry_attempts: int | None = None) -> None:
    config = dict(options.get("config_kwargs") or {})
    if connection_timeout is not None:
        config["connect_timeout"] = connection_timeout
    if read_timeout is not None:
        config["read_timeout"] = read_timeout
    if retry_attempts is not None:
        config["retries"] = {**config.get("retries", {}), "max_attempts": retry_attempts}
    if config:
        options["config_kwargs"] = config


def _tune_gcs(options: dict[str, Any], connection_timeout: float | None = None,
              read_timeout: float | None = None) -> None:
    if connection_timeout is not None or read_timeout is not None:
        from aiohttp import ClientTimeout

        # Without one gcsfs waits forever (it passes None, which aiohttp reads as no limit). Per socket
        # operation, not per request: uploading or reading a large block may take long, a silence may not.
        options["requests_timeout"] = ClientTimeout(total=None, sock_connect=connection_timeout,
                                                    sock_read=read_timeout)


def _azure_settings(connection_timeout: float | None = None, read_timeout: float | None = None,
                    retry_attempts: int | None = None) -> dict[str, Any]:
    """Keyword arguments of azure-storage-blob's service client (its transport and retry policy)."""
    settings = {"connection_timeout": connection_timeout, "read_timeout": read_timeout, "retry_total": retry_attempts}
    return {name: value for name, value in settings.items() if value is not None}


@functools.cache
def _azure_filesystem_class() -> type[fsspec.AbstractFileSystem]:
    from adlfs import AzureBlobFileSystem
    from azure.storage.blob.aio import BlobServiceClient

    class TunedAzureBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
        """adlfs whose service client gets the timeouts and retries: adlfs passes none of its
        keyword arguments on (fsspec/adlfs#502) and applies its own timeouts to a few calls only."""

        service_client: BlobServiceClient

        def __init__(self, *args: Any, client_settings: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
            self.client_settings = dict(client_settings or {})
            super().__init__(*args, **kwargs)

        def do_connect(self) -> None:
            super().do_connect()
            if self.client_settings:
                # The same account, address and credential adlfs chose, with the settings.
                built = self.service_client
                self.service_client = BlobServiceClient(built.url, credential=built.credential,
                                                        _location_mode=self.location_mode, **self.client_settings)

    return TunedAzureBlobFileSystem


@attrs.define
class Operation:
    """What one storage operation moved, for its log line."""

    nbytes: int | None = None
    entries: int | None = None


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
    def protocols(self) -> tuple[str, ...]:
        return self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)

    @property
    def scheme(self) -> str:
        """The protocol of the store's URL, as the user wrote it (``az``, where adlfs says ``abfs``)."""
        return self.url.split("://", 1)[0] if "://" in self.url else self.protocols[0]

    @property
    def atomic_put(self) -> bool:
        return bool(_ATOMIC_PUT_PROTOCOLS & set(self.protocols))

    # --- I/O ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def io(self, action: str, path: str, *, operation: str | None = None) -> Iterator[Operation]:
        """One storage operation: logged with its duration, and whatever the provider raised translated
        into the package's errors, once, here. ``action`` is what failed in the words of a message
        (``create backup``); ``operation`` what the storage was asked (``write``), by default the action's verb."""
        done = Operation()
        asked = operation or action.partition(" ")[0]
        began = time.perf_counter()
        outcome = "ok"
        try:
            yield done
        except BaseException as exc:
            # Looking for what may be absent is routine: it must not match the guide's grep for "error|fail".
            outcome = _ROUTINE.get(type(exc), f"failed ({type(exc).__name__})")
            translated = self._translated(exc, action, path, asked)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            moved = "".join(f" {name}={value}" for name, value in (("bytes", done.nbytes), ("entries", done.entries))
                            if value is not None)
            _log.debug("storage %s %s duration=%.3fs%s %s", asked, shown(path), time.perf_counter() - began, moved,
                       outcome)

    def _translated(self, exc: BaseException, action: str, path: str, operation: str) -> BaseException:
        """The package's error for what the provider raised (or ``exc`` itself when it is one already)."""
        if isinstance(exc, SchemaSyncBackupError):
            return exc  # translated already (by an inner operation, or by listdir): never a second time
        container = self._missing_container(exc, operation)
        if container is not None:
            return container
        if isinstance(exc, FileNotFoundError | FileExistsError) or not isinstance(exc, Exception):
            return exc
        url, shown_path = shown(self.url), shown(path)
        where = {"subject": shown_path, "url": url, "path": shown_path}
        if _is_timeout(exc):
            return StorageTimeoutError(
                f"failed to {action}: the storage did not answer in time ({url}: {shown_path}: {_detail(exc)}); "
                "check the endpoint and the network, or raise the storage's connection_timeout and read_timeout",
                **where)
        if isinstance(exc, PermissionError) or _status(exc) in (401, 403) or str(exc).startswith("Forbidden"):
            if self.is_local or not self.atomic_put:
                return StoragePermissionError(f"failed to {action}: permission denied: {shown_path}", **where)
            hint = _ACCESS_HINTS.get(self.scheme, "check the credentials and the storage's access policy")
            return StoragePermissionError(
                f"failed to {action}: access denied to {self.scheme}://{shown_path}: {hint}", **where)
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                return StorageFullError("failed to write backup file: no space left on device", **where)
            return StorageError(f"failed to {action}: {shown(str(exc.strerror or exc))} ({url}: {shown_path})",
                                **where)
        return StorageError(
            f"failed to {action}: storage error {type(exc).__name__}: {shown(str(exc))} ({url}: {shown_path})",
            **where)

    def _missing_container(self, exc: BaseException, operation: str) -> StorageNotFoundError | None:
        """A StorageNotFoundError when ``exc`` says the bucket or container itself does not exist."""
        container = self.root.split("/", 1)[0]
        if not (any(_code(cause) in _MISSING_CONTAINER_CODES for cause in _chain(exc))
                or self._gcs_bucket_missing(exc, operation, container)):
            return None
        noun, key = _CONTAINERS.get(self.scheme, ("bucket", "the storage's bucket"))
        url = shown(self.url)
        return StorageNotFoundError(
            f"storage {noun} '{container}' does not exist on {self.scheme}:// ({url}): create it, or fix {key}",
            subject=container, url=url, path=container)

    def _gcs_bucket_missing(self, exc: BaseException, operation: str, bucket: str) -> bool:
        """Whether a GCS list or write failed because the bucket does not exist.

        gcsfs raises one bare FileNotFoundError for a missing bucket and a missing object. Listing the
        bucket tells them apart: only a missing bucket fails to list (an empty one lists as nothing),
        and any other failure of the listing claims nothing. Reads are left alone: an object that
        is not there is routine, and a missing bucket shows on the list or write that comes first.
        """
        if self.scheme not in _GCS or operation not in _CONTAINER_OPERATIONS or not isinstance(exc, FileNotFoundError):
            return False
        try:
            self.fs.ls(bucket, detail=False, refresh=True, max_results=1)  # one request, however full the bucket
        except FileNotFoundError:
            return True
        except Exception:  # a listing that fails otherwise (denied, timed out) claims nothing
            return False
        return False

    def makedirs(self, path: str, action: str = "create backup") -> None:
        if self.is_local:
            # Only folders made here get the store's mode: an existing one (a shared mount, a
            # folder someone else owns) is left as it is.
            missing = []
            while path and not os.path.isdir(path):
                missing.append(path)
                path = os.path.dirname(path.rstrip("/"))
            for folder in reversed(missing):
                with self.io(action, folder, operation="mkdir"), contextlib.suppress(FileExistsError):
                    os.mkdir(folder, self.dir_mode)
                    os.chmod(folder, self.dir_mode)
        elif not self.atomic_put:
            with self.io(action, path, operation="mkdir"):
                self.fs.makedirs(path, exist_ok=True)

    def put(
        self, path: str, write: Callable[[BinaryIO], T], *, exclusive: bool = False, action: str = "create backup"
    ) -> T:
        """Write ``path`` so that nobody ever sees it half-written."""
        with self.io(action, path, operation="write") as done:
            if self.atomic_put:
                # A bounded upload buffer: s3fs otherwise holds 50 MiB per part, and copies it.
                with self.fs.open(path, "xb" if exclusive else "wb", block_size=self.upload_block) as sink:
                    result = write(sink)
                    done.nbytes = sink.tell()
                    return result
            parent = path.rsplit("/", 1)[0]
            self.makedirs(parent, action)
            staging = self.path("tmp", uuid.uuid4().hex)
            self.makedirs(self.path("tmp"), action)
            try:
                with self.fs.open(staging, "wb") as sink:
                    result = write(sink)
                    done.nbytes = sink.tell()
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
        with self.io(action, path, operation="read") as done:
            data = bytes(self.fs.cat_file(path))
            done.nbytes = len(data)
            return data

    def exists(self, path: str) -> bool:
        with self.io("read backup", path, operation="exists"):
            return bool(self.fs.exists(path))

    def remove(self, paths: Sequence[str], action: str = "delete backup") -> None:
        if paths:
            with self.io(action, paths[0], operation="delete") as done:
                done.entries = len(paths)
                self.fs.rm(list(paths))

    def listdir(self, folder: str) -> list[str]:
        path = self.path(folder)
        with self.io("list backups", path, operation="list") as done:
            try:
                entries = self.fs.ls(path, detail=False)
            except FileNotFoundError as exc:
                container = self._missing_container(exc, "list")
                if container is not None:
                    raise container from exc  # the bucket, not the folder
                entries = []
            done.entries = len(entries)
            return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it: providers wrap their SDK's error in a builtin one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _code(exc: BaseException) -> str | None:
    """The provider's error code: botocore's ``response['Error']['Code']``, azure-core's ``error_code``."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    code = getattr(exc, "error_code", None)
    return str(code) if code else None


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an SDK error (azure-core's ``status_code``, gcsfs's ``code``)."""
    for name in ("status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None


def _is_timeout(exc: BaseException) -> bool:
    # botocore's ReadTimeoutError, azure-core's ServiceResponseTimeoutError, aiohttp's and fsspec's
    # timeouts (asyncio's TimeoutError): only their names are common to them all.
    return any(isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__ for cause in _chain(exc))


def _detail(exc: BaseException) -> str:
    """The innermost explanation of a failure, without URLs' secrets."""
    for cause in reversed(list(_chain(exc))):
        if str(cause):
            return f"{type(cause).__name__}: {shown(str(cause))}"
    return type(exc).__name__
