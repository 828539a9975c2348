"""A reviewed rollback plan saved to a file (``rollback plan --output F``), and read back.

Format (docs/rollback.md, "Reviewed plans")::

    {"format": "schemasync-rollback-plan", "version": 1, "saved_at": "...",
     "backup": {"id": ..., "database": ..., "manifest_checksum": ..., "schema_hash": ...},
     "disable_fk_checks": false, "plan": {...the plan's fields...}, "digest": "<sha256>"}

The digest is SHA-256 over the canonical JSON of everything else, so a file edited by hand (or
damaged) is refused. It holds no key, so it proves nothing against someone who recomputes it:
the file is proof of what was reviewed, never the source of what runs. Executing it
(``RollbackPlanner.execute_saved``) plans again from the backup and the live schema and runs only
when that plan's steps equal the saved ones (see :func:`differences`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs
import cattrs

from schemasync_backup.converter import strict_converter
from schemasync_backup.errors import PlanFileError
from schemasync_backup.rollback.plan import RollbackPlan, RollbackStep

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SavedPlan", "differences"]

FORMAT_NAME = "schemasync-rollback-plan"
FORMAT_VERSION = 1
_KEYS = {"format", "version", "saved_at", "backup", "disable_fk_checks", "plan", "digest"}
_BACKUP_KEYS = {"id", "database", "manifest_checksum", "schema_hash"}

_converter = strict_converter()


@attrs.frozen
class SavedPlan:
    """A plan bound to what it was made from: its backup's manifest as it was, and how it runs."""

    plan: RollbackPlan
    #: The backup's manifest checksum and snapshot hash when the plan was saved: a backup replaced
    #: under the same id, or its manifest rewritten, no longer matches.
    manifest_checksum: str
    backup_schema_hash: str
    #: The reviewed plan runs with ``SET FOREIGN_KEY_CHECKS=0``.
    disable_fk_checks: bool = False
    saved_at: str = ""
    #: Where it was read from (for messages); not part of the document.
    source: str = attrs.field(default="", eq=False)

    @property
    def backup_id(self) -> str:
        return self.plan.backup_id

    @property
    def name(self) -> str:
        """The file, or a stand-in, as messages name it."""
        return self.source or "the saved plan"

    def to_document(self) -> dict[str, Any]:
        body = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "saved_at": self.saved_at,
            "backup": {"id": self.plan.backup_id, "database": self.plan.database,
                       "manifest_checksum": self.manifest_checksum, "schema_hash": self.backup_schema_hash},
            "disable_fk_checks": self.disable_fk_checks, "plan": _converter.unstructure(self.plan),
        }
        return {**body, "digest": _digest(body)}

    def to_json(self) -> str:
        return json.dumps(self.to_document(), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the document to a local file, replacing it whole (never a half-written file)."""
        target = Path(path)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp", delete=False) as handle:
            try:
                handle.write(self.to_json())
            except BaseException:
                handle.close()
                os.unlink(handle.name)
                raise
        os.replace(handle.name, target)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SavedPlan:
        """Read a plan file; an unreadable one is an OSError (never taken for an edited one)."""
        return cls.from_json(Path(path).read_bytes(), source=str(path))

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "") -> SavedPlan:
        """The saved plan, checked: PlanFileError for anything but an unedited file of a known version."""
        name = source or "the saved plan"
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise _refused(name, f"is not a saved rollback plan: not valid JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
            raise _refused(name, f"is not a saved rollback plan (no \"format\": \"{FORMAT_NAME}\")")
        version = document.get("version")
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise _refused(name, f"has plan format version {version!r:.40}; this schemasync_backup reads version "
                                 f"{FORMAT_VERSION} (a newer release wrote it, or it was edited)")
        if set(document) != _KEYS or not isinstance(document["backup"], dict) or set(document["backup"]) \
                != _BACKUP_KEYS:
            raise _refused(name, "is damaged or edited: its keys are not those of a saved plan")
        body = {key: value for key, value in document.items() if key != "digest"}
        if document["digest"] != _digest(body):
            raise _refused(name, "was changed after it was saved (its digest does not match its content)")
        try:
            plan = _converter.structure(document["plan"], RollbackPlan)
            backup = document["backup"]
            saved = cls(plan, _converter.structure(backup["manifest_checksum"], str),
                        _converter.structure(backup["schema_hash"], str),
                        _converter.structure(document["disable_fk_checks"], bool),
                        _converter.structure(document["saved_at"], str), source)
        except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
            details = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, cattrs.BaseValidationError) else exc
            raise _refused(name, f"is damaged: {details}") from None
        if (backup["id"], backup["database"]) != (plan.backup_id, plan.database):
            raise _refused(name, "is damaged: its backup and its plan disagree")
        return saved


def differences(saved: RollbackPlan, current: RollbackPlan) -> list[str]:
    """How the plan made now differs from the saved one, in what runs (empty: the same plan).

    Compared: the backup, the database, both schema hashes, and every step as execute sends it
    (SQL, session, data, the risks it was reviewed with). Not compared: counts of rows at risk,
    notes and preflight, which describe the live data and are taken from the plan made now.
    """
    found = [f"{what}: saved {mine!r}, now {theirs!r}" for what, mine, theirs in (
        ("backup", saved.backup_id, current.backup_id), ("database", saved.database, current.database),
        ("live schema hash", saved.live_hash, current.live_hash),
        ("backup schema hash", saved.target_hash, current.target_hash)) if mine != theirs]
    if len(saved.steps) != len(current.steps):
        found.append(f"{len(saved.steps)} step(s) saved, {len(current.steps)} planned now")
    for number, (mine, theirs) in enumerate(zip(saved.steps, current.steps, strict=False), start=1):
        if _runs(mine) != _runs(theirs):
            found.append(f"step {number}: saved {mine.phase} {mine.object_name!r} ({mine.sql!r:.120}), "
                         f"now {theirs.phase} {theirs.object_name!r} ({theirs.sql!r:.120})")
    return found


def _runs(step: RollbackStep) -> dict[str, Any]:
    """The step as it runs and as it was reviewed, without the live row counts."""
    fields: dict[str, Any] = _converter.unstructure(step)
    fields["risks"] = [{**risk, "rows": None} for risk in fields["risks"]]
    return fields


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _refused(name: str, problem: str) -> PlanFileError:
    return PlanFileError(f"plan file {name} {problem}: refusing to execute it; make the plan again with "
                         f"`rollback plan --backup-id ID --output {name}` and review it", subject=name)
