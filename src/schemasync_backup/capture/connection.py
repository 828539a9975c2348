"""DSN parsing, PyMySQL connections and the translation of server errors into ours.

This is the only module that knows PyMySQL's error numbers; everything above it sees the
package's own exceptions with messages a user can act on.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import pymysql
import pymysql.connections
import pymysql.constants.COMMAND
import pymysql.constants.CR
import pymysql.converters
import pymysql.cursors
import pymysql.err

from schemasync_backup.capture import statement_log
from schemasync_backup.capture.pipeline import read_text_result
from schemasync_backup.errors import (
    AuthenticationError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    InvalidSourceError,
    PrivilegeError,
    ProtocolMismatchError,
    QueryError,
    SchemaSyncBackupError,
    ServerErrorPacket,
)

Connection: TypeAlias = pymysql.connections.Connection
#: What every public entry point accepts as a server: a DSN string or an open PyMySQL connection.
Source: TypeAlias = str | Connection
#: The class itself, for isinstance: PyMySQL has no type stubs, so the alias above is Any.
_CONNECTION_CLASS: type[Any] = pymysql.connections.Connection

_SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
_SSL_KEYS = ("ssl_ca", "ssl_cert", "ssl_key")
_ACCESS_DENIED = {1045, 1698}
_UNKNOWN_DATABASE = {1049}
_NO_PRIVILEGE = {1044, 1142, 1143, 1227, 1370}
#: Client error numbers (CR_*): the only ones that are about the connection rather than a statement.
_CLIENT_ERRORS = range(2000, 3000)
#: CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED: the server went away under an open connection.
_LOST = {2006, 2013, 2055}
#: The documented wording of a connection lost under a statement.
LOST_CONNECTION = "lost connection to server during query"


@attrs.frozen(repr=False)
class ConnectionSpec:
    """A parsed DSN. The password never appears in ``repr`` or :meth:`redacted`."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = attrs.field(default="", repr=False)
    database: str | None = None
    unix_socket: str | None = None
    ssl: dict[str, str] = attrs.field(factory=dict)
    connect_timeout: float = 10.0

    @classmethod
    def parse(cls, dsn: str) -> ConnectionSpec:
        """Parse ``mysql://user:pass@host:port/db?unix_socket=..&ssl_ca=..``."""
        parts = urlsplit(dsn)
        if parts.scheme not in _SCHEMES or "://" not in dsn:
            scheme = f"scheme {parts.scheme!r}" if "://" in dsn else "no scheme://, or a scheme that"
            raise InvalidSourceError(
                f"invalid database DSN: {scheme} is not one of "
                f"{', '.join(_SCHEMES)}; write it like mysql://user:password@host:3306/database",
                subject=redact_dsn(dsn),
            )
        if "@" not in parts.netloc and "@" in dsn.partition("://")[2]:
            # An unencoded / ? or # in the password ends the host part early, so the rest of
            # the password would surface as a port or an option name: name neither.
            raise InvalidSourceError(
                "invalid database DSN: an '@' after the host part; percent-encode any '/', '?', '#' or '@' "
                "in the user name, password or database name (%2F, %3F, %23, %40)",
                subject=redact_dsn(dsn),
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"unix_socket", "connect_timeout", *_SSL_KEYS}
        if unknown:
            raise InvalidSourceError(
                f"invalid database DSN: unknown option(s) {', '.join(sorted(unknown))}; "
                f"allowed: unix_socket, connect_timeout, {', '.join(_SSL_KEYS)}",
                subject=redact_dsn(dsn),
            )
        try:
            port = parts.port or 3306
        except ValueError:
            raise InvalidSourceError(
                "invalid database DSN: the port must be a number from 1 to 65535, "
                "like mysql://user:password@host:3306/database",
                subject=redact_dsn(dsn),
            ) from None
        try:
            timeout = float(query.get("connect_timeout", 10))
        except ValueError:
            raise InvalidSourceError(
                "invalid database DSN: connect_timeout must be a number of seconds",
                subject=redact_dsn(dsn),
            ) from None
        database = unquote(parts.path.lstrip("/")) or None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username) if parts.username else "root",
            password=unquote(parts.password) if parts.password else "",
            database=database,
            unix_socket=query.get("unix_socket"),
            ssl={key: query[key] for key in _SSL_KEYS if key in query},
            connect_timeout=timeout,
        )

    def redacted(self) -> str:
        """The DSN as it may be shown to people: no password."""
        where = f"unix:{self.unix_socket}" if self.unix_socket else f"{self.host}:{self.port}"
        return f"mysql://{self.user}@{where}/{self.database or ''}"

    def __repr__(self) -> str:
        return f"ConnectionSpec({self.redacted()!r})"


def redact_dsn(dsn: str) -> str:
    """Remove the password from a DSN so it can go into a message or a log.

    Works on the raw text, not on urlsplit's reading of it: a malformed DSN (an unencoded
    ``/`` in the password, say) splits in the wrong place, and all of it must still go.
    Everything from the first ``:`` of the user part to the last ``@`` is the password.
    """
    scheme, separator, rest = dsn.partition("://")
    if not separator:
        scheme, rest = "", dsn
    at = rest.rfind("@")
    if at < 0:
        return dsn
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}{separator}{user}{':***' if colon else ''}{rest[at:]}"


def connect(spec: ConnectionSpec, database: str | None = None) -> Connection:
    """Open a connection with settings capture and DDL need: utf8mb4, autocommit.

    Never with ``CLIENT.MULTI_STATEMENTS``: each query runs exactly one statement, so a DDL text
    carrying a second statement after a ``;`` fails on the server instead of running it.
    """
    kwargs = _connect_arguments(spec, database)
    with _connecting(spec, kwargs["database"]):
        return _LoggedConnection(**kwargs)


def connect_for_data(spec: ConnectionSpec, database: str | None = None, *, init_command: str) -> Connection:
    """Open a connection for table data: every value arrives as the bytes the server sent.

    No decoders run (a DATETIME stays ``b'0000-00-00 00:00:00'``, a VARCHAR the bytes of its
    charset), and ``LOAD DATA LOCAL`` can send only what :func:`load_local` hands it.
    ``init_command`` sets up the session; PyMySQL runs it again on every reconnect.
    """
    kwargs = _connect_arguments(spec, database)
    with _connecting(spec, kwargs["database"]):
        connection = _DataConnection(
            **kwargs, use_unicode=False, conv=_RAW_CONVERSIONS, local_infile=True, init_command=init_command
        )
    # local_infile=True only makes the handshake offer LOCAL; PyMySQL's own handler (which opens
    # whatever file the server names) is switched off. _DataResult never consults this flag, so
    # if a PyMySQL upgrade ever bypassed it, a LOCAL request fails instead of reading a file.
    connection._local_infile = False
    return connection


@contextlib.contextmanager
def _connecting(spec: ConnectionSpec, database: str | None) -> Iterator[None]:
    """Translate the errors of opening a connection, and log how long it took."""
    started = time.perf_counter()
    with translate_errors(spec.redacted(), database=database, connecting=True):
        yield
    if statement_log.enabled():
        statement_log.SQL_LOGGER.debug("connect %s database=%s duration=%.3fs", spec.redacted(), database or "",
                                       time.perf_counter() - started)


def _connect_arguments(spec: ConnectionSpec, database: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "user": spec.user,
        "password": spec.password,
        "database": database if database is not None else spec.database,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": spec.connect_timeout,
    }
    if spec.unix_socket:
        kwargs["unix_socket"] = spec.unix_socket
        # TLS over a local socket protects nothing, and PyMySQL's try at it (loading the system's
        # certificates) costs a connection 20 ms; asked for explicitly, it is still used.
        kwargs["ssl_disabled"] = not spec.ssl
    else:
        kwargs["host"] = spec.host
        kwargs["port"] = spec.port
    if spec.ssl:
        kwargs["ssl"] = {key.removeprefix("ssl_"): value for key, value in spec.ssl.items()}
    return kwargs


#: PyMySQL's conversions without its decoders: encoders for query arguments stay, values stay bytes.
_RAW_CONVERSIONS = {key: value for key, value in pymysql.converters.conversions.items() if not isinstance(key, int)}
#: How much of a LOAD DATA LOCAL payload goes into one packet.
_LOCAL_PACKET = 64 * 1024


class _DataResult(pymysql.connections.MySQLResult):  # type: ignore[misc]
    """A result whose answer to a server's LOAD DATA LOCAL request never touches the file system."""

    def _read_load_local_packet(self, first_packet: Any) -> None:
        # The server names the file it wants; a client that opens that name sends any file the
        # server asks for (PyMySQL's own handler does). This one ignores the name and sends only
        # the bytes load_local armed for the statement it is running, once; any other request
        # (one the server makes on its own) gets an empty file, and the statement fails below.
        connection = self.connection
        data, connection.local_data = connection.local_data, None
        payload = memoryview(data or b"")
        for start in range(0, len(payload), _LOCAL_PACKET):
            connection.write_packet(payload[start:start + _LOCAL_PACKET])
        connection.write_packet(b"")  # the end of the file
        answer = connection._read_packet()  # raises the server's error, if it sent one
        if not answer.is_ok_packet():
            raise pymysql.err.OperationalError(pymysql.constants.CR.CR_COMMANDS_OUT_OF_SYNC, "Commands Out of Sync")
        self._read_ok_packet(answer)
        if data is None:
            raise QueryError(
                f"the server asked for a local file outside any LOAD DATA of ours ({describe(connection)}); "
                "it was sent none",
                subject=describe(connection),
            )


class _LoggedConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """A PyMySQL connection that logs each statement it runs (:mod:`.statement_log`).

    Every cursor's ``execute`` ends in ``query``, so the statements of the modules that use a
    cursor directly are logged too. The connection's first statements (its ``init_command``) run
    inside ``__init__``, before the instance has settled, and are logged like any other.
    """

    def query(self, sql: str | bytes, unbuffered: bool = False) -> int:
        if not statement_log.enabled():
            return int(super().query(sql, unbuffered))
        sent, started = self._sending(), time.perf_counter()
        try:
            affected = int(super().query(sql, unbuffered))
        except BaseException as exc:
            statement_log.log_statement(sql, time.perf_counter() - started, sent=sent, failed=exc,
                                        secrets=statement_log.password_forms(self.password))
            raise
        # An unbuffered result has only begun to arrive: its rows are counted by no one.
        statement_log.log_statement(sql, time.perf_counter() - started, rows=None if unbuffered else affected,
                                    how="streamed" if unbuffered else "", sent=sent,
                                    secrets=statement_log.password_forms(self.password))
        return affected

    def _sending(self) -> int | None:
        """The bytes the next statement sends besides its text."""
        return None


class _DataConnection(_LoggedConnection):
    """A PyMySQL connection whose results are :class:`_DataResult`."""

    #: The bytes the next LOAD DATA LOCAL may send (set by load_local, taken by _DataResult).
    local_data: bytes | None = None

    def _sending(self) -> int | None:
        return None if self.local_data is None else len(self.local_data)

    def _read_query_result(self, unbuffered: bool = False) -> Any:
        # PyMySQL's own method, with _DataResult for MySQLResult.
        self._result = None
        result = _DataResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows


def is_data_connection(connection: object) -> bool:
    """Whether ``connection`` came from :func:`connect_for_data`."""
    return isinstance(connection, _DataConnection)


def load_local(connection: Connection, statement: str, data: bytes) -> int:
    """Run one ``LOAD DATA LOCAL INFILE`` statement that reads ``data``; return the rows it loaded.

    Whatever file name the statement (or the server) gives, ``data`` is what is sent.
    """
    connection.local_data = data
    try:
        with translate_errors(describe(connection)), connection.cursor() as cursor:
            return int(cursor.execute(statement))
    finally:
        connection.local_data = None


def stream(connection: Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    """Run one query and yield its rows as the server sends them (unbuffered: memory stays flat).

    Nothing else may run on the connection until the rows are read or the iterator is closed.
    """
    with translate_errors(describe(connection)), connection.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(sql)
        yield from cursor


#: What each connection :func:`open_source` opened from a DSN was opened with, for :func:`sibling`.
_OPENED_FROM_DSN: weakref.WeakKeyDictionary[Connection, tuple[ConnectionSpec, str | None]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def open_source(source: Source, database: str | None = None) -> Iterator[Connection]:
    """Yield a connection for ``source``; close it afterwards only if we opened it."""
    if isinstance(source, _CONNECTION_CLASS):
        if database is not None:
            with translate_errors(describe(source), database=database):
                source.select_db(database)
        yield source
        return
    if not isinstance(source, str):
        raise InvalidSourceError(
            f"expected a DSN string or a PyMySQL connection, got {type(source).__name__}",
            subject=source,
        )
    spec = ConnectionSpec.parse(source)
    connection = connect(spec, database)
    _OPENED_FROM_DSN[connection] = (spec, database)
    try:
        yield connection
    finally:
        connection.close()


def sibling(connection: Connection) -> Connection | None:
    """A second connection like ``connection``: the same DSN and database, a session of its own.

    Only for a connection :func:`open_source` opened from a DSN, whose session is the one every
    new connection of that user gets (this package sets no role on it); None for a caller's own
    connection, whose session (an active role, say, which decides what the server lists) a new
    connection would not share.
    """
    opened = _OPENED_FROM_DSN.get(connection)
    return None if opened is None else connect(*opened)


def describe(connection: Connection) -> str:
    where = connection.unix_socket or f"{connection.host}:{connection.port}"
    user = connection.user.decode() if isinstance(connection.user, bytes) else connection.user
    return f"mysql://{user}@{where}/"


@contextlib.contextmanager
def translate_errors(where: str, *, database: str | None = None, connecting: bool = False) -> Iterator[None]:
    """Turn PyMySQL errors into the package's errors with messages that say what to do.

    ``connecting`` says the block opens a connection (a failure there is "failed to connect");
    otherwise a connection error means the connection broke under a statement. Our own errors
    pass through untouched, so nested blocks never translate (and prefix) a message twice.
    """
    try:
        yield
    except SchemaSyncBackupError:
        raise
    except pymysql.err.MySQLError as exc:
        raise translate(exc, where, database=database, connecting=connecting) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if connecting:
            raise DatabaseConnectionError(
                f"failed to connect to database: {reason} ({where}); "
                "check the host, port or socket path and that the server is running",
                subject=where,
            ) from exc
        raise DatabaseConnectionError(
            f"{LOST_CONNECTION} ({where}): {reason}; check that the server is running "
            "(its error log says why it stopped), then see what the interrupted operation left behind",
            subject=where,
        ) from exc


def _unresolved(exc: BaseException) -> bool:
    """Whether connecting failed because the host name does not resolve (PyMySQL raises its error
    while handling the resolver's, and says only "Can't connect")."""
    return any(isinstance(cause, socket.gaierror) for cause in (exc.__cause__, exc.__context__))


def translate(
    exc: pymysql.err.MySQLError, where: str, *, database: str | None = None, connecting: bool = False
) -> DatabaseError:
    """The package's error for a PyMySQL error.

    Only client errors (2000-2999, and PyMySQL's own "connection closed") are connection errors;
    every server error (1000-1999, 3000-4999, ...) is a :class:`QueryError` with its code.
    """
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if code in _ACCESS_DENIED:
        who = text.split("for user ", 1)[-1].split(" (using", 1)[0] if "for user" in text else "?"
        return AuthenticationError(
            f"access denied for user {who}: check the user name and password in the DSN ({where})",
            subject=where,
        )
    if code in _UNKNOWN_DATABASE:
        return DatabaseNotFoundError(
            f"unknown database {database!r} on {where}: check the name, or create it first",
            subject=database,
        )
    if code in _NO_PRIVILEGE:
        return PrivilegeError(
            f"missing privilege on {where}: {text}; grant it to the user or connect as another",
            subject=database,
        )
    closed = isinstance(exc, pymysql.err.InterfaceError) and code == 0
    if closed and not connecting:
        # PyMySQL's answer to any use of a connection it already found broken (or that was closed).
        return DatabaseConnectionError(
            f"the connection to the server is closed ({where}): it was lost under an earlier statement "
            "or closed by the caller; open a new connection",
            subject=where,
        )
    if closed or code in _CLIENT_ERRORS:
        if code in _LOST and not connecting:
            return DatabaseConnectionError(
                f"{LOST_CONNECTION} ({where}): {text}; check that the server is running "
                "(its error log says why it stopped), then see what the interrupted operation left behind",
                subject=where,
            )
        if _unresolved(exc):
            host = text.split(" on '", 1)[1].split("'", 1)[0] if " on '" in text else where
            return DatabaseConnectionError(
                f"failed to connect to database: unknown host {host!r} ({where}); the name does not resolve: "
                "check the host name in the DSN or database.host, and the machine's DNS",
                subject=where,
            )
        reason = "connection refused" if "refused" in text.lower() or code == 2003 else text or "connection closed"
        return DatabaseConnectionError(
            f"failed to connect to database: {reason} ({where}); "
            "check the host, port or socket path and that the server is running",
            subject=where,
        )
    return QueryError(f"query failed on {where}: [{code}] {text}", subject=database, code=code)


def query(connection: Connection, sql: str, args: Any = None) -> list[dict[str, Any]]:
    """Run one statement and return its rows as dicts, errors translated."""
    with translate_errors(describe(connection)), connection.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


#: The most query bytes :func:`query_many` writes before it reads the answers: far below any
#: socket buffer, so the server never waits for us to read while we wait for it to read.
_PIPELINE_WINDOW = 32 * 1024
_PIPELINE_API = ("_sock", "_write_bytes", "_read_query_result", "_next_seq_id", "_result")
#: What :func:`texts_many` reads packets with, besides the pipeline's own.
_RAW_READ_API = ("_read_bytes", "_force_close", "_read_timeout", "_current_timeout", "encoding")
#: PyMySQL's own translation of an error packet into its exception (it always raises).
_raise_server_error: Callable[[bytes], NoReturn] = pymysql.err.raise_mysql_exception
#: The answer to one pipelined query, read off the connection.
_Answer: TypeAlias = Callable[[Connection], list[tuple[Any, ...]]]


def query_many(connection: Connection, statements: list[str]) -> list[list[tuple[Any, ...]]]:
    """Run several statements, one statement per query, and return each one's rows.

    The queries are pipelined: a window of them is written at once and the answers read back in
    order, so a batch costs about one round trip. Each is still its own ``COM_QUERY``, and the
    connection never allows multi-statements, so no query can run more than the one statement.
    If one fails, the rest of the window is read off the connection before the first error is raised.
    """
    return _run_many(connection, statements, _converted_answer)


def texts_many(connection: Connection, statements: list[str]) -> list[list[tuple[str | None, ...]]]:
    """:func:`query_many` with every value as text (``str`` or None), for many small result sets.

    The answers are read straight from the packets (:mod:`.pipeline`), without PyMySQL's objects
    per packet and per column, when the connection decodes text as UTF-8; the values are then the
    ones PyMySQL gives, or their UTF-8 decoding where it gives bytes.
    """
    with translate_errors(describe(connection)):
        raw = all(hasattr(connection, name) for name in _RAW_READ_API) and _can_pipeline(connection)
    if raw and connection.encoding == "utf8":
        return _run_many(connection, statements, _text_answer)
    return [[tuple(None if value is None else text(value) for value in row) for row in rows]
            for rows in query_many(connection, statements)]


def _run_many(connection: Connection, statements: list[str], answer: _Answer) -> list[list[tuple[Any, ...]]]:
    results: list[list[tuple[Any, ...]]] = []
    with translate_errors(describe(connection)):
        if not _can_pipeline(connection):
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                    results.append(list(cursor.fetchall()))
            return results
        encoded = [statement.encode(connection.encoding) for statement in statements]
        start = 0
        while start < len(encoded):
            window: list[bytes] = []
            size = 0
            while start < len(encoded) and (not window or size + len(encoded[start]) <= _PIPELINE_WINDOW):
                window.append(encoded[start])
                size += len(encoded[start]) + 5
                start += 1
            results.extend(_pipeline(connection, window, answer))
    return results


def _can_pipeline(connection: Connection) -> bool:
    if not all(hasattr(connection, name) for name in _PIPELINE_API):
        return False  # a PyMySQL whose internals changed: one round trip per statement still works
    if connection._sock is None:
        raise pymysql.err.InterfaceError(0, "")
    pending = connection._result
    return pending is None or not (pending.unbuffered_active or pending.has_next)


def _pipeline(connection: Connection, window: list[bytes], answer: _Answer) -> list[list[tuple[Any, ...]]]:
    # Each packet: 3-byte length, sequence number 0, COM_QUERY, the statement (all < 16 MiB).
    if any(len(sql) + 1 >= pymysql.connections.MAX_PACKET_LEN for sql in window):
        raise ValueError("a pipelined statement must be smaller than 16 MiB")
    logged = statement_log.enabled()
    answered = time.perf_counter() if logged else 0.0
    connection._write_bytes(b"".join(
        struct.pack("<iB", len(sql) + 1, pymysql.constants.COMMAND.COM_QUERY) + sql for sql in window
    ))
    rows: list[list[tuple[Any, ...]]] = []
    first_error: pymysql.err.MySQLError | None = None
    for sql in window:
        failed: pymysql.err.MySQLError | None = None
        try:
            rows.append(answer(connection))
        except (pymysql.err.OperationalError, pymysql.err.InternalError) as exc:
            if connection._sock is None:
                if logged:
                    _log_pipelined(connection, sql, answered, None, exc)
                raise  # the connection broke: nothing more to read
            failed = exc
        except pymysql.err.MySQLError as exc:
            failed = exc
        if failed is not None:
            first_error = first_error or failed
            rows.append([])
        if logged:
            answered = _log_pipelined(connection, sql, answered, rows[-1], failed)
    if first_error is not None:
        raise first_error
    return rows


def _log_pipelined(connection: Connection, sql: bytes, since: float, rows: list[tuple[Any, ...]] | None,
                   failed: BaseException | None) -> float:
    """Log a pipelined statement whose answer took from ``since`` (the previous answer) to now; return now."""
    now = time.perf_counter()
    statement_log.log_statement(sql.decode(connection.encoding, "replace"), now - since,
                                rows=None if failed else len(rows or ()), how="pipelined", failed=failed,
                                secrets=statement_log.password_forms(getattr(connection, "password", b"")))
    return now


def _converted_answer(connection: Connection) -> list[tuple[Any, ...]]:
    connection._next_seq_id = 1
    connection._read_query_result()
    return list(connection._result.rows or ())


def _text_answer(connection: Connection) -> list[tuple[str | None, ...]]:
    if connection._current_timeout != connection._read_timeout:  # as PyMySQL's _read_packet does
        connection._sock.settimeout(connection._read_timeout)
        connection._current_timeout = connection._read_timeout
    try:
        return read_text_result(connection._read_bytes)
    except ServerErrorPacket as exc:
        _raise_server_error(exc.packet)
    except ProtocolMismatchError as exc:
        connection._force_close()
        if exc.lost:
            raise pymysql.err.OperationalError(
                pymysql.constants.CR.CR_SERVER_LOST, "Lost connection to MySQL server during query"
            ) from exc
        raise pymysql.err.InternalError(str(exc)) from exc


def text(value: object) -> str:
    """A value of :func:`query` as text: a data connection (:func:`connect_for_data`) hands back bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def execute(connection: Connection, statement: str) -> int:
    """Run one statement that returns no rows, errors translated; return the rows it affected."""
    with translate_errors(describe(connection)), connection.cursor() as cursor:
        return int(cursor.execute(statement))
