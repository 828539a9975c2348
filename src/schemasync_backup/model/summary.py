"""Readable summaries of a Snapshot: plain text for terminals, HTML for notebooks."""

from __future__ import annotations

from schemasync_backup.display import Card, Rows
from schemasync_backup.model.snapshot import Snapshot


def counts(snapshot: Snapshot) -> dict[str, int]:
    tables = snapshot.tables
    return {
        "tables": len(tables),
        "columns": sum(len(t.columns) for t in tables),
        "indexes": sum(len(t.indexes) for t in tables),
        "foreign_keys": sum(len(t.foreign_keys) for t in tables),
        "checks": sum(len(t.checks) for t in tables),
        "views": len(snapshot.views),
        "triggers": len(snapshot.triggers),
        "procedures": sum(r.kind == "PROCEDURE" for r in snapshot.routines),
        "functions": sum(r.kind == "FUNCTION" for r in snapshot.routines),
        "events": len(snapshot.events),
    }


def card(snapshot: Snapshot) -> Card:
    server = snapshot.server
    numbers = counts(snapshot)
    return Card(
        f"Snapshot of `{snapshot.database}` on {server.flavor} {server.version} "
        f"({snapshot.charset} / {snapshot.collation}), captured {snapshot.captured_at or 'at an unknown time'}",
        facts=(("schema hash", snapshot.schema_hash),
               ("objects", ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in numbers.items()))),
        notes=tuple(f"{kind}: {', '.join(names[:_NAMES])}{' ...' if len(names) > _NAMES else ''}"
                    for kind, names in _other_objects(snapshot)),
        tables=(Rows("tables", ("table", "columns", "indexes", "foreign keys", "engine", "comment"),
                     [(t.name, len(t.columns), len(t.indexes), len(t.foreign_keys), t.engine, t.comment)
                      for t in snapshot.tables]),),
        kind="snapshot",
    )


def text_summary(snapshot: Snapshot, *, limit: int = 50) -> str:
    return card(snapshot).text(limit=limit)


def html_summary(snapshot: Snapshot, *, limit: int = 200) -> str:
    return card(snapshot).html(limit=limit)


#: Names of each kind but tables that a note lists.
_NAMES = 50


def _other_objects(snapshot: Snapshot) -> list[tuple[str, list[str]]]:
    """Names of everything but tables, by kind, leaving out the kinds with none."""
    found = [
        ("views", [view.name for view in snapshot.views]),
        ("triggers", [trigger.name for trigger in snapshot.triggers]),
        ("procedures", [r.name for r in snapshot.routines if r.kind == "PROCEDURE"]),
        ("functions", [r.name for r in snapshot.routines if r.kind == "FUNCTION"]),
        ("events", [event.name for event in snapshot.events]),
    ]
    return [(kind, names) for kind, names in found if names]
