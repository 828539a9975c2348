"""A snapshot as a backup stores it: JSON Lines, one schema object per line.

    {"format": "schemasync-snapshot-stream", "version": 1, "database": ..., "server": ...}
    {"kind": "table", "item": {...}}
    {"kind": "view", "item": {...}}
    ...

One object per line means a damaged frame costs only the objects whose lines it touches:
partial recovery reads every line that still parses. The capture time is not in the stream
(the manifest has it), so two captures of an unchanged schema give the same bytes and are
stored once.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import cattrs

from schemasync_backup.errors import BackupFormatError
from schemasync_backup.model.memo import IdentityMemo
from schemasync_backup.model.snapshot import (
    CheckConstraint,
    Column,
    Event,
    ForeignKey,
    Index,
    IndexPart,
    Parameter,
    Routine,
    ServerInfo,
    Snapshot,
    Table,
    Trigger,
    View,
)

FORMAT_NAME = "schemasync-snapshot-stream"
FORMAT_VERSION = 1
# Detailed validation errors would only say which field of a damaged line failed; the line is
# reported as a whole anyway, and without them structuring is several times faster.
_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=False)
# Columns and key parts are most of a snapshot's objects, and flat: built straight from their
# dictionaries (an unknown or missing field is still refused, as a TypeError) they decode in a
# fraction of the time cattrs' generic path takes. The stream is authenticated, so its values
# already have their types.
for _flat in (Column, IndexPart):
    _converter.register_structure_hook(_flat, lambda document, kind: kind(**document))
_KINDS: dict[str, type[Any]] = {"table": Table, "routine": Routine, "view": View, "trigger": Trigger, "event": Event}
_FIELDS = {"table": "tables", "routine": "routines", "view": "views", "trigger": "triggers", "event": "events"}


@attrs.frozen
class ContentEntry:
    """Where one schema object's line lies in the plaintext: lets a finding name what it hit."""

    kind: str
    name: str
    offset: int
    length: int


def _layout() -> str:
    """What decides an object's line besides its values: every kind's fields, in order, with defaults."""
    kinds = sorted({*_KINDS.values(), Column, Index, IndexPart, ForeignKey, CheckConstraint, Parameter},
                   key=lambda kind: kind.__name__)
    fields = [[kind.__name__, [[field.name, repr(field.default)] for field in attrs.fields(kind)]] for kind in kinds]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


#: In the header: a stream of this layout has exactly the lines this version writes for its objects.
_LAYOUT = _layout()
#: Each object's line, by identity (context: its kind): written once, or taken from the stream it was
#: read from when that stream has this layout. A pre-rollback backup of the schema a plan read from its
#: backup so encodes only what changed.
_LINES: IdentityMemo[bytes] = IdentityMemo()


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode_snapshot(snapshot: Snapshot) -> tuple[bytes, tuple[ContentEntry, ...]]:
    lines = [
        _line({
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "database": snapshot.database,
            "charset": snapshot.charset,
            "collation": snapshot.collation,
            "server": _converter.unstructure(snapshot.server),
            "layout": _LAYOUT,
        })
    ]
    contents = []
    offset = len(lines[0])
    for kind, field in _FIELDS.items():
        for item in getattr(snapshot, field):
            line = _LINES.value(item, kind, functools.partial(_object_line, kind, item))
            name = f"{item.kind} {item.name}" if kind == "routine" else item.name
            contents.append(ContentEntry(kind, name, offset, len(line)))
            lines.append(line)
            offset += len(line)
    return b"".join(lines), tuple(contents)


def _object_line(kind: str, item: object) -> bytes:
    return _line({"kind": kind, "item": _converter.unstructure(item)})


def encode_contents(contents: tuple[ContentEntry, ...], fingerprints: Mapping[str, str] | None = None) -> bytes:
    """The index of a snapshot stream: where each schema object's line lies, and the fingerprints
    of the capture (:mod:`.capture.fingerprints`), which are not schema and so not in the stream.

    Stored as its own (encrypted) object: it names every table, which an encrypted backup must
    not show in its manifest, and it is shared by every backup of an unchanged schema.
    """
    document: dict[str, Any] = {"format": f"{FORMAT_NAME}-index", "version": FORMAT_VERSION,
                                "entries": [[entry.kind, entry.name, entry.offset, entry.length] for entry in contents]}
    if fingerprints:
        document["fingerprints"] = dict(fingerprints)
    return _line(document)


def decode_fingerprints(data: bytes) -> dict[str, str]:
    """The fingerprints an index holds; none from an index written before they existed, or damaged
    (they only save reading: without them the next capture reads everything)."""
    try:
        found = json.loads(data).get("fingerprints") or {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {key: value for key, value in found.items() if isinstance(key, str) and isinstance(value, str)}


def decode_contents(data: bytes) -> tuple[ContentEntry, ...]:
    try:
        document = json.loads(data)
        return tuple(ContentEntry(str(kind), str(name), int(offset), int(length))
                     for kind, name, offset, length in document["entries"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BackupFormatError("damaged snapshot index", subject=None) from None


def _lines(data: bytes | bytearray) -> Iterator[bytes | bytearray]:
    # One line at a time: a large snapshot is not held twice (its bytes and a list of its lines).
    start = 0
    while (end := data.find(b"\n", start)) >= 0:
        yield data[start:end]
        start = end + 1
    yield data[start:]


def decode_snapshot(data: bytes | bytearray, captured_at: str, *, lenient: bool = False) -> Snapshot:
    """The snapshot from its stream; with ``lenient``, lines that do not parse are skipped."""
    lines = _lines(data)
    try:
        header = json.loads(next(lines))
    except (ValueError, UnicodeDecodeError):
        raise BackupFormatError("damaged snapshot stream: the header line does not parse", subject=None) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise BackupFormatError("not a snapshot stream", subject=None)
    if header.get("version") != FORMAT_VERSION:
        raise BackupFormatError(
            f"unsupported snapshot stream version {header.get('version')!r}: upgrade schemasync_backup",
            subject=header.get("version"),
        )
    items: dict[str, list[Any]] = {field: [] for field in _FIELDS.values()}
    same_layout = header.get("layout") == _LAYOUT
    for number, line in enumerate(lines, start=2):
        if not line:
            continue
        try:
            document = json.loads(line)
            kind = document["kind"]
            item = _converter.structure(document["item"], _KINDS[kind])
            items[_FIELDS[kind]].append(item)
            if same_layout:
                _LINES.keep(item, kind, bytes(line) + b"\n")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, cattrs.BaseValidationError):
            if lenient:
                continue
            raise BackupFormatError(f"damaged snapshot stream: line {number} does not parse", subject=number) from None
    try:
        server = _converter.structure(header["server"], ServerInfo)
        return Snapshot(
            database=header["database"],
            charset=header["charset"],
            collation=header["collation"],
            server=server,
            captured_at=captured_at,
            tables=tuple(items["tables"]), routines=tuple(items["routines"]), views=tuple(items["views"]),
            triggers=tuple(items["triggers"]), events=tuple(items["events"]),
        )
    except (KeyError, TypeError, cattrs.BaseValidationError):
        raise BackupFormatError("damaged snapshot stream: the header line is incomplete", subject=None) from None
