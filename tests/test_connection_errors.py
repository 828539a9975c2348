"""Bad input meets the real server: each failure is its own error class with a message that says
what to do, and a password never shows, whatever goes wrong."""

from __future__ import annotations

import contextlib
import socket
import traceback
from collections.abc import Callable, Iterator

import pymysql
import pytest

from schemasync_backup import (
    AuthenticationError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    InvalidSourceError,
    PrivilegeError,
    SchemaSyncBackupError,
    Snapshot,
    SnapshotFormatError,
)
from schemasync_backup.capture.connection import ConnectionSpec, redact_dsn
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

PASSWORD = "Sup3r-S3cret"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _user(root: pymysql.connections.Connection, name: str, *grants: str) -> Iterator[str]:
    """A user ``name``@``%`` with PASSWORD and ``grants`` (each ``<privileges> ON <target>``)."""
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{PASSWORD}'")
        for grant in grants:
            cursor.execute(f"GRANT {grant} TO '{name}'@'%'")
    try:
        yield name
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP USER '{name}'@'%'")


def _dsn(server: ThrowawayServer, user: str = "root", password: str = PASSWORD, port: int | None = None) -> str:
    return f"mysql://{user}:{password}@127.0.0.1:{port or server.port}/"


def _failure(action: Callable[[], object], kind: type[SchemaSyncBackupError]) -> SchemaSyncBackupError:
    with pytest.raises(SchemaSyncBackupError) as caught:
        action()
    error = caught.value
    assert type(error) is kind, f"{type(error).__name__}: {error}"
    _assert_no_password(error)
    return error


def _assert_no_password(error: BaseException) -> None:
    """Not in the message, the repr, the subject, nor anywhere in the printed traceback chain."""
    subject = getattr(error, "subject", None)
    shown = [str(error), repr(error), repr(subject), str(subject), "".join(traceback.format_exception(error))]
    for text in shown:
        assert PASSWORD not in text
        assert "S3cret" not in text


def test_a_host_that_does_not_resolve_is_an_unknown_host() -> None:
    # .invalid never resolves (RFC 2606), so no server and no network are involved.
    error = _failure(lambda: Snapshot.capture(f"mysql://root:{PASSWORD}@no-such-host.invalid/", "mysql"),
                     DatabaseConnectionError)
    assert "failed to connect to database: unknown host 'no-such-host.invalid'" in str(error)
    assert "refused" not in str(error)


def test_unreachable_server(mariadb: ThrowawayServer) -> None:
    error = _failure(lambda: Snapshot.capture(_dsn(mariadb, port=_closed_port()), "mysql"), DatabaseConnectionError)
    assert "failed to connect to database: connection refused" in str(error)
    assert isinstance(error, ConnectionError)
    assert isinstance(error, OSError)
    assert isinstance(error, DatabaseError)


def test_wrong_password(mariadb: ThrowawayServer, root: pymysql.connections.Connection) -> None:
    with _user(root, "u", "SELECT ON mysql.*"):
        error = _failure(lambda: Snapshot.capture(_dsn(mariadb, "u", "wrong-" + PASSWORD), "mysql"),
                         AuthenticationError)
    assert "access denied for user 'u'@'127.0.0.1'" in str(error)
    assert isinstance(error, PermissionError)


def test_unknown_database(mariadb: ThrowawayServer, root: pymysql.connections.Connection) -> None:
    # Server-wide SELECT: without it the server answers "access denied" for any unknown database.
    with _user(root, "finder", "SELECT ON *.*"):
        error = _failure(lambda: Snapshot.capture(_dsn(mariadb, "finder"), "no_such_database"), DatabaseNotFoundError)
    assert "unknown database 'no_such_database'" in str(error)
    assert isinstance(error, LookupError)
    assert error.subject == "no_such_database"


def test_unknown_database_through_an_open_connection(mariadb: ThrowawayServer,
                                                     root: pymysql.connections.Connection) -> None:
    error = _failure(lambda: Snapshot.capture(root, "no_such_database"), DatabaseNotFoundError)
    assert "unknown database" in str(error)


def test_missing_privilege_names_the_grant(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                           fresh_db: str) -> None:
    with _user(root, "select_only", f"SELECT ON `{fresh_db}`.*"):
        error = _failure(lambda: Snapshot.capture(_dsn(mariadb, "select_only"), fresh_db), PrivilegeError)
    assert "lacks SHOW VIEW, TRIGGER, EVENT" in str(error)
    # On exactly this database (a GRANT's _ is a wildcard unless escaped): what is lacking, and the
    # SELECT the pattern grant gives, which the server stops using once an exact grant exists.
    escaped = fresh_db.replace("_", "\\_")
    assert f"GRANT SHOW VIEW, TRIGGER, EVENT, SELECT ON `{escaped}`.* TO 'select_only'@'%';" in str(error)
    assert isinstance(error, PermissionError)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgres://u:Sup3r-S3cret@127.0.0.1/db",
        "mysql:/u:Sup3r-S3cret@127.0.0.1/db",
        "127.0.0.1:3306",
        "mysql://u:Sup3r-S3cret@127.0.0.1:port/db",
        "mysql://u:Sup3r-S3cret@127.0.0.1:99999/db",
        "mysql://u:Sup3r-S3cret@127.0.0.1/db?unknown_option=1",
        "mysql://u:Sup3r-S3cret@127.0.0.1/db?verbose",
        "mysql://u:Sup3r-S3cret@127.0.0.1/db?connect_timeout=soon",
        # Unencoded / ? # in a password end the host part early: the rest must not leak as a port or option.
        "mysql://u:Sup3r/S3cret@127.0.0.1/db",
        "mysql://u:Sup3r?S3cret=1@127.0.0.1/db",
        "mysql://u:1234?S3cret@127.0.0.1/db",
        "mysql://u:Sup3r#S3cret@127.0.0.1/db",
    ],
)
def test_malformed_dsn(dsn: str) -> None:
    error = _failure(lambda: ConnectionSpec.parse(dsn), InvalidSourceError)
    assert str(error).startswith("invalid database DSN: ")
    assert isinstance(error, ValueError)
    error = _failure(lambda: Snapshot.capture(dsn, "db"), InvalidSourceError)


def test_not_a_source_at_all() -> None:
    error = _failure(lambda: Snapshot.capture(42, "db"), InvalidSourceError)
    assert "expected a DSN string or a PyMySQL connection" in str(error)


def test_password_stays_out_of_spec_repr_and_redactions() -> None:
    dsn = f"mysql://u:{PASSWORD}@db.example:3307/shop?connect_timeout=3"
    spec = ConnectionSpec.parse(dsn)
    assert spec.password == PASSWORD
    for text in (repr(spec), str(spec), spec.redacted(), redact_dsn(dsn)):
        assert PASSWORD not in text
    assert redact_dsn(dsn) == "mysql://u:***@db.example:3307/shop?connect_timeout=3"
    assert redact_dsn("mysql://u:pa/ss@word@h/db") == "mysql://u:***@h/db"
    assert redact_dsn("mysql://h/db") == "mysql://h/db"


def test_percent_encoded_password_works(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                        fresh_db: str) -> None:
    """What the malformed-DSN message asks for: percent-encoding makes any password usable."""
    with root.cursor() as cursor:
        cursor.execute("CREATE USER 'enc'@'%' IDENTIFIED BY 'p/w?#@x'")
        cursor.execute(f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `{fresh_db}`.* TO 'enc'@'%'")
        cursor.execute("GRANT SELECT ON mysql.proc TO 'enc'@'%'")
    try:
        snapshot = Snapshot.capture(f"mysql://enc:p%2Fw%3F%23%40x@127.0.0.1:{mariadb.port}/", fresh_db)
        assert snapshot.database == fresh_db
    finally:
        with root.cursor() as cursor:
            cursor.execute("DROP USER 'enc'@'%'")


def test_error_classes_are_distinct_and_match_builtins() -> None:
    expected = {
        InvalidSourceError: ValueError,
        DatabaseConnectionError: ConnectionError,
        AuthenticationError: PermissionError,
        DatabaseNotFoundError: LookupError,
        PrivilegeError: PermissionError,
        SnapshotFormatError: ValueError,
    }
    for kind, builtin in expected.items():
        assert issubclass(kind, SchemaSyncBackupError)
        assert issubclass(kind, builtin)
    for kind in (DatabaseConnectionError, AuthenticationError, DatabaseNotFoundError, PrivilegeError):
        assert issubclass(kind, DatabaseError)
    for kind in expected:
        assert not any(issubclass(kind, other) for other in expected if other is not kind)
