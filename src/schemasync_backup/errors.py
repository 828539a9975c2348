"""The package's exception hierarchy: one root, each error carrying the object it is about.

Every error also subclasses the builtin that matches it, so callers who only know
``ConnectionError`` or ``LookupError`` still catch ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemasync_backup.store.locks import LockHolder
    from schemasync_backup.validate.validator import ValidationResult


class SchemaSyncBackupError(Exception):
    """Root of every error this package raises on purpose."""

    def __init__(self, message: str, *, subject: object = None) -> None:
        super().__init__(message)
        self.message = message
        #: The object the error is about (a DSN without password, a database, a backup id, ...).
        self.subject = subject

    def __str__(self) -> str:
        return self.message


# --- configuration and input -------------------------------------------------------------


class InvalidInputError(SchemaSyncBackupError, ValueError):
    """An argument a caller passed that cannot be used (a time that is no ISO 8601, an unknown choice, ...).

    Public calls raise this (or a subclass) where Python would raise a bare ``ValueError``; it still
    is a ``ValueError``, so code that catches that keeps working."""


class InvalidSourceError(InvalidInputError):
    """A DSN or connection argument that cannot be used."""


class InvalidBackupIdError(InvalidInputError):
    """A string that is not a backup id (``backup-YYYYMMDD-HHMMSS-<8 hex>``); refused before any I/O."""


class SettingsError(InvalidInputError):
    """A setting that cannot be used: in a configuration file, the environment, or a policy."""


class ConfigError(SettingsError):
    """A configuration file that cannot be used; ``problems`` lists every one, each naming its key path."""

    def __init__(self, problems: Iterable[str], *, source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        first = self.problems[0] if self.problems else "unknown problem"
        more = len(self.problems) - 1
        extra = (f" (and {more} more problem{'s' if more > 1 else ''}; `backup validate-config` lists all)"
                 if more else "")
        super().__init__(f"invalid configuration{where}: {first}{extra}", subject=source)


class LogSettingsError(SettingsError):
    """An environment variable that sets logging has a value we cannot use."""


class RetentionPolicyError(SettingsError):
    """A retention policy that cannot be applied: a bad value, an unknown key, or no rule at all."""


class StaleThresholdError(SettingsError):
    """A stale threshold (``stale_after``) too short for the heartbeats of running creates and prunes."""


# --- keys and secrets -------------------------------------------------------------------


class SecretsError(SchemaSyncBackupError):
    """A key or other secret the operation needs is missing, malformed or wrong."""


class EncryptionKeyError(SecretsError, LookupError):
    """A key is missing, malformed or wrong; the message names the key id a backup needs.

    Never damage: a backup that cannot be read with the configured keys keeps its status.
    Not a :class:`StoreError`: the store is fine, the keys given to it are not."""


# --- asking a person --------------------------------------------------------------------


class ConfirmationRefused(SchemaSyncBackupError):
    """The person said no, or nobody could be asked and --force was not given."""


# --- talking to a server ----------------------------------------------------------------


class DatabaseError(SchemaSyncBackupError):
    """Something went wrong between us and a MySQL/MariaDB server."""


class DatabaseConnectionError(DatabaseError, ConnectionError):
    """The server could not be reached at all."""


class AuthenticationError(DatabaseError, PermissionError):
    """The server refused the user name or password."""


class DatabaseNotFoundError(DatabaseError, LookupError):
    """The database named does not exist (or is invisible to the user)."""


class PrivilegeError(DatabaseError, PermissionError):
    """The user lacks a privilege the operation needs."""


class WireError(DatabaseError):
    """An answer read straight from the server's packets (``capture.pipeline``) that the fast reader
    does not take as it is; ``capture.connection`` turns it into PyMySQL's own error at once, so a
    caller meets it only as one of the errors above."""


class ServerErrorPacket(WireError):
    """The server answered with an error packet; ``subject`` is its payload, for PyMySQL to raise."""

    def __init__(self, packet: bytes) -> None:
        super().__init__("the server answered with an error", subject=packet)
        self.packet = packet


class ProtocolMismatchError(WireError):
    """The packets are not the answer to one query: the connection is out of step and unusable.

    ``lost`` says the server closed it (MariaDB sends its shutdown error with sequence number 0).
    """

    def __init__(self, message: str, *, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


class QueryError(DatabaseError):
    """A statement failed on the server for a reason none of the above covers."""

    def __init__(self, message: str, *, subject: object = None, code: int | None = None) -> None:
        super().__init__(message, subject=subject)
        #: The server's error number, when it sent one.
        self.code = code


class ServerStartError(DatabaseError, RuntimeError):
    """A throwaway server could not be started."""


# --- snapshots --------------------------------------------------------------------------


class SnapshotFormatError(SchemaSyncBackupError, ValueError):
    """A snapshot document that cannot be read: damaged, or from an unknown format version."""


class UnrecognisedDefinitionError(SchemaSyncBackupError, ValueError):
    """A CREATE TABLE text laid out in a way this package does not know (or, inside the at-risk analysis, a
    migration statement it has no rule for: that one falls back on the tables the statement names)."""


class SchemaObjectNotFoundError(SchemaSyncBackupError, KeyError):
    """A snapshot has no table (or a table no column) of the name asked for; ``subject`` is the name."""


# --- backup storage ---------------------------------------------------------------------


class StoreError(SchemaSyncBackupError):
    """A backup store operation failed."""


class StorageError(StoreError, OSError):
    """The storage under a store (disk, S3, Azure, GCS, ...) failed; raised from the provider's error."""

    def __init__(self, message: str, *, subject: object = None, url: str = "", path: str = "") -> None:
        super().__init__(message, subject=subject)
        #: The store's URL and the object path the failure is about.
        self.url = url
        self.path = path


class StoragePermissionError(StorageError, PermissionError):
    """The storage refused access: ``failed to create backup: permission denied: <path>``."""


class StorageFullError(StorageError):
    """``failed to write backup file: no space left on device``."""


class StorageNotFoundError(StorageError):
    """The bucket or container the store lives in does not exist (never a missing backup file: not a
    FileNotFoundError, so nothing reads it as a lost object)."""


class StorageTimeoutError(StorageError, TimeoutError):
    """The storage did not answer within the configured connection or read timeout."""


class ConcurrentCreateError(StoreError):
    """Another create of the same database is running (its marker is live); ``allow_concurrent`` overrides."""

    def __init__(self, message: str, *, subject: object = None, running: tuple[str, ...] = ()) -> None:
        super().__init__(message, subject=subject)
        #: The ids of the creates found running.
        self.running = running


class BackupNotFoundError(StoreError, LookupError):
    """No completed backup has this id."""


class BackupFormatError(StoreError, ValueError):
    """A stored manifest or object that cannot be read: damaged, or from an unknown format version."""


class IntegrityError(StoreError):
    """Stored bytes do not match their recorded checksum."""


class ManifestAuthenticationError(IntegrityError):
    """A sealed manifest failed authentication under the key that sealed it: forged or altered."""


class UnsealedBackupError(StoreError):
    """An encrypted store met a manifest no key of it sealed (written without a key, or by someone
    else); it is read only when the caller opts in (``accept_unsealed=True``)."""


class PluginError(StoreError, LookupError):
    """A codec, cipher or notifier named in settings is not provided by any plugin."""


class ArchiveError(StoreError, ValueError):
    """An exported archive that cannot be imported safely (traversal, links, oversize, checksums)."""


class UnknownObjectCodecError(PluginError, BackupFormatError):
    """A stored object's header names a codec or cipher no installed plugin provides.

    Without a manifest record to compare with, this cannot tell a damaged header from a missing
    plugin, so it is both: whoever only wants to know "can these bytes be reused" (a create
    looking for an object to share) treats it as damage and writes the object anew; whoever
    reads a backup gets a plain :class:`PluginError` (or, when the header disagrees with the
    manifest, a :class:`BackupFormatError`) from :func:`~schemasync_backup.framing.decode`.
    """


class StoreBusyError(StoreError):
    """Another process holds what this operation needs; retry later. ``holders`` says who."""

    def __init__(self, message: str, *, subject: object = None, holders: Sequence[LockHolder] = ()) -> None:
        super().__init__(message, subject=subject)
        self.holders = tuple(holders)


class CreateRunningError(StoreBusyError):
    """A prune or optimize refused to start: backups are being created (their ids are in ``holders``)."""


class PruneRunningError(StoreBusyError):
    """A create (or another prune/optimize) gave up: a prune or optimize holds the store lock."""


class BackupValidationError(StoreError):
    """Raised by :meth:`ValidationResult.raise_for_errors`; carries the result."""

    def __init__(self, message: str, *, subject: object = None, result: ValidationResult | None = None) -> None:
        super().__init__(message, subject=subject)
        self.result = result


class RecoveryError(StoreError):
    """partial_recovery found nothing it could save; nothing was written."""


# --- rollback ---------------------------------------------------------------------------


class RollbackError(SchemaSyncBackupError):
    """A rollback could not be planned or carried out."""


class RollbackRefusedError(RollbackError):
    """A rollback was refused before any statement ran (destructive without force, preflight, ...)."""


class RehearsalFailedError(RollbackRefusedError):
    """The plan failed its rehearsal in a scratch database; ``rehearsal`` says where and how."""

    def __init__(self, message: str, *, subject: object = None, rehearsal: object = None) -> None:
        super().__init__(message, subject=subject)
        self.rehearsal = rehearsal


class StalePlanError(RollbackRefusedError):
    """The live schema changed since the plan was made (for a saved plan: or the backup, or what the
    plan made now runs): plan again."""


class PlanFileError(RollbackRefusedError, ValueError):
    """A saved plan file that cannot be executed: not a plan file, an unknown format version, or
    changed after it was saved (its digest does not match); ``subject`` is the file."""


class ConcurrentRollbackError(RollbackRefusedError):
    """Another rollback of the same database holds the server lock."""


class RollbackStepError(RollbackError):
    """A step failed on the server; the journal says what ran and what is left."""

    def __init__(self, message: str, *, subject: object = None, step: int = 0, code: int | None = None) -> None:
        super().__init__(message, subject=subject)
        #: The 1-based number of the failed step, and the server's error number.
        self.step = step
        self.code = code


class RollbackConnectionLostError(RollbackStepError, DatabaseConnectionError):
    """The connection broke during a step: the step is marked failed, its effect on the server unknown."""


class DatabaseMismatchError(RollbackRefusedError):
    """The backup is of another database than the one the rollback would change, and the caller did not
    name that database as ``target_database``."""

    def __init__(self, message: str, *, subject: object = None, backup_database: str = "",
                 target_database: str = "") -> None:
        super().__init__(message, subject=subject)
        #: The database the backup was taken of, and the one the rollback would change.
        self.backup_database = backup_database
        self.target_database = target_database


class UnsafeScriptError(RollbackError, ValueError):
    """A statement the mysql client would not send unchanged: the plan has no safe script form."""
