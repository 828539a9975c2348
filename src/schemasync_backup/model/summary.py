"""Readable summaries of a Snapshot: plain text for terminals, HTML for notebooks."""

from __future__ import annotations

from html import escape

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


def _headline(snapshot: Snapshot) -> list[str]:
    server = snapshot.server
    numbers = counts(snapshot)
    return [
        f"Snapshot of `{snapshot.database}` on {server.flavor} {server.version} "
        f"({snapshot.charset} / {snapshot.collation}), captured {snapshot.captured_at or 'at an unknown time'}",
        f"schema hash {snapshot.schema_hash}",
        ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in numbers.items()),
    ]


def text_summary(snapshot: Snapshot, *, limit: int = 50) -> str:
    lines = _headline(snapshot)
    width = max((len(t.name) for t in snapshot.tables[:limit]), default=0)
    for table in snapshot.tables[:limit]:
        extras = [f"{len(table.columns)} columns", f"{len(table.indexes)} indexes"]
        if table.foreign_keys:
            extras.append(f"{len(table.foreign_keys)} foreign keys")
        if table.partitioning:
            extras.append("partitioned")
        lines.append(f"  {table.name:<{width}}  {', '.join(extras)}  {table.engine or ''}".rstrip())
    if len(snapshot.tables) > limit:
        lines.append(f"  ... and {len(snapshot.tables) - limit} more tables")
    for kind, names in _other_objects(snapshot):
        shown = ", ".join(names[:limit])
        lines.append(f"  {kind}: {shown}{' ...' if len(names) > limit else ''}")
    return "\n".join(lines)


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


def html_summary(snapshot: Snapshot, *, limit: int = 200) -> str:
    head = "".join(f"<div>{escape(line)}</div>" for line in _headline(snapshot))
    rows = "".join(
        f"<tr><td><code>{escape(t.name)}</code></td><td>{len(t.columns)}</td><td>{len(t.indexes)}</td>"
        f"<td>{len(t.foreign_keys)}</td><td>{escape(t.engine or '')}</td><td>{escape(t.comment)}</td></tr>"
        for t in snapshot.tables[:limit]
    )
    more = f"<div>... and {len(snapshot.tables) - limit} more tables</div>" if len(snapshot.tables) > limit else ""
    table = (
        "<table><thead><tr><th>table</th><th>columns</th><th>indexes</th><th>foreign keys</th>"
        f"<th>engine</th><th>comment</th></tr></thead><tbody>{rows}</tbody></table>{more}"
    )
    others = "".join(
        f"<div>{kind}: {', '.join(f'<code>{escape(name)}</code>' for name in names[:limit])}"
        f"{' ...' if len(names) > limit else ''}</div>"
        for kind, names in _other_objects(snapshot)
    )
    return f"<div class=\"schemasync-snapshot\">{head}{table}{others}</div>"
