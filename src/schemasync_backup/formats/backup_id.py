"""Backup ids: the one type and validator for them.

An id names files in the store (``manifests/<id>.json``, ``status/<id>.json``, journals), so
every public method checks it before any I/O: an id from a user, an archive or a file name is
untrusted input and must never steer where the tool reads or writes.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import NewType

from schemasync_backup.errors import InvalidBackupIdError

#: A backup id: ``backup-YYYYMMDD-HHMMSS-<8 hex>``, the UTC time it was minted at plus a random suffix.
BackupId = NewType("BackupId", str)

PATTERN = re.compile(r"backup-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")


def new_backup_id(now: datetime) -> BackupId:
    return BackupId(f"backup-{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}")


def is_backup_id(value: object) -> bool:
    return isinstance(value, str) and PATTERN.fullmatch(value) is not None and _minted(value) is not None


def check_backup_id(value: object) -> BackupId:
    """``value`` as a BackupId, or InvalidBackupIdError saying what a valid one looks like."""
    if not is_backup_id(value):
        raise InvalidBackupIdError(
            f"invalid backup id {value!r}: a backup id looks like backup-20260115-143022-a1b2c3d4 "
            "(`backup list` shows them)",
            subject=value,
        )
    return BackupId(str(value))


def created_at_of(backup_id: str) -> datetime | None:
    """The UTC time an id was minted at, from the id alone (lets list() skip reading manifests)."""
    if not isinstance(backup_id, str) or PATTERN.fullmatch(backup_id) is None:
        return None
    return _minted(backup_id)


def _minted(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id[7:22], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:  # matches the pattern but is no time, e.g. month 13
        return None
