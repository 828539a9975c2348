"""The backup manifest: what a backup is, which objects hold it, and the checksum over both.

A manifest is written last, once every object it names is stored; a backup exists exactly
when its manifest does. docs/storage-format.md is the normative description.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
import cattrs.gen

from schemasync_backup.converter import unstructure
from schemasync_backup.display import Card, Shown, human_size
from schemasync_backup.errors import BackupFormatError, ManifestAuthenticationError
from schemasync_backup.formats.backup_id import created_at_of, new_backup_id
from schemasync_backup.formats.data_index import DataIndex, DataSummary
from schemasync_backup.formats.framing import ObjectRecord
from schemasync_backup.plugins.crypto import EncryptionKey, Keyring, manifest_mac

__all__ = ["BackupInfo", "Manifest", "MigrationContext", "Seal", "Status", "created_at_of", "new_backup_id"]

FORMAT_NAME = "schemasync-backup-manifest"
#: Version 2 adds the keyed seal; version 1 manifests are still read (unsealed).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class Status(enum.StrEnum):
    """A backup's state. String-valued: ``Status.COMPLETED == "COMPLETED"``, and JSON holds the plain string."""

    CREATING = "CREATING"
    COMPLETED = "COMPLETED"
    VALIDATING = "VALIDATING"
    FAILED = "FAILED"
    CORRUPTED = "CORRUPTED"


def _status(value: str) -> Status:
    return Status(value)


@attrs.frozen
class MigrationContext:
    """Why a backup was taken: the migration it precedes."""

    plan_hash: str = ""
    source_schema: str = ""
    pre_migration_id: str = ""
    migration_time: str = ""


@attrs.frozen
class BackupInfo(Shown):
    """A backup's metadata, as ``create``, ``get`` and ``list`` return it. Never holds a key."""

    id: str
    database: str
    created_at: str
    created_by: str
    description: str
    tags: dict[str, str]
    status: Status = attrs.field(converter=_status)
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
    #: The data it holds (tables, rows, bytes); None for a schema-only backup.
    data: DataSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def _card(self) -> Card:
        marks = [word for word, on in (("pinned", self.pinned), ("partial", self.partial)) if on]
        facts: list[tuple[str, object]] = [
            ("created", f"{self.created_at} by {self.created_by}" if self.created_by else self.created_at),
            ("size", f"{human_size(self.raw_size)} raw, {human_size(self.stored_size)} stored ({self.compression})"),
            ("encryption", f"{self.encryption} (key {self.key_id})" if self.encryption else "none"),
            ("data", self.data or "schema only"),
            ("schema hash", self.schema_hash),
        ]
        if self.description:
            facts.insert(1, ("description", self.description))
        if self.tags:
            facts.append(("tags", ", ".join(f"{key}={value}" for key, value in sorted(self.tags.items()))))
        if self.migration_context is not None:
            facts.append(("migration", ", ".join(f"{name.replace('_', ' ')} {value}" for name, value
                                                 in attrs.asdict(self.migration_context).items() if value)))
        return Card(f"Backup {self.id} of `{self.database}`: {self.status}"
                    + (f" ({', '.join(marks)})" if marks else ""), tuple(facts), kind="backup")


@attrs.frozen
class UnreadBackupInfo(BackupInfo):
    """A listed backup whose manifest was not read: still being written (CREATING) or unreadable
    (CORRUPTED). Its type says so; only its id, status and the time in its id are known (the other
    fields stay empty, so a listing's JSON keeps one shape)."""

    @classmethod
    def of(cls, backup_id: str, status: str) -> UnreadBackupInfo:
        minted = created_at_of(backup_id)
        return cls(
            id=backup_id, database="", created_at=minted.isoformat(timespec="microseconds") if minted else "",
            created_by="", description="", tags={}, status=status, raw_size=0, stored_size=0, compression="",
            encryption=None, key_id=None, schema_hash="", checksum="", tool_version="", captured_at="",
        )

    def _card(self) -> Card:
        return Card(f"Backup {self.id}: {self.status} (its manifest was not read)",
                    (("created", self.created_at or "unknown"),), kind="backup")


@attrs.frozen
class Seal:
    """A keyed seal: HMAC-SHA256 of the manifest body under a key derived from ``key_id``'s key."""

    key_id: str
    mac: str


@attrs.frozen
class Manifest:
    info: BackupInfo
    #: The snapshot stream first, then its index (where each schema object lies in it).
    objects: tuple[ObjectRecord, ...]
    #: None for an unsealed manifest (written without a key, or format 1).
    seal: Seal | None = None
    #: Whether the seal was verified with a key of the reader's keyring (False: unsealed, or key missing).
    authenticated: bool = False
    #: Whether the recorded checksum matched when it was read (only ``load(verify=False)`` gives False).
    checksum_valid: bool = True
    #: The tables and chunks of the data it holds; None for a schema-only backup.
    data: DataIndex | None = None

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
# Dictionaries hold the plain string, as before Status was an enum.
_converter.register_unstructure_hook(Status, lambda status: status.value)
# The same for a backup without data: its manifest is what it was before data existed.
_converter.register_unstructure_hook(BackupInfo, cattrs.gen.make_dict_unstructure_fn(
    BackupInfo, _converter, data=cattrs.gen.override(omit_if_default=True)))


def _body(manifest: Manifest) -> dict[str, Any]:
    info = _converter.unstructure(manifest.info)
    # The checksum covers the body, so it cannot be part of it; the status is not stored at all.
    del info["checksum"], info["status"]
    body = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "backup": info,
        "objects": _converter.unstructure(manifest.objects),
    }
    if manifest.data is not None:
        body["data"] = _converter.unstructure(manifest.data)
    return body


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sealed_body(manifest: Manifest, found_seal: Seal | None) -> dict[str, Any]:
    body = _body(manifest)
    if found_seal is not None:
        body["seal"] = {"key_id": found_seal.key_id, "mac": found_seal.mac}
    return body


def seal(manifest: Manifest, key: EncryptionKey | None = None) -> Manifest:
    """The manifest with, given a key, its keyed seal (over the body), and its checksum (over
    body and seal, so damage anywhere is found without the key)."""
    found_seal = Seal(key.key_id, manifest_mac(key, _canonical(_body(manifest)))) if key is not None else None
    checksum = hashlib.sha256(_canonical(_sealed_body(manifest, found_seal))).hexdigest()
    return attrs.evolve(manifest, info=attrs.evolve(manifest.info, checksum=checksum), seal=found_seal,
                        authenticated=key is not None, checksum_valid=True)


def dump(manifest: Manifest) -> bytes:
    return _canonical({**_sealed_body(manifest, manifest.seal), "checksum": manifest.info.checksum}) + b"\n"


def load(
    data: bytes,
    where: str,
    *,
    backup_id: str | None = None,
    keyring: Keyring | None = None,
    status: str = Status.COMPLETED,
    verify: bool = True,
) -> Manifest:
    """Parse a stored manifest.

    With ``verify`` its checksum must match. With ``backup_id`` (the name it is stored under) it
    must be that backup's: a manifest copied over another's file is damage, even unverified.
    A seal whose key is in ``keyring`` is verified (ManifestAuthenticationError when it fails,
    unless ``verify`` is off); one whose key is absent leaves ``authenticated`` False, since
    reading metadata needs no key.
    """
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BackupFormatError(f"{where}: damaged manifest (not valid JSON)", subject=where) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise BackupFormatError(f"{where}: not a backup manifest", subject=where)
    if document.get("version") not in READABLE_VERSIONS:
        raise BackupFormatError(
            f"{where}: unsupported manifest version {document.get('version')!r}; upgrade schemasync_backup",
            subject=where,
        )
    recorded = document.pop("checksum", None)
    actual = hashlib.sha256(_canonical(document)).hexdigest()
    stored_seal = document.pop("seal", None) if document["version"] >= 2 else None
    body = _canonical(document)
    if verify and recorded != actual:
        raise BackupFormatError(
            f"{where}: backup validation failed: checksum mismatch (expected: {recorded}, got: {actual})",
            subject=where,
        )
    try:
        info = _converter.structure({**document["backup"], "checksum": recorded or "", "status": status}, BackupInfo)
        objects = _converter.structure(document["objects"], tuple[ObjectRecord, ...])
        found_seal = _converter.structure(stored_seal, Seal) if stored_seal is not None else None
        held = _converter.structure(document["data"], DataIndex) if "data" in document else None
    except (KeyError, TypeError, ValueError, cattrs.BaseValidationError) as exc:
        raise BackupFormatError(f"{where}: damaged manifest ({exc})", subject=where) from None
    if backup_id is not None and info.id != backup_id:
        raise BackupFormatError(
            f"{where}: this manifest belongs to backup {info.id!r}, not to {backup_id}: it was copied or moved "
            "over another backup's manifest; restore the right file or delete this backup",
            subject=backup_id,
        )
    authenticated = False
    if found_seal is not None and keyring is not None and found_seal.key_id in keyring.key_ids:
        authenticated = hmac.compare_digest(manifest_mac(keyring.get(found_seal.key_id), body), found_seal.mac)
        if verify and not authenticated:
            raise ManifestAuthenticationError(
                f"{where}: the manifest failed authentication under key {found_seal.key_id}: it was altered or "
                "forged after it was written; do not restore from it",
                subject=backup_id or info.id,
            )
    return Manifest(info=info, objects=objects, seal=found_seal, authenticated=authenticated,
                    checksum_valid=recorded == actual, data=held)
