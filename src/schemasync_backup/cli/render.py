"""Rendering results for people: rows, tables, validation and retention texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemasync_backup.cli import health
from schemasync_backup.cli.console import human_size, table
from schemasync_backup.cli.context import ExitCode, Outcome
from schemasync_backup.formats.manifest import BackupInfo
from schemasync_backup.validate.validator import BackupValidationError, ValidationResult

# --- rendering helpers ----------------------------------------------------------------------------------


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(tags.items()))


def _info_dict(info: BackupInfo) -> dict[str, Any]:
    return info.to_dict()


def _kinds(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "unknown (the index cannot be read)"
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def _backup_rows(backups: Sequence[BackupInfo]) -> str:
    if not backups:
        return "no backups"
    return table([(info.id, info.database, _when(info.created_at), info.status, human_size(info.stored_size),
                   _data(info), "yes" if info.encryption else "no", _tags(info.tags), info.description)
                  for info in backups],
                 ("ID", "DATABASE", "CREATED (UTC)", "STATUS", "SIZE", "DATA", "ENCRYPTED", "TAGS", "DESCRIPTION"))


def _data(info: BackupInfo) -> str:
    """What data a backup holds, in a listing's few characters."""
    if info.data is None:
        return "schema only"
    return f"{info.data.mode}: {info.data.tables} tables, {info.data.rows:,} rows"


def _validation_text(result: ValidationResult, *, verbose: bool = False) -> str:
    """The verdict, its findings, and the parse checks as one line of counts (``verbose``: and every
    statement sqlglot could not parse)."""
    depth = "full" if result.deep else "integrity"
    head = (f"{result.backup_id}: {result.verdict} ({depth} check, "
            f"{result.objects_checked} object(s), {human_size(result.bytes_checked)} checked)")
    lines = [head, *(f"  error: {finding}" for finding in result.errors),
             *(f"  warning: {finding}" for finding in result.warnings)]
    if result.parse_checked or result.parse_not_judged:
        listing = "" if verbose or not result.parse_failed else " (--verbose lists them)"
        lines.append(f"  parse checks: {result.parse_checked} judged ({result.parse_cached} cached), "
                     f"{result.parse_failed} not parsed by sqlglot{listing}, {result.parse_not_judged} not judged "
                     "(no grammar: trigger, routine and event bodies)")
    if verbose:
        lines += [f"  parse: {finding}" for finding in result.parse_failures]
    return "\n".join(lines)


def _failed_check(result: ValidationResult) -> ExitCode:
    """3 for proven damage; 1 when the check could not be made (a key is missing: nothing is damaged)."""
    return ExitCode.VALIDATION if result.damaged else ExitCode.ERROR


def _failure(result: ValidationResult) -> str | None:
    try:
        result.raise_for_errors()
    except BackupValidationError as exc:
        return exc.message
    return None


def _checks_outcome(checks: Sequence[health.Check], failure: str, code: int = ExitCode.VALIDATION) -> Outcome:
    text = "\n".join(f"{check.status.upper():<8} {check.name}: {check.message}" for check in checks)
    data = {"status": "error" if any(c.status == health.ERROR for c in checks) else "ok",
            "checks": [check.to_dict() for check in checks]}
    errors = [check for check in checks if check.status == health.ERROR]
    if errors:
        return Outcome(data, text, code, f"{failure}: {errors[0].message}")
    return Outcome(data, text)


def _yaml_dump(document: Any) -> str:
    import importlib

    text: str = importlib.import_module("yaml").safe_dump(document, sort_keys=False, default_flow_style=False)
    return text.rstrip()


def _dicts_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    return table([[_cell(row.get(column)) for column in columns] for row in rows], [c.upper() for c in columns])


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return "-" if value is None else str(value)


def _retention_text(report: Any) -> str:
    data = report.to_dict()
    verb = "to remove" if report.dry_run else "removed"
    lines = [_dicts_table(data["decisions"], ("backup_id", "database", "created_at", "action", "rule"))
             if data["decisions"] else "no backups",
             f"{data['keep_count']} kept, {data['remove_count']} {verb}"]
    if report.prune is not None:
        pruned = report.prune.to_dict()
        lines.append("prune: " + ", ".join(f"{key}={value}" for key, value in pruned.items()
                                           if not isinstance(value, list | dict)))
    if report.prune_skipped:
        lines.append(f"prune skipped: {report.prune_skipped}")
    return "\n".join(lines)
