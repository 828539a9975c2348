"""Both ways capture reads information_schema give the same snapshot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import pymysql
import pytest

from schemasync_backup import BackupStore, Snapshot
from schemasync_backup.capture import connection, read_ahead
from schemasync_backup.capture import reader as capture
from schemasync_backup.capture.connection import ConnectionSpec, connect, open_source
from schemasync_backup.errors import DatabaseConnectionError, QueryError
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer


def test_row_by_row_reader_matches_the_json_reader(mariadb: ThrowawayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    load_sample(mariadb.dsn, "reader_shop")
    with_json = Snapshot.capture(mariadb.dsn, "reader_shop")
    original = capture._Reader.for_server

    def row_by_row(connection: capture.Connection, server: capture.ServerInfo) -> capture._Reader:
        # What servers older than MariaDB 10.5 / MySQL 8 get: plain rows, ordered by the server.
        return attrs.evolve(original(connection, server), as_json=False)

    monkeypatch.setattr(capture._Reader, "for_server", staticmethod(row_by_row))
    plain = Snapshot.capture(mariadb.dsn, "reader_shop")
    assert attrs.evolve(plain, captured_at="") == attrs.evolve(with_json, captured_at="")
    assert plain.schema_hash == with_json.schema_hash


def pymysql_show_create(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make capture read the SHOW CREATE answers through PyMySQL's own result objects."""
    monkeypatch.setattr(connection, "_RAW_READ_API", (*connection._RAW_READ_API, "_not_in_any_pymysql"))


def test_the_raw_packet_reader_gives_the_snapshot_pymysql_gives(
    mariadb: ThrowawayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_sample(mariadb.dsn, "raw_reader_shop")
    raw = Snapshot.capture(mariadb.dsn, "raw_reader_shop")
    pymysql_show_create(monkeypatch)
    plain = Snapshot.capture(mariadb.dsn, "raw_reader_shop")
    assert attrs.evolve(plain, captured_at="") == attrs.evolve(raw, captured_at="")
    assert plain.to_json() == attrs.evolve(raw, captured_at=plain.captured_at).to_json()


def test_reading_ahead_on_a_second_connection_gives_the_snapshot_one_connection_gives(
    mariadb: ThrowawayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_sample(mariadb.dsn, "read_ahead_shop")
    opened: list[object] = []

    def counted(first: capture.Connection) -> capture.Connection | None:
        second = connection.sibling(first)
        opened.append(second)
        return second

    monkeypatch.setattr(read_ahead, "sibling", counted)
    two = Snapshot.capture(mariadb.dsn, "read_ahead_shop")
    assert len(opened) == 1 and opened[0] is not None and not opened[0].open  # opened once, closed after

    for refusal in (QueryError("[1040] Too many connections", code=1040), DatabaseConnectionError("refused")):
        def refused(first: capture.Connection, refusal: Exception = refusal) -> capture.Connection | None:
            raise refusal

        monkeypatch.setattr(read_ahead, "sibling", refused)
        one = Snapshot.capture(mariadb.dsn, "read_ahead_shop")  # the first connection reads it all
        assert attrs.evolve(one, captured_at="") == attrs.evolve(two, captured_at="")


def test_parallel_false_keeps_capture_and_backup_to_one_connection(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, tmp_path: Path
) -> None:
    """``backup.parallel_operations: false``: the server sees one connection per capture, not two."""
    load_sample(mariadb.dsn, "one_reader_shop")

    def connections_made(capture_once: Callable[[], object]) -> int:
        with root.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            before = int(cursor.fetchone()[1])
            capture_once()
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            return int(cursor.fetchone()[1]) - before

    assert connections_made(lambda: Snapshot.capture(mariadb.dsn, "one_reader_shop")) == 2
    one = Snapshot.capture(mariadb.dsn, "one_reader_shop", parallel=False)
    assert connections_made(lambda: Snapshot.capture(mariadb.dsn, "one_reader_shop", parallel=False)) == 1
    assert attrs.evolve(one, captured_at="") == attrs.evolve(Snapshot.capture(mariadb.dsn, "one_reader_shop"),
                                                             captured_at="")
    store = BackupStore.open(str(tmp_path / "store"))
    assert connections_made(lambda: store.create(mariadb.dsn, "one_reader_shop", parallel=False)) == 1


def test_a_callers_connection_gets_no_second_connection(mariadb: ThrowawayServer) -> None:
    load_sample(mariadb.dsn, "own_connection_shop")
    mine = connect(ConnectionSpec.parse(mariadb.dsn))
    try:
        assert connection.sibling(mine) is None  # its session (a role, say) is not one a new connection gets
        with open_source(mariadb.dsn, "own_connection_shop") as ours:
            second = connection.sibling(ours)
            assert second is not None
            second.close()
        assert Snapshot.capture(mine, "own_connection_shop").tables
    finally:
        mine.close()


def test_a_user_allowed_one_connection_still_captures_everything(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection
) -> None:
    load_sample(mariadb.dsn, "one_connection_shop")
    account = "'one_connection'@'%'"
    with root.cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS {account}")
        cursor.execute(f"CREATE USER {account} IDENTIFIED BY 'secret' WITH MAX_USER_CONNECTIONS 1")
        cursor.execute(f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `one_connection_shop`.* TO {account}")
        cursor.execute(f"GRANT SELECT ON mysql.proc TO {account}")
    try:
        # The second connection is refused (error 1226), so the first reads COLUMNS too.
        limited = Snapshot.capture(mariadb.dsn_for("one_connection_shop", "one_connection", "secret"),
                                   "one_connection_shop")
        full = Snapshot.capture(mariadb.dsn, "one_connection_shop")
        assert attrs.evolve(limited, captured_at="") == attrs.evolve(full, captured_at="")
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP USER {account}")
