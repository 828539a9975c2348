"""The snapshot's JSON form: versioned, stable, and kept out of the model classes.

Format (see docs/snapshot-format.md)::

    {"format": "schemasync-snapshot", "version": 1, "snapshot": {...fields...}}
"""

from __future__ import annotations

import json
from typing import Any

import cattrs

from schemasync_backup.converter import strict_converter
from schemasync_backup.errors import SnapshotFormatError
from schemasync_backup.model.snapshot import Snapshot

FORMAT_NAME = "schemasync-snapshot"
FORMAT_VERSION = 1

_converter = strict_converter()
# Fingerprints say what a server showed of each object when it was captured, not what the schema
# is: a document holds only the schema (an incremental capture from one is a full capture).
_converter.register_unstructure_hook(Snapshot, cattrs.gen.make_dict_unstructure_fn(
    Snapshot, _converter, fingerprints=cattrs.gen.override(omit=True)))
_converter.register_structure_hook(Snapshot, cattrs.gen.make_dict_structure_fn(
    Snapshot, _converter, _cattrs_forbid_extra_keys=True, fingerprints=cattrs.gen.override(omit=True)))


def snapshot_to_document(snapshot: Snapshot) -> dict[str, Any]:
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "snapshot": _converter.unstructure(snapshot)}


def snapshot_to_json(snapshot: Snapshot, *, indent: int | None = None) -> str:
    return json.dumps(snapshot_to_document(snapshot), indent=indent, ensure_ascii=False, sort_keys=True)


def snapshot_from_document(document: object) -> Snapshot:
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise SnapshotFormatError(
            f"not a snapshot document: expected an object with \"format\": \"{FORMAT_NAME}\"",
            subject=type(document).__name__,
        )
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise SnapshotFormatError(f"damaged snapshot document: bad format version {version!r:.40}", subject=version)
    if version > FORMAT_VERSION:
        raise SnapshotFormatError(
            f"unsupported snapshot format version {version}: this schemasync_backup reads versions "
            f"1 to {FORMAT_VERSION}; upgrade schemasync_backup to read it",
            subject=version,
        )
    if not isinstance(document.get("snapshot"), dict):
        raise SnapshotFormatError("damaged snapshot document: no \"snapshot\" object", subject=version)
    try:
        return _converter.structure(document["snapshot"], Snapshot)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
        details = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, cattrs.BaseValidationError) else str(exc)
        raise SnapshotFormatError(f"damaged snapshot document: {details}", subject=version) from None


def snapshot_from_json(text: str | bytes) -> Snapshot:
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotFormatError(f"damaged snapshot document: not valid JSON ({exc})", subject=None) from None
    except RecursionError:
        raise SnapshotFormatError("damaged snapshot document: nested too deeply", subject=None) from None
    return snapshot_from_document(document)
