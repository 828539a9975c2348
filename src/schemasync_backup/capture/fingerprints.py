"""Fingerprints: what proves a schema object unchanged since an earlier capture without reading it.

Every capture reads one ``information_schema`` row per object (one query per kind) before it
reads any definition, and keeps a fingerprint of each row that is conclusive. An incremental
capture (``Snapshot.capture(..., known=earlier)``) reads in full only the objects whose
fingerprint is new, differs from the earlier one, or is not conclusive, and takes the rest from
``earlier``: the same objects a full capture would build, at the cost of what changed.

What makes a row conclusive:

- An InnoDB table's row with its ``CREATE_TIME``: MariaDB reports the change time of the table's
  ``.frm`` file, which every ALTER (instant ones too), RENAME and re-CREATE replaces. The time
  has one-second resolution, so it counts only when it is earlier than the second the capture
  began in (``as_of``): any later change, even within that second, shows a later time. Other
  engines (Aria, MyISAM) keep their creation time across ALTER and RENAME, and a sequence keeps
  its options in its one row, not in its definition file: never conclusive.
- A table's text names the tables its foreign keys reference as they are now (InnoDB follows a
  rename of the referenced table, or of its columns, without touching the referencing table's
  file), so a table is read again whenever a table it references is, or lies in another database.
- A view's row (stored text, definer, security, algorithm, check option, character sets) is all
  that SHOW CREATE VIEW prints: conclusive as it is, so a view replaced by the same text is the
  same view.
- An event's row with its alteration time: SHOW CREATE EVENT is rebuilt from what the row shows,
  and the time (the table rule) guards what it might not.
- Triggers and routines: never conclusive. Their texts keep spacing and comments no row shows, so
  only a time could prove them unchanged, and their times are the changing session's clock, which
  ``SET timestamp`` moves (replicas and binlog replays do): a re-created trigger or routine can show
  its predecessor's very row. A RENAME TABLE also rewrites its triggers' texts, not their rows.

Each fingerprint also hashes where and how it was read (server host, port and data directory, the
database, the session's time zone, which SHOW CREATE uses for TIMESTAMP defaults, and sql_mode):
one from another database, server or session setting never matches. A fingerprint is never
guessed: an object without one is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from schemasync_backup.model.snapshot import Event, Routine, Snapshot, Table, Trigger, View, key_of

#: The extra information_schema values a fingerprint reads, as (column alias, SQL expression),
#: taken in a session whose time zone is UTC so that a time is one instant.
TABLE_TIME = {"FP_TIME": "UNIX_TIMESTAMP(CREATE_TIME)"}
EVENT_TIME = {"FP_TIME": "UNIX_TIMESTAMP(LAST_ALTERED)"}
#: Table kinds and engines whose CREATE_TIME changes with every change of their definition.
_TIMED_KINDS = frozenset({"BASE TABLE", "SYSTEM VERSIONED"})
_TIMED_ENGINES = frozenset({"innodb"})

#: sql_mode flags that only judge data and statements, never change how SHOW CREATE prints: a
#: rollback's own session sets some of them, and its fingerprints still match the plan's.
_UNSHOWN_MODES = frozenset({
    "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "ERROR_FOR_DIVISION_BY_ZERO", "NO_AUTO_CREATE_USER",
    "NO_ENGINE_SUBSTITUTION", "NO_AUTO_VALUE_ON_ZERO", "NO_ZERO_DATE", "NO_ZERO_IN_DATE", "ALLOW_INVALID_DATES",
    "ONLY_FULL_GROUP_BY", "NO_DIR_IN_CREATE", "TRADITIONAL", "",
})

SchemaObject = Table | Routine | View | Trigger | Event


@attrs.frozen
class Scope:
    """Where and when a capture read its rows; part of every fingerprint it takes."""

    digest: bytes
    #: The server's clock (Unix seconds) when the capture began: later changes show later times.
    as_of: int

    @classmethod
    def of(cls, settings: Mapping[str, Any], database: str, as_of: int) -> Scope:
        shown = {**settings, "sql_mode": ",".join(
            sorted(set(str(settings.get("sql_mode") or "").upper().split(",")) - _UNSHOWN_MODES))}
        seen = json.dumps([database, *(str(shown[name]) for name in sorted(shown))])
        return cls(hashlib.sha256(seen.encode()).digest(), as_of)

    def fingerprint(self, row: Mapping[str, Any], *, timed: bool = True) -> str | None:
        """The fingerprint of one object's row, or None when the row proves nothing."""
        if timed:
            moment = row.get("FP_TIME")
            if moment is None or float(moment) >= self.as_of:
                return None
        text = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(self.digest + text.encode()).hexdigest()


def table_fingerprint(scope: Scope, row: Mapping[str, Any]) -> str | None:
    if row["TABLE_TYPE"] not in _TIMED_KINDS or str(row.get("ENGINE") or "").lower() not in _TIMED_ENGINES:
        return None
    return scope.fingerprint(row)


def reusable(known: Snapshot | None, fingerprints: Mapping[str, str]) -> dict[str, SchemaObject]:
    """The objects of ``known`` that the live ``fingerprints`` prove unchanged, by object key."""
    if known is None or not known.fingerprints:
        return {}
    same = {key: item for key, item in known.keyed_objects()
            if key in fingerprints and known.fingerprints.get(key) == fingerprints[key]}
    # A table's foreign keys print the referenced tables as they are now: read it again with them.
    return {key: item for key, item in same.items()
            if not isinstance(item, Table) or all(fk.referenced_schema is None and key_of("table", fk.referenced_table)
                                                  in same for fk in item.foreign_keys)}
