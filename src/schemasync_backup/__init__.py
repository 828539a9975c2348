"""schemasync_backup: make MySQL/MariaDB schema migrations safe to undo."""

from .errors import (
    AuthenticationError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    InvalidSourceError,
    PrivilegeError,
    QueryError,
    SchemaSyncBackupError,
    ServerStartError,
    SnapshotFormatError,
)
from .snapshot import Snapshot

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseNotFoundError",
    "InvalidSourceError",
    "PrivilegeError",
    "QueryError",
    "SchemaSyncBackupError",
    "ServerStartError",
    "Snapshot",
    "SnapshotFormatError",
    "__version__",
]
