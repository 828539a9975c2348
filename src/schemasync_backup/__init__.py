"""schemasync_backup: make MySQL/MariaDB schema migrations safe to undo."""

from .crypto import EncryptionKey, Keyring
from .diff import SchemaDiff, diff
from .errors import (
    AuthenticationError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseMismatchError,
    DatabaseNotFoundError,
    InvalidSourceError,
    PrivilegeError,
    QueryError,
    RollbackConnectionLostError,
    RollbackError,
    RollbackRefusedError,
    RollbackStepError,
    SchemaSyncBackupError,
    ServerStartError,
    SnapshotFormatError,
)
from .manifest import BackupInfo, MigrationContext, Status
from .retention import RetentionPolicy
from .rollback import RollbackPlan, RollbackPlanner, RollbackStep
from .snapshot import Snapshot
from .store import BackupStore
from .validate import ValidationResult, Validator

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BackupInfo",
    "BackupStore",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseMismatchError",
    "DatabaseNotFoundError",
    "EncryptionKey",
    "InvalidSourceError",
    "Keyring",
    "MigrationContext",
    "PrivilegeError",
    "QueryError",
    "RetentionPolicy",
    "RollbackConnectionLostError",
    "RollbackError",
    "RollbackPlan",
    "RollbackPlanner",
    "RollbackRefusedError",
    "RollbackStep",
    "RollbackStepError",
    "SchemaDiff",
    "SchemaSyncBackupError",
    "ServerStartError",
    "Snapshot",
    "SnapshotFormatError",
    "Status",
    "ValidationResult",
    "Validator",
    "__version__",
    "diff",
]
