"""Numbers and reports about the backups in a store: per-backup stats, store totals, a full report,
and validating many backups under a time budget. Plain dicts out, ready for JSON.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from schemasync_backup.converter import report, unstructure
from schemasync_backup.errors import SchemaSyncBackupError
from schemasync_backup.formats.manifest import BackupInfo, Status
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.validator import ValidationResult, Validator


def _ratio(raw: int, stored: int) -> float | None:
    return round(raw / stored, 3) if stored else None


def _savings(raw: int, stored: int) -> float | None:
    return round(100 * (1 - stored / raw), 1) if raw else None


def backup_stats(store: BackupStore, backup_id: str) -> dict[str, Any]:
    """Sizes, compression and what the backup holds (``schema_objects`` is None when its index cannot be
    read: damaged, or encrypted with a key not configured)."""
    found = store.manifest(backup_id, verify=False)
    info = found.info
    try:
        kinds: Counter[str] | None = Counter(entry.kind for entry in store.contents(found))
    except (SchemaSyncBackupError, FileNotFoundError):
        kinds = None  # the index is damaged, or encrypted with a key we do not have
    return {
        "id": info.id,
        "database": info.database,
        "created_at": info.created_at,
        "status": info.status,
        "raw_size": info.raw_size,
        "stored_size": info.stored_size,
        "compression": info.compression,
        "compression_ratio": _ratio(info.raw_size, info.stored_size),
        "savings_percent": _savings(info.raw_size, info.stored_size),
        "encryption": info.encryption,
        "key_id": info.key_id,
        "objects": len(found.objects),
        "frames": sum(len(record.frames) for record in found.objects),
        "schema_objects": dict(sorted(kinds.items())) if kinds is not None else None,
    }


def store_stats(backups: Iterable[BackupInfo]) -> dict[str, Any]:
    """Totals over backups (as ``store.list()`` returns them), overall and per database."""
    rows = [info for info in backups if info.status != Status.CREATING]
    raw = sum(info.raw_size for info in rows)
    stored = sum(info.stored_size for info in rows)
    per_database: dict[str, dict[str, Any]] = {}
    for info in rows:
        entry = per_database.setdefault(info.database or "?", {"backup_count": 0, "raw_size": 0, "stored_size": 0,
                                                               "newest": None, "oldest": None})
        entry["backup_count"] += 1
        entry["raw_size"] += info.raw_size
        entry["stored_size"] += info.stored_size
        entry["newest"] = max(filter(None, [entry["newest"], info.created_at]))
        entry["oldest"] = min(filter(None, [entry["oldest"], info.created_at]))
    return {
        "backup_count": len(rows),
        "raw_size": raw,
        "stored_size": stored,
        "compression_ratio": _ratio(raw, stored),
        "savings_percent": _savings(raw, stored),
        "by_status": dict(sorted(Counter(info.status for info in backups).items())),
        "by_database": dict(sorted(per_database.items())),
    }


@report("checked", "valid", "invalid", "skipped", "seconds", "results",
        checked=lambda run: len(run.results), valid=lambda run: len(run.results) - len(run.invalid),
        invalid=lambda run: len(run.invalid), seconds=lambda run: round(run.seconds, 3),
        results=lambda run: [result_dict(result) for result in run.results])
@attrs.frozen
class ValidationRun:
    """What validating many backups found; ``skipped`` ran out of time before they were checked."""

    results: tuple[ValidationResult, ...]
    skipped: tuple[str, ...]
    seconds: float

    @property
    def invalid(self) -> list[ValidationResult]:
        return [result for result in self.results if not result.valid]

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


def validate_many(
    check: Callable[[str], ValidationResult],
    backup_ids: list[str],
    *,
    timeout: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ValidationRun:
    """Run ``check`` (``Validator.validate`` or ``integrity_check``) on each id; one bad backup never stops
    the rest. After ``timeout`` seconds no new check starts; the rest are reported as skipped."""
    started = time.monotonic()
    results: list[ValidationResult] = []
    for index, backup_id in enumerate(backup_ids):
        if timeout is not None and time.monotonic() - started > timeout:
            return ValidationRun(tuple(results), tuple(backup_ids[index:]), time.monotonic() - started)
        results.append(check(backup_id))
        if progress is not None:
            progress(index + 1, len(backup_ids), backup_id)
    return ValidationRun(tuple(results), (), time.monotonic() - started)


def result_dict(result: ValidationResult) -> dict[str, Any]:
    """A ValidationResult as JSON-ready data (findings as message, object path and schema objects)."""
    data = attrs.asdict(result, recurse=True)
    for key in ("errors", "warnings", "parse_failures"):
        data[key] = [{"message": str(finding), "object_path": finding.object_path,
                      "schema_objects": list(finding.schema_objects), "kind": finding.kind.value}
                     for finding in getattr(result, key)]
    data["damaged"] = result.damaged
    data["parse_failed"] = result.parse_failed
    data["keys_needed"] = list(result.keys_needed)
    return data


def backup_report(
    store: BackupStore,
    *,
    database: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Every backup with its metadata and a key-free integrity check, and the store's totals."""
    backups = store.list(database=database)
    validator = Validator(store)
    checkable = [info.id for info in backups if info.status != Status.CREATING]
    run = validate_many(validator.integrity_check, checkable, progress=progress)
    by_id = {result.backup_id: result for result in run.results}
    entries = []
    for info in backups:
        result = by_id.get(info.id)
        entries.append({
            **info.to_dict(),
            "integrity": None if result is None else {
                "valid": result.valid,
                "errors": [str(finding) for finding in result.errors],
            },
        })
    from schemasync_backup import __version__

    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool_version": __version__,
        "storage": store.url,
        "database": database,
        "summary": {**store_stats(backups), "intact": len(run.results) - len(run.invalid),
                    "damaged": len(run.invalid)},
        "backups": entries,
    }
