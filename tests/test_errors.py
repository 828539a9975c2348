"""The exception hierarchy: one module, one root, every class exported, no bare builtins from public calls."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
from pathlib import Path

import pytest

import schemasync_backup
from schemasync_backup import errors
from schemasync_backup.errors import (
    ConfigError,
    EncryptionKeyError,
    InvalidInputError,
    RetentionPolicyError,
    SchemaObjectNotFoundError,
    SchemaSyncBackupError,
    SettingsError,
    StoreError,
)
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.store.retention import RetentionPolicy
from schemasync_backup.store.store import BackupStore

ERROR_CLASSES = [value for value in vars(errors).values()
                 if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__]


def _modules() -> list[types.ModuleType]:
    found = []
    for info in pkgutil.walk_packages(schemasync_backup.__path__, schemasync_backup.__name__ + "."):
        if info.name.endswith(".__main__"):  # runs the command line on import
            continue
        found.append(importlib.import_module(info.name))
    return found


def test_errors_module_holds_many_classes() -> None:
    assert len(ERROR_CLASSES) > 30


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__name__)
def test_every_error_derives_from_the_root_and_is_exported(kind: type[BaseException]) -> None:
    assert issubclass(kind, SchemaSyncBackupError)
    assert kind.__name__ in schemasync_backup.__all__
    assert getattr(schemasync_backup, kind.__name__) is kind


def test_no_module_but_errors_defines_an_exception() -> None:
    strays = []
    for module in _modules():
        if module is errors:
            continue
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__):
                strays.append(f"{value.__module__}.{name}")
    assert strays == []


@pytest.mark.parametrize(("module", "name"), [
    ("validate.validator", "BackupValidationError"), ("validate.validator", "RecoveryError"),
    ("store.maintenance", "StoreBusyError"), ("store.maintenance", "CreateRunningError"),
    ("store.maintenance", "PruneRunningError"), ("store.retention", "RetentionPolicyError"),
    ("cli.config", "ConfigError"), ("cli.logsetup", "LogSettingsError"), ("cli.console", "ConfirmationRefused"),
    ("sql.create_table", "UnrecognisedDefinitionError"),
])
def test_old_import_locations_still_work(module: str, name: str) -> None:
    assert getattr(importlib.import_module(f"schemasync_backup.{module}"), name) is getattr(errors, name)


def test_key_and_policy_errors_are_not_store_errors() -> None:
    assert not issubclass(EncryptionKeyError, StoreError)
    assert issubclass(EncryptionKeyError, LookupError)
    assert not issubclass(RetentionPolicyError, StoreError)
    assert issubclass(RetentionPolicyError, SettingsError)
    assert issubclass(RetentionPolicyError, ValueError)
    assert issubclass(ConfigError, SettingsError)
    assert issubclass(SettingsError, InvalidInputError)


def test_error_messages_are_the_message_alone() -> None:
    # A KeyError subclass would otherwise print the repr of its argument.
    assert str(SchemaObjectNotFoundError("no table t", subject="t")) == "no table t"


def test_bad_retention_value_is_a_policy_error() -> None:
    with pytest.raises(RetentionPolicyError):
        RetentionPolicy(max_age="banana")  # type: ignore[arg-type]


def test_bad_time_filter_is_an_input_error(tmp_path: Path) -> None:
    store = BackupStore.open(str(tmp_path / "store"))
    with pytest.raises(InvalidInputError, match="invalid time 'nope'") as caught:
        store.list(created_after="nope")
    assert isinstance(caught.value, ValueError)


def test_bad_definer_policy_is_an_input_error(tmp_path: Path) -> None:
    planner = RollbackPlanner(BackupStore.open(str(tmp_path / "store")))
    with pytest.raises(InvalidInputError, match="definer policy for view") as caught:
        planner.plan("mysql://nobody@127.0.0.1:1/x", "backup-20260101-000000-00000000",
                     definer_policy={"view": "bogus"})
    assert isinstance(caught.value, ValueError)


def test_missing_table_and_column_are_lookup_errors() -> None:
    from schemasync_backup.model.snapshot import ServerInfo, Snapshot, Table

    table = Table(name="t", columns=())
    snapshot = Snapshot(database="d", charset="utf8mb4", collation="utf8mb4_general_ci",
                        server=ServerInfo("mariadb", "11.4", "", 0), tables=(table,))
    with pytest.raises(SchemaObjectNotFoundError, match="has no table nope") as caught:
        snapshot.table("nope")
    assert isinstance(caught.value, KeyError)
    with pytest.raises(SchemaObjectNotFoundError, match="table t has no column c"):
        table.column("c")
