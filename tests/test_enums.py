"""States and kinds are string-valued enums: equal to their strings, and JSON holds the plain strings."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest

from schemasync_backup import BackupInfo, ChangeKind, FindingKind, Severity, Status, StepPhase, diff
from schemasync_backup.cli.reports import result_dict
from schemasync_backup.model.snapshot import ServerInfo, Snapshot, Table
from schemasync_backup.rollback.plan import RollbackPlan, RollbackStep, build_steps
from schemasync_backup.validate.validator import Finding, ValidationResult


def _snapshot(*tables: str) -> Snapshot:
    return Snapshot(database="shop", charset="utf8mb4", collation="utf8mb4_general_ci",
                    server=ServerInfo("mariadb", "11.4", "", 0),
                    tables=tuple(Table(name=name, columns=(), create_sql=f"CREATE TABLE `{name}` (\n  `id` int(11)\n)")
                                 for name in tables))


def _plain(value: Any) -> None:
    """No enum member anywhere in ``value``: every string is exactly a str."""
    assert not isinstance(value, enum.Enum), value
    if isinstance(value, dict):
        for key, item in value.items():
            _plain(key)
            _plain(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _plain(item)


@pytest.mark.parametrize("kind", [Status, Severity, FindingKind, StepPhase, ChangeKind])
def test_members_are_their_strings(kind: type[enum.StrEnum]) -> None:
    for member in kind:
        assert member == member.value
        assert str(member) == member.value
        assert f"{member}" == member.value
        assert json.dumps(member) == json.dumps(member.value)
        assert kind(member.value) is member


def test_known_values() -> None:
    assert Status.COMPLETED == "COMPLETED"
    assert [s.value for s in Status] == ["CREATING", "COMPLETED", "VALIDATING", "FAILED", "CORRUPTED"]
    assert Severity.ERROR == "error" and Severity.WARNING == "warning"
    assert {k.value for k in FindingKind} == {"damage", "key", "untrusted"}
    assert {c.value for c in ChangeKind} == {"added", "removed", "changed"}
    assert StepPhase.DROP_TABLE == "drop table" and StepPhase.CREATE_DATABASE == "create database"
    assert len(StepPhase) == 21


def test_fields_given_strings_hold_members() -> None:
    step = RollbackStep("drop table", "table", "t", "DROP TABLE `t`")
    assert step.phase is StepPhase.DROP_TABLE
    finding = Finding("error", "bad", kind="key")
    assert finding.severity is Severity.ERROR and finding.kind is FindingKind.KEY
    with pytest.raises(ValueError, match="bogus"):
        RollbackStep("bogus", "table", "t", "")


def test_validation_result_json_is_plain_strings() -> None:
    result = ValidationResult(
        backup_id="backup-20260101-000000-00000000", valid=False,
        errors=(Finding(Severity.ERROR, "checksum mismatch", "objects/ab", ("table t",)),
                Finding(Severity.ERROR, "key k-1 is needed", None, (), FindingKind.KEY)),
        warnings=(Finding(Severity.WARNING, "old format"),),
        checksum_valid=False, checked_at="2026-01-01T00:00:00Z", objects_checked=2, bytes_checked=10)
    data = result_dict(result)
    _plain(data)
    assert data["errors"] == [
        {"message": "checksum mismatch (holds table t)", "object_path": "objects/ab", "schema_objects": ["table t"],
         "kind": "damage"},
        {"message": "key k-1 is needed", "object_path": None, "schema_objects": [], "kind": "key"},
    ]
    assert data["warnings"][0]["kind"] == "damage"
    text = json.dumps(data, sort_keys=True)
    assert '"kind": "key"' in text and "FindingKind" not in text and "Severity" not in text
    assert json.loads(text) == data


def test_plan_json_is_plain_strings() -> None:
    steps, notes = build_steps(_snapshot("gone", "kept"), _snapshot("kept"))
    plan = RollbackPlan("backup-20260101-000000-00000000", "shop", "a" * 64, "b" * 64, tuple(steps), tuple(notes))
    data = plan.to_dict()
    _plain(data)
    assert [(step["phase"], step["object_name"]) for step in data["steps"]] == [("drop table", "gone")]
    assert type(data["steps"][0]["phase"]) is str
    assert '"phase": "drop table"' in plan.to_json()
    assert "1 x drop table" in plan.summary()
    assert "-- step 1: drop table `gone` (DESTRUCTIVE)" in plan.to_sql()


def test_diff_and_backup_info_dicts_are_plain_strings() -> None:
    changes = diff(_snapshot("gone"), _snapshot("new"))
    data = changes.to_dict()
    _plain(data)
    assert [(c["kind"], c["name"], c["change"]) for c in data["changes"]] == [
        ("table", "gone", "removed"), ("table", "new", "added")]
    assert changes.listing() == "- table `gone`\n+ table `new`"
    assert str(changes).splitlines()[0].endswith(": 2 object(s) differ, 1 added, 1 removed, 0 changed")
    assert changes.only_in_a()[0].change is ChangeKind.REMOVED
    info = BackupInfo(
        id="backup-20260101-000000-00000000", database="shop", created_at="2026-01-01T00:00:00Z", created_by="me",
        description="", tags={}, status="FAILED", raw_size=1, stored_size=1, compression="lz4", encryption=None,
        key_id=None, schema_hash="", checksum="", tool_version="0.1.0", captured_at="")
    assert info.status is Status.FAILED
    _plain(info.to_dict())
    assert '"status": "FAILED"' in json.dumps(info.to_dict())
