"""The whole job a migration tool runs before a migration: back up, prove it, keep the store tidy.

What the command line's ``backup create`` does, as one call for embedding users, so the policy
(one create of a database at a time, validate what was written, apply retention only after a
backup that proved intact) lives in the library, not in a consumer of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from schemasync_backup.capture.connection import Source
from schemasync_backup.display import Card, Shown, headline
from schemasync_backup.formats.manifest import BackupInfo, MigrationContext
from schemasync_backup.model.progress import ProgressCallback
from schemasync_backup.store.data_backup import DataRequest, Migration
from schemasync_backup.store.retention import RetentionPolicy, RetentionReport
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.validator import ValidationResult, Validator


@attrs.frozen
class BackupJobResult(Shown):
    """What :func:`create_backup` did: the backup, its validation (None: not asked), the retention run."""

    info: BackupInfo
    validation: ValidationResult | None
    #: None when no policy was given, or when validation failed (nothing is removed after a bad backup).
    retention: RetentionReport | None

    @property
    def ok(self) -> bool:
        return self.validation is None or self.validation.valid

    def _card(self) -> Card:
        # Each part's own title line: the job is the backup, its validation and the retention run.
        parts = (self.info, self.validation, self.retention)
        return Card(f"Backup job: {'ok' if self.ok else 'FAILED'}",
                    notes=tuple(headline(part) for part in parts if part is not None), kind="backup-job")


def create_backup(
    store: BackupStore,
    source: Source,
    database: str,
    *,
    validate: bool = True,
    retention: RetentionPolicy | None = None,
    allow_concurrent: bool = False,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    migration_context: MigrationContext | Mapping[str, str] | None = None,
    data: DataRequest = "none",
    migration: Migration | None = None,
    chunk_bytes: int | None = None,
    max_workers: int = 1,
    progress: ProgressCallback | None = None,
    parallel: bool = True,
) -> BackupJobResult:
    """Create a backup of ``database``; validate it; then apply ``retention`` to that database.

    A backup that fails validation is kept (and reported), and retention does not run after it:
    the store never loses an older backup because of a newer one that proved bad. ``progress`` is
    told how far the create (:meth:`BackupStore.create`) and then the validation are;
    ``parallel=False`` keeps the capture to one connection.
    """
    info = store.create(source, database, description=description, tags=tags,
                        migration_context=migration_context, allow_concurrent=allow_concurrent, data=data,
                        migration=migration, chunk_bytes=chunk_bytes, max_workers=max_workers, progress=progress,
                        parallel=parallel)
    result = Validator(store).validate(info.id, progress=progress) if validate else None
    applied = None
    if retention is not None and (result is None or result.valid):
        applied = store.apply_retention(retention, dry_run=False, database=database)
    return BackupJobResult(info, result, applied)
