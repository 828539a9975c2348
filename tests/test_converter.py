"""The one converter: every report's ``to_dict()`` is what the hand-written ones returned, key for key.

The old ``to_dict`` bodies are frozen here (``OLD``, verbatim but for nested calls, which go through
the frozen copies too). Every object is built from a real run where that is easy (a store on
tmp_path with backups: usage, health, prune, optimize, retention, validation; a plan from two
snapshots) and by hand with every optional part filled, and both outputs must dump to the same
JSON text: same keys, same order, same values.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from schemasync_backup.cli.health import Check, HealthReport
from schemasync_backup.cli.reports import ValidationRun, result_dict, validate_many
from schemasync_backup.converter import unstructure
from schemasync_backup.formats.manifest import BackupInfo, MigrationContext
from schemasync_backup.model.diff import SchemaDiff, diff
from schemasync_backup.model.durations import format_duration
from schemasync_backup.model.snapshot import Column, ServerInfo, Snapshot, Table
from schemasync_backup.rollback.plan import Risk, RollbackPlan, RollbackStep, build_steps
from schemasync_backup.rollback.planner import ExecutionResult, RecoveryInfo, RollbackValidation
from schemasync_backup.store import maintenance
from schemasync_backup.store.locks import LockHolder
from schemasync_backup.store.maintenance import (
    BackupUsage,
    DatabaseSpan,
    DatabaseUsage,
    ObjectOptimization,
    OptimizeReport,
    ProbeResult,
    PruneResult,
    StorageHealth,
    UsageReport,
)
from schemasync_backup.store.retention import RetentionDecision, RetentionPolicy, RetentionReport
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.validator import Validator

# --- the hand-written to_dicts, frozen --------------------------------------------------------------


def _asdict(obj: Any) -> dict[str, Any]:
    return attrs.asdict(obj)


def _plain(_: object, __: object, value: object) -> object:
    import enum

    return value.value if isinstance(value, enum.Enum) else value


def old_step(self: RollbackStep) -> dict[str, Any]:
    return {
        "phase": self.phase.value, "object_kind": self.object_kind, "object_name": self.object_name,
        "sql": self.sql, "session": list(self.session), "statements": list(self.statements),
        "destructive": self.destructive,
        "warning": self.warning, "risks": [attrs.asdict(risk) for risk in self.risks],
        "data": None, "columns": list(self.columns),
    }


def old_plan(self: RollbackPlan) -> dict[str, Any]:
    return {
        "backup_id": self.backup_id, "database": self.database, "live_hash": self.live_hash,
        "target_hash": self.target_hash, "created_at": self.created_at, "notes": list(self.notes),
        "preflight": list(self.preflight),
        "rehearsal": {**attrs.asdict(self.rehearsal), "status": self.rehearsal.status.value},
        "warnings": self.warnings,
        "destructive_steps": len(self.destructive_steps), "steps": [old_step(step) for step in self.steps],
    }


def old_diff(self: SchemaDiff) -> dict[str, Any]:
    return {
        "a_hash": self.a_hash,
        "b_hash": self.b_hash,
        "identical": self.is_empty,
        "changes": [attrs.asdict(change, value_serializer=_plain) for change in self.changes],
    }


def old_validation(self: RollbackValidation) -> dict[str, Any]:
    return {"backup_id": self.backup_id, "database": self.database, "matches": self.matches,
            "live_hash": self.live_hash, "backup_hash": self.backup_hash,
            "differences": old_diff(self.differences),
            # Issue 13 added the data comparison (None: no data compared).
            "data": None if self.data is None else self.data.to_dict(), "data_matches": self.data_matches}


def old_recovery(self: RecoveryInfo) -> dict[str, Any]:
    return {"backup_id": self.backup_id, "run_id": self.run_id, "status": self.status,
            "pre_rollback_backup_id": self.pre_rollback_backup_id, "steps_done": self.done,
            "failed_step": self.failed_step, "error": self.error, "steps": list(self.steps),
            # Appended by issue 15: whether a rollback ran at all, and the text the command line prints.
            "ran": self.ran, "summary": str(self)}


def old_check(self: Check) -> dict[str, Any]:
    return {"name": self.name, "status": self.status, "message": self.message, "details": self.details}


def old_health_report(self: HealthReport) -> dict[str, Any]:
    return {"status": self.status, "healthy": self.healthy, "checked_at": self.checked_at,
            "checks": [old_check(check) for check in self.checks]}


def old_validation_run(self: ValidationRun) -> dict[str, Any]:
    return {
        "checked": len(self.results),
        "valid": len(self.results) - len(self.invalid),
        "invalid": len(self.invalid),
        "skipped": list(self.skipped),
        "seconds": round(self.seconds, 3),
        "results": [result_dict(result) for result in self.results],
    }


def old_policy(self: RetentionPolicy) -> dict[str, Any]:
    return {
        "max_backups": self.max_backups,
        "max_age": format_duration(self.max_age) if self.max_age is not None else None,
        "keep_daily": self.keep_daily,
        "keep_weekly": self.keep_weekly,
        "keep_monthly": self.keep_monthly,
        "keep_tags": sorted(self.keep_tags),
        "timezone": self.timezone,
        "pre_rollback_max_age": (format_duration(self.pre_rollback_max_age)
                                 if self.pre_rollback_max_age is not None else None),
        "databases": {name: old_policy(policy) for name, policy in sorted(self.databases.items())},
    }


def old_decision(self: RetentionDecision) -> dict[str, Any]:
    return {"backup_id": self.backup_id, "database": self.database, "created_at": self.created_at,
            "status": self.status, "action": self.action, "rule": self.rule, "rules": list(self.rules),
            "reason": self.reason, "pinned": self.pinned}


def old_prune(self: PruneResult) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in attrs.asdict(self, recurse=False).items()}


def old_retention_report(self: RetentionReport) -> dict[str, Any]:
    return {
        "dry_run": self.dry_run,
        "policy": old_policy(self.policy),
        "decided_at": self.decided_at,
        "keep_count": len(self.kept),
        "remove_count": len(self.to_remove),
        "decisions": [old_decision(decision) for decision in self.decisions],
        "removed": list(self.removed),
        "prune": old_prune(self.prune) if self.prune is not None else None,
        "prune_skipped": self.prune_skipped,
    }


def old_usage(self: UsageReport) -> dict[str, Any]:
    document = {key: value for key, value in attrs.asdict(self, recurse=False).items()
                if key not in ("databases", "backups")}
    document["total_size_gb"] = self.total_size_gb
    document["dedup_ratio"] = self.dedup_ratio
    document["databases"] = [_asdict(entry) for entry in self.databases]
    document["backups"] = [_asdict(entry) for entry in self.backups] if self.backups is not None else None
    return document


def old_storage_health(self: StorageHealth) -> dict[str, Any]:
    return {
        "url": self.url, "checked_at": self.checked_at, "healthy": self.healthy, "reachable": self.reachable,
        "probe": _asdict(self.probe) if self.probe else None, "free_bytes": self.free_bytes,
        "total_bytes": self.total_bytes, "lock": _asdict(self.lock) if self.lock else None,
        "stale_locks": [_asdict(holder) for holder in self.stale_locks],
        "running_creates": [_asdict(holder) for holder in self.running_creates],
        "incomplete_backups": [_asdict(holder) for holder in self.incomplete_backups],
        "corrupted_backups": list(self.corrupted_backups),
        "databases": [_asdict(span) for span in self.databases],
        "errors": list(self.errors), "warnings": list(self.warnings), "backup_count": self.backup_count,
    }


def old_object_optimization(self: ObjectOptimization) -> dict[str, Any]:
    return {**attrs.asdict(self), "backups": list(self.backups), "savings": self.savings}


def old_optimize(self: OptimizeReport) -> dict[str, Any]:
    return {"dry_run": self.dry_run, "codec": self.codec, "level": self.level,
            "objects_checked": len(self.objects), "objects_improved": len(self.improvable),
            "stored_before": self.stored_before, "savings_bytes": self.savings_bytes,
            "objects": [old_object_optimization(entry) for entry in self.objects],
            "manifests_updated": list(self.manifests_updated),
            "removed_objects": list(self.removed_objects), "kept_objects": list(self.kept_objects)}


def old_backup_info(self: BackupInfo) -> dict[str, Any]:
    import cattrs

    from schemasync_backup.formats.manifest import Status

    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_unstructure_hook(Status, lambda status: status.value)
    return converter.unstructure(self)  # type: ignore[no-any-return]


OLD: dict[type, Callable[[Any], dict[str, Any]]] = {
    RollbackStep: old_step, RollbackPlan: old_plan, SchemaDiff: old_diff, RollbackValidation: old_validation,
    RecoveryInfo: old_recovery, ExecutionResult: _asdict, Check: old_check, HealthReport: old_health_report,
    ValidationRun: old_validation_run, RetentionPolicy: old_policy, RetentionDecision: old_decision,
    RetentionReport: old_retention_report, PruneResult: old_prune, UsageReport: old_usage,
    DatabaseUsage: _asdict, BackupUsage: _asdict, StorageHealth: old_storage_health, ProbeResult: _asdict,
    DatabaseSpan: _asdict, LockHolder: _asdict, ObjectOptimization: old_object_optimization,
    OptimizeReport: old_optimize, BackupInfo: old_backup_info,
}


def same(obj: Any) -> dict[str, Any]:
    """``obj.to_dict()``, asserted equal to the frozen old output as JSON text (keys, order, values)."""
    old, new = next(convert for kind, convert in OLD.items() if isinstance(obj, kind))(obj), obj.to_dict()
    # The old SchemaDiff gave tuples for details: equal once in JSON, which is what anyone received.
    assert new == json.loads(json.dumps(old))
    assert json.dumps(new, indent=2, ensure_ascii=False) == json.dumps(old, indent=2, ensure_ascii=False)
    assert unstructure(obj) == new
    assert plain(new)
    return new


def plain(value: Any) -> bool:
    """Only JSON's own types, exactly (no enum members, no tuples)."""
    if type(value) is dict:
        return all(type(key) is str and plain(item) for key, item in value.items())
    if type(value) is list:
        return all(plain(item) for item in value)
    return type(value) in (str, int, float, bool, type(None))


def test_every_hand_written_to_dict_is_covered() -> None:
    assert len(OLD) == 23


# --- objects from real runs ---------------------------------------------------------------------------

SERVER = ServerInfo("mariadb", "11.4.0", "", 0)
OPTIONS = ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"


def small(variant: int, database: str = "app") -> Snapshot:
    return Snapshot(database, "utf8mb4", f"utf8mb4_variant_{variant}", SERVER)


def table(name: str, *columns: tuple[str, str]) -> Table:
    lines = [f"`{column}` {type_} DEFAULT NULL" for column, type_ in columns]
    create = f"CREATE TABLE `{name}` (\n" + ",\n".join(f"  {line}" for line in lines) + "\n" + OPTIONS
    return Table(name, tuple(Column(column, type_, True) for column, type_ in columns), create_sql=create)


def snap(*tables: Table) -> Snapshot:
    return Snapshot("app", "utf8mb4", "utf8mb4_general_ci", SERVER, tables=tables)


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    store = BackupStore.open(str(tmp_path / "store"))
    store.save(small(1), tags={"env": "prod"}, description="first")
    store.save(small(1))
    store.save(small(2, "crm"))
    gone = store.save(small(3))
    store.files.remove([store.files.manifest_path(gone.id)])
    store.put_document("pending/backup-20261125-120000-0000bbbb.json", json.dumps({
        "id": "backup-20261125-120000-0000bbbb", "database": "app", "pid": os.getpid(),
        "host": socket.gethostname(), "started_at": datetime.now(UTC).isoformat()}).encode())
    return store


def test_store_reports_from_real_runs(store: BackupStore) -> None:
    usage = same(store.usage(detailed=True))
    assert usage["backups"] and usage["databases"]
    same(store.usage())
    health = same(store.health())
    assert health["running_creates"] and health["probe"]
    same(maintenance.prune(store, dry_run=True, grace="0s"))
    optimized = same(store.optimize(dry_run=True))
    assert optimized["objects"]
    for info in store.list():
        same(info)
    policy = RetentionPolicy(max_backups=1, max_age=timedelta(days=7), keep_daily=2, keep_tags=frozenset({"env"}),
                             databases={"crm": RetentionPolicy(keep_weekly=-1, max_age=timedelta(hours=36))})
    report = same(store.apply_retention(policy, dry_run=True))
    assert report["decisions"] and report["policy"]["databases"]
    applied = same(store.apply_retention(RetentionPolicy(max_backups=1), dry_run=False, grace="0s"))
    assert applied["removed"] and applied["prune_skipped"]  # the pending marker: a create is running
    validator = Validator(store)
    ids = [info.id for info in store.list() if info.status != "CREATING"]
    run = validate_many(validator.validate, ids)
    assert same(run)["results"]
    same(attrs.evolve(run, skipped=("backup-20200101-000000-00000000",), seconds=1.23456))


def test_plans_diffs_and_results() -> None:
    live = snap(table("t", ("id", "int(11)"), ("note", "text")), table("gone", ("id", "int(11)")))
    target = snap(table("t", ("id", "int(11)")), table("new", ("id", "bigint(20)")))
    steps, notes = build_steps(live, target, None)
    assert any(step.destructive for step in steps)
    for step in steps:
        same(step)
    measured = attrs.evolve(steps[0], risks=(Risk("column `note` is dropped", "SELECT 1", rows=3),),
                            session=("SET sql_mode=''",), sent=("SET a=1", "SELECT 1"))
    same(measured)
    plan = RollbackPlan("backup-20260101-000000-0000abcd", "app", live.schema_hash, target.schema_hash,
                        (*steps, measured), notes=(*notes, "a note"), preflight=("a problem",),
                        created_at="2026-01-01T00:00:00+00:00")
    document = same(plan)
    assert document["destructive_steps"] >= 2
    same(RollbackPlan("b", "app", "x", "x", ()))
    difference = diff(live, target)
    assert same(difference)["changes"]
    same(diff(live, live))
    same(RollbackValidation("b", "app", False, "x", "y", difference))
    same(ExecutionResult("b", "app", False, 3, "backup-pre", "run-1", True, "hash"))
    same(ExecutionResult("b", "app", True, 0, None, None, False, ""))
    step_records = ({"number": 1, "status": "done", "phase": "drop table", "object_kind": "table",
                     "object_name": "t", "sql": "DROP TABLE `t`", "error": None},
                    {"number": 2, "status": "failed", "phase": "alter table", "object_kind": "table",
                     "object_name": "u", "sql": "ALTER TABLE `u`", "error": "boom", "extra": ["a", ("b",)]})
    same(RecoveryInfo("b", "run-1", "failed", "backup-pre", step_records, error="boom"))
    same(RecoveryInfo("b", "run-2", "completed", None, ()))
    same(RecoveryInfo.not_run("b"))


def test_hand_built_reports_with_every_optional_part() -> None:
    same(HealthReport((Check("database", "ok", "reachable", {"latency_ms": 1.5, "list": [1, 2]}),
                       Check("storage", "warning", "slow"), Check("keys", "error", "missing")), "2026-01-01"))
    same(HealthReport((), "2026-01-01"))
    holder = LockHolder("prune", "tok", "locks/prune.json", "host", 12, "2026-01-01", "2026-01-02", "app",
                        stale=True, reason="old")
    same(holder)
    same(StorageHealth("file:///s", "2026-01-01", True, ProbeResult(True, 1.0, 2.0, 3.0), 10, 20, holder,
                       (holder,), (attrs.evolve(holder, stale=False),), (holder,), ("backup-x",),
                       (DatabaseSpan("app", 2, "a", "t1", "b", "t2"),), ("an error",), ("a warning",), 4))
    same(StorageHealth("mem://", "now", False, None, None, None, None, (), (), (), (), (), (), ()))
    same(ProbeResult(False, None, None, None, "broken"))
    entry = ObjectOptimization("objects/ab/ab", "zstd", "zstd", 100, 60, ("b1", "b2"), True, new_path="x")
    skipped = ObjectOptimization("objects/cd/cd", "none", "zstd", 100, 60, ("b1",), False, skipped="no key")
    same(entry)
    same(skipped)
    same(OptimizeReport(False, "zstd", 19, (entry, skipped), ("b1",), ("objects/ab/ab",), ("objects/cd/cd",)))
    same(OptimizeReport(True, "gzip", None, (), ()))
    prune = PruneResult(False, 3600.0, ("objects/a",), 10, 3, ("r",), ("u",), ("k",), ("tmp/x",), ("m",),
                        ("c",), ("manifests/bad.json",))
    same(prune)
    policy = RetentionPolicy.from_dict({"max_age": "90m", "keep_tags": ["b", "a=1"], "keep_monthly": "unlimited",
                                        "databases": {"z": {"max_backups": 3}, "a": {"keep_daily": 1}}})
    same(policy)
    decision = RetentionDecision("b1", "app", "2026-01-01", "COMPLETED", False, "none", (), "no rule keeps it")
    kept = RetentionDecision("b2", "app", "2026-01-02", "COMPLETED", True, "max_backups", ("max_backups", "tag"),
                             "newest", pinned=True)
    same(decision)
    same(kept)
    same(RetentionReport(False, policy, "now", (decision, kept), ("b1",), prune, ""))
    same(RetentionReport(True, RetentionPolicy(), "now", (), prune_skipped="creates running"))
    same(UsageReport("u", 1, 1, 2, 100, 90, 10, 0, 500, 400, 100, 300,
                     (DatabaseUsage("app", 1, 500, 90, "t1", "t1"),),
                     (BackupUsage("b1", "app", "t1", "COMPLETED", False, 500, 90, 90),)))
    same(UsageReport("u", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ()))
    info = BackupInfo("b1", "app", "t", "me", "d", {"k": "v"}, "COMPLETED", 1, 2, "zstd", "aes-256-gcm", "k1",
                      "h", "c", "1.0", "t", MigrationContext("p", "s", "i", "t"), pinned=True, partial=True)
    same(info)
    same(attrs.evolve(info, migration_context=None, encryption=None, key_id=None))
