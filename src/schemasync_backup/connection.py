"""DSN parsing, PyMySQL connections and the translation of server errors into ours.

This is the only module that knows PyMySQL's error numbers; everything above it sees the
package's own exceptions with messages a user can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import pymysql
import pymysql.connections
import pymysql.constants.CLIENT
import pymysql.cursors

from .errors import (
    AuthenticationError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    InvalidSourceError,
    PrivilegeError,
    QueryError,
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
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}


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
    """Open a connection with settings capture and DDL need: utf8mb4, autocommit, multi-statements."""
    kwargs: dict[str, Any] = {
        "user": spec.user,
        "password": spec.password,
        "database": database if database is not None else spec.database,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": spec.connect_timeout,
        "client_flag": pymysql.constants.CLIENT.MULTI_STATEMENTS,
    }
    if spec.unix_socket:
        kwargs["unix_socket"] = spec.unix_socket
    else:
        kwargs["host"] = spec.host
        kwargs["port"] = spec.port
    if spec.ssl:
        kwargs["ssl"] = {key.removeprefix("ssl_"): value for key, value in spec.ssl.items()}
    with translate_errors(spec.redacted(), database=kwargs["database"]):
        return pymysql.connect(**kwargs)


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
    connection = connect(ConnectionSpec.parse(source), database)
    try:
        yield connection
    finally:
        connection.close()


def describe(connection: Connection) -> str:
    where = connection.unix_socket or f"{connection.host}:{connection.port}"
    user = connection.user.decode() if isinstance(connection.user, bytes) else connection.user
    return f"mysql://{user}@{where}/"


@contextlib.contextmanager
def translate_errors(where: str, *, database: str | None = None) -> Iterator[None]:
    """Turn PyMySQL errors into the package's errors with messages that say what to do."""
    try:
        yield
    except pymysql.err.MySQLError as exc:
        raise translate(exc, where, database=database) from exc
    except OSError as exc:
        raise DatabaseConnectionError(
            f"failed to connect to database: {exc.strerror or exc} ({where}); "
            "check the host, port or socket path and that the server is running",
            subject=where,
        ) from exc


def translate(exc: pymysql.err.MySQLError, where: str, *, database: str | None = None) -> DatabaseError:
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
    if code in _UNREACHABLE or (isinstance(exc, pymysql.err.OperationalError) and code is not None and code >= 2000):
        reason = "connection refused" if "refused" in text.lower() or code == 2003 else text
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


def query_many(connection: Connection, statements: list[str]) -> list[list[tuple[Any, ...]]]:
    """Send several statements in one round trip and return each one's rows."""
    results: list[list[tuple[Any, ...]]] = []
    if not statements:
        return results
    with translate_errors(describe(connection)), connection.cursor() as cursor:
        cursor.execute(";\n".join(statements))
        results.append(list(cursor.fetchall()))
        while cursor.nextset():
            results.append(list(cursor.fetchall()))
    return results


def execute(connection: Connection, statement: str) -> None:
    """Run one statement that returns no rows, errors translated."""
    with translate_errors(describe(connection)), connection.cursor() as cursor:
        cursor.execute(statement)
