"""Rollback journals and pre-rollback backups: where the one is stored, what marks the other.

A rollback run writes ``journals/<backup id>/<run id>.json`` (its steps, its status, the id of the
pinned backup of the state before it) and rewrites it after every step; run ids sort by time, so
the last name is the latest run. The rollback planner writes both; `rollback recovery-info`, a
resumed plan and retention (which keeps the way back of an unfinished run) read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from schemasync_backup.formats.backup_id import check_backup_id
from schemasync_backup.formats.manifest import BackupInfo

FOLDER = "journals"
#: Statuses of a run that did not finish: it failed, or its process died while it ran.
UNFINISHED = ("failed", "running")
#: The tags of the backup a rollback takes of the live state before it changes anything.
PRE_ROLLBACK_TAG = "pre_rollback"
ROLLBACK_TO_TAG = "rollback_to"


def folder(backup_id: str) -> str:
    """The journals of the rollbacks to ``backup_id``."""
    return f"{FOLDER}/{check_backup_id(backup_id)}"


def path(backup_id: str, name: str) -> str:
    """A journal document; ``name`` is ``<run id>.json``."""
    return f"{folder(backup_id)}/{name}"


def latest(names: Iterable[str]) -> str | None:
    """The latest run's journal among a folder's names, if any."""
    runs = sorted(name for name in names if name.endswith(".json"))
    return runs[-1] if runs else None


def pre_rollback_tags(backup_id: str) -> dict[str, str]:
    """The tags of the backup taken before a rollback to ``backup_id``."""
    return {PRE_ROLLBACK_TAG: "true", ROLLBACK_TO_TAG: backup_id}


def is_pre_rollback(info: BackupInfo) -> bool:
    """An automatic pre-rollback backup (pinned by the rollback), not one a person pinned."""
    return info.pinned and info.tags.get(PRE_ROLLBACK_TAG) == "true"


def unfinished_pre_rollback(document: Mapping[str, object]) -> str | None:
    """The pre-rollback backup a journal names, when its run did not finish: the way back from where it stopped."""
    pre = document.get("pre_rollback_backup_id")
    return str(pre) if document.get("status") in UNFINISHED and pre else None
