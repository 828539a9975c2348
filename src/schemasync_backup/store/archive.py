"""Archives: one backup as a ``.tar.gz`` to carry elsewhere, and the untrusted way back in.

Export streams every object through a check against the manifest. Import reads the archive as a
stream: the manifest comes first and decides which members may follow, with their exact sizes,
checked before a byte is read; nothing is held whole in memory, and an archive that declares far
more than it occupies is refused as a decompression bomb (docs/storage-format.md, Archives).
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import uuid
import zlib
from typing import TYPE_CHECKING, Any

import attrs

from schemasync_backup.errors import ArchiveError, IntegrityError
from schemasync_backup.formats import framing, manifest
from schemasync_backup.formats.backup_id import is_backup_id
from schemasync_backup.formats.framing import CountingReader, Readable, check_counted, drain_checked
from schemasync_backup.formats.manifest import BackupInfo, Manifest
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from schemasync_backup.store.store import BackupStore

#: A manifest is small; an archive member called manifest.json that is not, is refused before it is read.
_MAX_MANIFEST = 64 * 1024 * 1024


def export(store: BackupStore, backup_id: str, path: str | os.PathLike[str], *,
           progress: ProgressCallback | None = None) -> str:
    """Write one backup, manifest and objects, into a ``.tar.gz`` at a local path.

    Every object is checked against the manifest while it streams into the archive; the
    archive appears at ``path`` only when complete. ``progress`` is told stage ``"archiving"``:
    objects archived of the backup's, and the bytes written to the archive so far (its size in the
    end; not known before, so ``bytes_total`` is 0)."""
    manifest_path, manifest_bytes = store.manifest_bytes(backup_id)
    # The bytes archived are the bytes checked: one read.
    found = manifest.load(manifest_bytes, manifest_path, backup_id=backup_id, keyring=store.keyring)
    store.authenticate(found)
    target = os.fspath(path)
    partial = f"{target}.partial-{uuid.uuid4().hex[:8]}"
    try:
        with open(partial, "wb") as file:
            written = _Written(file, len(found.objects), progress)
            with tarfile.open(partial, "w:gz", fileobj=written) as archive:
                _add_member(archive, "manifest.json", len(manifest_bytes), io.BytesIO(manifest_bytes))
                written.report()
                for record in found.objects:
                    source = store.files.object_path(record)
                    with store.files.io("read backup", source), store.files.open_read(source) as stream:
                        counting = CountingReader(stream)
                        try:
                            _add_member(archive, f"objects/{record.path}", record.stored_size, counting)
                        except OSError as exc:  # tarfile: the object is shorter than recorded
                            raise IntegrityError(f"{source}: {exc}; the object is damaged", subject=source) from None
                        check_counted(counting, record, source)
                    written.object_done()
            written.report()  # the gzip trailer, written as the archive closed
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return target

def import_archive(
    store: BackupStore,
    path: str | os.PathLike[str],
    *,
    max_member_size: int = 16 * 1024**3,
    max_expansion: int = 100,
    accept_unsealed: bool | None = None,
    progress: ProgressCallback | None = None,
) -> BackupInfo:
    """Import an archive written by :meth:`export`, refusing anything unsafe or damaged.

    The archive is untrusted: it is read as a stream, member by member, never whole; the
    manifest comes first and decides which members may follow and their exact sizes, which
    are checked before a byte is read; an archive that declares more than ``max_expansion``
    times its own size is refused as a decompression bomb. An encrypted store imports only
    a backup one of its keys sealed, unless ``accept_unsealed`` (default: the store's).
    ``progress`` is told stage ``"importing"`` once the manifest is read: objects imported of those
    it names, and their stored bytes as each block is read (an object the store already holds is
    read and checked too).
    """
    where = os.fspath(path)
    try:
        archive_size = os.path.getsize(where)
        archive = tarfile.open(where, "r|gz")  # noqa: SIM115 - opened here to translate errors, closed below
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"cannot read archive {where}: {exc}", subject=where) from exc
    try:
        with archive:
            found = _import_members(store, archive, where, archive_size, max_member_size, max_expansion,
                                    store.accept_unsealed if accept_unsealed is None else accept_unsealed, progress)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"archive {where} is damaged: {exc}", subject=where) from exc
    return store.commit_manifest(found)

def _import_members(
    store: BackupStore, archive: tarfile.TarFile, where: str, archive_size: int, max_member_size: int,
    max_expansion: int, accept_unsealed: bool, progress: ProgressCallback | None,
) -> Manifest:
    members = iter(archive)
    first = next(members, None)
    if first is None or first.name != "manifest.json":
        raise ArchiveError(f"archive {where} does not start with manifest.json: not an exported backup",
                           subject=where)
    _check_member(first, where, min(max_member_size, _MAX_MANIFEST))
    found = manifest.load(_extract(archive, first), f"{where}:manifest.json", keyring=store.keyring)
    if not is_backup_id(found.info.id):
        raise ArchiveError(f"archive {where} names backup id {found.info.id!r}, which is not a backup id: "
                           "refusing it", subject=where)
    attrs.evolve(store, accept_unsealed=accept_unsealed).authenticate(found)
    if store.exists(found.info.id):
        raise ArchiveError(f"backup {found.info.id} already exists in {store.url}", subject=found.info.id)
    expected = {f"objects/{record.path}": record for record in found.objects}
    declared = sum(record.stored_size for record in found.objects) + first.size
    if declared > max_expansion * archive_size + framing.READ_CHUNK:
        raise ArchiveError(
            f"archive {where} declares {declared} bytes in {archive_size}: more than {max_expansion} times its "
            "size, refusing a decompression bomb", subject=where)
    seen: set[str] = {first.name}
    imported = _Imported(found, progress)
    for member in members:
        _check_member(member, where, max_member_size)
        if member.name in seen:
            raise ArchiveError(f"archive {where}: duplicate member {member.name!r}", subject=member.name)
        seen.add(member.name)
        record = expected.get(member.name)
        if record is None:
            raise ArchiveError(f"archive {where}: member {member.name!r} is not named by its manifest",
                               subject=member.name)
        if member.size != record.stored_size:
            raise ArchiveError(f"archive {where}: member {member.name!r} is {member.size} bytes, its manifest "
                               f"says {record.stored_size}", subject=member.name)
        stream = archive.extractfile(member)
        if stream is None:
            raise ArchiveError(f"archive member {member.name!r} cannot be read", subject=member.name)
        target = store.files.object_path(record)
        name = f"{where}:{member.name}"
        told = _Told(stream, imported)
        if store.files.exists(target):
            drain_checked(told, record, name)  # the archive must still hold what it claims
        else:
            store.put_verified(target, told, record, name)
        imported.object_done()
    missing = sorted(set(expected) - seen)
    if missing:
        raise ArchiveError(f"archive {where} lacks object {missing[0]}", subject=missing[0])
    return found


class _Written(io.BufferedIOBase):
    """The archive's file, write-only, counting the bytes written through it for the progress callback."""

    def __init__(self, file: io.BufferedWriter, objects_total: int, progress: ProgressCallback | None) -> None:
        super().__init__()
        self.file, self.objects_total, self.progress = file, objects_total, progress
        self.objects = self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        written = self.file.write(data)
        if written:
            self.bytes += written
            self.report()
        return written

    def flush(self) -> None:
        self.file.flush()

    def object_done(self) -> None:
        self.objects += 1
        self.report()

    def report(self) -> None:
        if self.progress is not None:
            self.progress(ProgressUpdate("archiving", self.objects, self.objects_total, self.objects,
                                         self.objects_total, self.bytes))


class _Imported:
    """The objects imported and the stored bytes read so far, for the progress callback."""

    def __init__(self, found: Manifest, progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.total, self.bytes_total = len(found.objects), sum(record.stored_size for record in found.objects)
        self.objects = self.bytes = 0
        self._tell()

    def bytes_read(self, count: int) -> None:
        self.bytes += count
        self._tell()

    def object_done(self) -> None:
        self.objects += 1
        self._tell()

    def _tell(self) -> None:
        if self.progress is not None:
            self.progress(ProgressUpdate("importing", self.objects, self.total, self.objects, self.total,
                                         self.bytes, self.bytes_total))


class _Told:
    """An archive member's stream, telling ``imported`` each block read from it: a large object's
    import moves the progress as it goes, not once at its end."""

    def __init__(self, stream: Readable, imported: _Imported) -> None:
        self._stream, self._imported = stream, imported

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        if data:
            self._imported.bytes_read(len(data))
        return data


def _add_member(archive: tarfile.TarFile, name: str, size: int, stream: Any) -> None:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = 0o600
    archive.addfile(member, stream)


def _check_member(member: tarfile.TarInfo, where: str, max_size: int) -> None:
    name = member.name
    if not member.isfile():
        kind = "link" if member.issym() or member.islnk() else "non-file entry"
        raise ArchiveError(f"archive {where}: refusing {kind} {name!r}", subject=name)
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ArchiveError(f"archive {where}: refusing path traversal in member {name!r}", subject=name)
    if name != "manifest.json" and not (name.startswith("objects/") and framing.OBJECT_NAME.match(name[8:])):
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
        return stream.read(member.size)
