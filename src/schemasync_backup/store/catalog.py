"""What the manifests name: every manifest read in one batch, the objects they reference, and the
addresses an unreadable manifest may still protect (a prune never unprotects on a guess)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from schemasync_backup.errors import (
    BackupFormatError,
    EncryptionKeyError,
    IntegrityError,
    UnsealedBackupError,
)
from schemasync_backup.formats import manifest
from schemasync_backup.formats.backup_id import is_backup_id
from schemasync_backup.formats.framing import OBJECT_NAME
from schemasync_backup.formats.manifest import Manifest

if TYPE_CHECKING:
    from schemasync_backup.store.store import BackupStore

#: The store-wide lock prune and optimize hold (relative to the store's root).


_ADDRESS = re.compile(rb"[0-9a-f]{64}")


# --- what the manifests name ---------------------------------------------------------------------


@attrs.frozen
class Catalog:
    manifests: dict[str, Manifest]
    #: Manifests that do not even parse: the addresses in their raw bytes stay protected.
    unreadable: dict[str, bytes]
    #: Manifests that parse but whose checksum does not verify.
    unverified: frozenset[str]

    def referenced(self, store: BackupStore) -> set[str]:
        return {store.files.object_path(record) for found in self.manifests.values() for record in found.objects}

    def protected_addresses(self) -> set[str]:
        return {match.decode() for data in self.unreadable.values() for match in _ADDRESS.findall(data)}


def _trusted(store: BackupStore, data: bytes, path: str, backup_id: str) -> bool:
    """Whether a manifest may be rewritten (and so re-sealed) here: bound to its file and authenticated."""
    try:
        store.authenticate(manifest.load(data, path, backup_id=backup_id, keyring=store.keyring))
    except (BackupFormatError, IntegrityError, EncryptionKeyError, UnsealedBackupError):
        return False
    return True


def read_catalog(store: BackupStore) -> Catalog:
    """Every manifest, read in one batch. A manifest that cannot be read aborts (never 'unprotects')."""
    # Every *.json counts, even one not named like a backup: its objects stay protected.
    ids = [name.removesuffix(".json") for name in store.files.listdir("manifests") if name.endswith(".json")]
    paths = {store.files.path("manifests", f"{backup_id}.json"): backup_id for backup_id in ids}
    raw: Mapping[str, Any] = {}
    if paths:
        with store.files.io("read backup manifests", store.files.path("manifests")):
            raw = store.fs.cat(list(paths), on_error="return")
    manifests: dict[str, Manifest] = {}
    unreadable: dict[str, bytes] = {}
    unverified: set[str] = set()
    for path, backup_id in paths.items():
        data = raw.get(path) if isinstance(raw, dict) else None
        if not isinstance(data, bytes):
            try:  # one by one, so that a failure other than "deleted since the listing" is raised
                data = store.files.read(path, "read backup manifest")
            except FileNotFoundError:
                continue
        try:
            found = manifest.load(data, path, verify=False)
        except BackupFormatError:
            unreadable[backup_id] = bytes(data)
            continue
        if not is_backup_id(backup_id):
            unreadable[backup_id] = bytes(data)
            continue
        if not _trusted(store, data, path, backup_id):
            unverified.add(backup_id)
        manifests[backup_id] = found
        if not found.checksum_valid:
            unverified.add(backup_id)
    return Catalog(manifests, unreadable, frozenset(unverified))


def stored_objects(store: BackupStore) -> dict[str, int]:
    """Every object file (full path -> stored size), in one recursive listing."""
    folder = store.files.path("objects")
    with store.files.io("list backup objects", folder):
        try:
            found = store.fs.find(folder, detail=True)
        except FileNotFoundError:
            return {}
    objects = {}
    for path, info in found.items():
        if info.get("type", "file") != "file":
            continue
        if OBJECT_NAME.match(store.files.relative(path).removeprefix("objects/")):
            objects[path] = int(info.get("size") or 0)
    return objects


def address_of(store: BackupStore, path: str) -> str:
    match = OBJECT_NAME.match(store.files.relative(path).removeprefix("objects/"))
    return match.group(1) if match else ""
