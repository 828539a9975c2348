"""One consistent moment to read table data at, on one connection or several, and its binlog position.

Only transactional engines hold still for a snapshot: :func:`non_transactional` names the
tables that do not, so the caller can warn that their rows may be from a later moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from schemasync_backup.capture import privileges, reader
from schemasync_backup.capture.connection import Connection, describe, execute, open_source, query, text
from schemasync_backup.capture.privileges import current_user, snapshot_lock_shortfall
from schemasync_backup.errors import InvalidInputError, PrivilegeError
from schemasync_backup.model.snapshot import Table

#: Engines whose reads see the transaction's snapshot. Aria is not one of them: its TRANSACTIONAL=1
#: is crash safety, and its reads see every commit.
_TRANSACTIONAL_ENGINES = frozenset({"innodb", "xtradb", "rocksdb", "tokudb"})


@attrs.frozen
class Position:
    """Where in the server's binary log the snapshot stands: replication or point-in-time recovery
    started there continues exactly after the data read. All None when the binary log is off."""

    binlog_file: str | None
    binlog_position: int | None
    #: MariaDB's GTID position (``domain-server-sequence``, comma separated); "" before the first GTID.
    gtid: str | None


def require_privileges(source: str, database: str, workers: int) -> None:
    """Refuse before anything is read when a data backup on ``workers`` connections lacks a privilege:
    the schema's and the snapshot lock's in one message, so one round of GRANTs is enough. (On a
    connection of its own: data connections return raw bytes, which the grant rules do not read.)"""
    with open_source(source) as connection:
        privileges.refuse(privileges.backup_shortfalls(connection, reader.server_info(connection).flavor, database,
                                                       data=True, workers=workers), describe(connection))


def start_consistent_snapshot(connections: Sequence[Connection]) -> Position:
    """Start, on each connection, a read-only transaction that sees the same moment; return its position.

    One connection needs no lock: MariaDB reports the binlog position that matches a
    ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` in ``binlog_snapshot_file`` and
    ``binlog_snapshot_position``. Several connections can only start at the same moment while
    nothing commits: a ``FLUSH TABLES WITH READ LOCK``, held just while each starts its
    transaction (it needs the RELOAD privilege, and waits for running writes to finish).
    The transactions stay open; the caller ends them (COMMIT or ROLLBACK) after the reads.
    """
    if not connections:
        raise InvalidInputError("start_consistent_snapshot needs at least one connection", subject=connections)
    if len(connections) == 1:
        _begin(connections[0])
        return _position(connections[0])
    first = connections[0]
    _lock_commits(first, len(connections))
    try:
        for connection in connections:
            _begin(connection)
        return _position(first)
    finally:
        execute(first, "UNLOCK TABLES")


def non_transactional(snapshot_tables: Iterable[Table]) -> list[str]:
    """The names of the tables a snapshot does not hold still: their engine is not transactional."""
    return [table.name for table in snapshot_tables if (table.engine or "").lower() not in _TRANSACTIONAL_ENGINES]


def _begin(connection: Connection) -> None:
    # REPEATABLE READ whatever the session's default: under READ COMMITTED every statement
    # would see a new moment. SET TRANSACTION applies to the next transaction only.
    execute(connection, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    execute(connection, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _lock_commits(connection: Connection, workers: int) -> None:
    try:
        execute(connection, "FLUSH TABLES WITH READ LOCK")
    except PrivilegeError as exc:
        shortfall = snapshot_lock_shortfall(current_user(connection), workers)
        raise PrivilegeError(f"missing privilege on {describe(connection)}: {shortfall.message}",
                             subject=shortfall.subject) from exc


def _position(connection: Connection) -> Position:
    status = {text(row["Variable_name"]).lower(): text(row["Value"])
              for row in query(connection, "SHOW SESSION STATUS LIKE 'binlog\\_snapshot\\_%'")}
    file = status.get("binlog_snapshot_file", "")
    if not file:  # the binary log is off
        return Position(binlog_file=None, binlog_position=None, gtid=None)
    position = int(status["binlog_snapshot_position"])
    # The GTID position of that binlog offset, not @@gtid_binlog_pos: commits since the snapshot
    # started would have moved that one on.
    gtid = query(connection, "SELECT BINLOG_GTID_POS(%s, %s) AS gtid", (file, position))[0]["gtid"]
    return Position(binlog_file=file, binlog_position=position, gtid=None if gtid is None else text(gtid))
