"""The backup manifest: what a backup is, which objects hold it, and the checksum over both.

A manifest is written last, once every object it names is stored; a backup exists exactly
when its manifest does. docs/storage-format.md is the normative description.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs
import cattrs.gen

from .errors import BackupFormatError
from .framing import ObjectRecord

FORMAT_NAME = "schemasync-backup-manifest"
FORMAT_VERSION = 1
BACKUP_ID = re.compile(r"^backup-\d{8}-\d{6}-[0-9a-f]{8}$")


class Status:
    CREATING = "CREATING"
    COMPLETED = "COMPLETED"
    VALIDATING = "VALIDATING"
    FAILED = "FAILED"
    CORRUPTED = "CORRUPTED"


def new_backup_id(now: datetime) -> str:
    return f"backup-{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


def created_at_of(backup_id: str) -> datetime | None:
    """The UTC time an id was minted at, from the id alone (lets list() skip reading manifests)."""
    if not BACKUP_ID.match(backup_id):
        return None
    return datetime.strptime(backup_id[7:22], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


@attrs.frozen
class MigrationContext:
    """Why a backup was taken: the migration it precedes."""

    plan_hash: str = ""
    source_schema: str = ""
    pre_migration_id: str = ""
    migration_time: str = ""


@attrs.frozen
class BackupInfo:
    """A backup's metadata, as ``create``, ``get`` and ``list`` return it. Never holds a key."""

    id: str
    database: str
    created_at: str
    created_by: str
    description: str
    tags: dict[str, str]
    status: str
    raw_size: int
    stored_size: int
    compression: str
    encryption: str | None
    key_id: str | None
    schema_hash: str
    checksum: str
    tool_version: str
    captured_at: str
    migration_context: MigrationContext | None = None
    pinned: bool = False
    #: A salvaged backup (``partial_recovery``): it may lack objects the source held, so a
    #: rollback to it never drops a live object it does not hold unless forced.
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _converter.unstructure(self)  # type: ignore[no-any-return]


@attrs.frozen
class Manifest:
    info: BackupInfo
    #: The snapshot stream first, then its index (where each schema object lies in it).
    objects: tuple[ObjectRecord, ...]

    @property
    def snapshot_object(self) -> ObjectRecord:
        return self.objects[0]

    @property
    def index_object(self) -> ObjectRecord | None:
        return self.objects[1] if len(self.objects) > 1 else None


_converter = cattrs.Converter(forbid_extra_keys=True)
# A record stores "stored_suffix" only when true, so manifests without re-encoded objects (and
# their checksums) are byte for byte what they were before the field existed.
_converter.register_unstructure_hook(ObjectRecord, cattrs.gen.make_dict_unstructure_fn(
    ObjectRecord, _converter, stored_suffix=cattrs.gen.override(omit_if_default=True)))


def _body(manifest: Manifest) -> dict[str, Any]:
    info = _converter.unstructure(manifest.info)
    # The checksum covers the body, so it cannot be part of it; the status is not stored at all.
    del info["checksum"], info["status"]
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "backup": info,
        "objects": _converter.unstructure(manifest.objects),
    }


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum_of(manifest: Manifest) -> str:
    return hashlib.sha256(_canonical(_body(manifest))).hexdigest()


def seal(manifest: Manifest) -> Manifest:
    """The manifest with its checksum filled in."""
    return attrs.evolve(manifest, info=attrs.evolve(manifest.info, checksum=checksum_of(manifest)))


def dump(manifest: Manifest) -> bytes:
    document = {**_body(manifest), "checksum": manifest.info.checksum}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def load(data: bytes, where: str, *, status: str = Status.COMPLETED, verify: bool = True) -> Manifest:
    """Parse a stored manifest; with ``verify`` its checksum must match."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BackupFormatError(f"{where}: damaged manifest (not valid JSON)", subject=where) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise BackupFormatError(f"{where}: not a backup manifest", subject=where)
    if document.get("version") != FORMAT_VERSION:
        raise BackupFormatError(
            f"{where}: unsupported manifest version {document.get('version')!r}; upgrade schemasync_backup",
            subject=where,
        )
    recorded = document.pop("checksum", None)
    actual = hashlib.sha256(_canonical(document)).hexdigest()
    if verify and recorded != actual:
        raise BackupFormatError(
            f"{where}: backup validation failed: checksum mismatch (expected: {recorded}, got: {actual})",
            subject=where,
        )
    try:
        info = _converter.structure({**document["backup"], "checksum": recorded or "", "status": status}, BackupInfo)
        return Manifest(
            info=info,
            objects=_converter.structure(document["objects"], tuple[ObjectRecord, ...]),
        )
    except (KeyError, TypeError, ValueError, cattrs.BaseValidationError) as exc:
        raise BackupFormatError(f"{where}: damaged manifest ({exc})", subject=where) from None
