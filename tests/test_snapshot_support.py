"""Helpers shared by the snapshot, capture and connection tests (this module holds no tests).

Every helper works against the real throwaway MariaDB server of the ``mariadb`` fixture.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Iterator

import pymysql

from schemasync_backup import Snapshot
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.sql.quoting import quote_identifier, quote_string
from schemasync_backup.testing.sandbox import ThrowawayServer

_numbers = itertools.count()


def unique_name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}_{next(_numbers)}"


def connect(server: ThrowawayServer, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        unix_socket=str(server.socket_path), user="root", database=database, autocommit=True, charset="utf8mb4"
    )


@contextlib.contextmanager
def scratch_database(server: ThrowawayServer, *, charset: str = "utf8mb4",
                     collation: str = "utf8mb4_general_ci") -> Iterator[str]:
    """An empty database with a unique name, and every database named after it dropped afterwards."""
    name = unique_name("ss")
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET {charset} COLLATE {collation}")
        try:
            yield name
        finally:
            cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                           (name + "%",))
            for (found,) in cursor.fetchall():
                cursor.execute(f"DROP DATABASE {quote_identifier(found)}")


def execute(server: ThrowawayServer, database: str, *statements: str) -> None:
    with contextlib.closing(connect(server, database)) as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def create_texts(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    """Every object's SHOW CREATE text, by (kind, name)."""
    texts = {("table", t.name): t.create_sql for t in snapshot.tables}
    texts |= {("view", v.name): v.create_sql for v in snapshot.views}
    texts |= {("trigger", t.name): t.create_sql for t in snapshot.triggers}
    texts |= {(r.kind, r.name): r.create_sql for r in snapshot.routines}
    texts |= {("event", e.name): e.create_sql for e in snapshot.events}
    return texts


def load_with_client(server: ThrowawayServer, script: str) -> None:
    """Feed a to_sql() script to the real mariadb command-line client, as a user would."""
    result = subprocess.run(
        ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{server.port}", "-uroot"],
        input=script.encode("utf-8"), capture_output=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def assert_restores(server: ThrowawayServer, original: Snapshot, *, via_client: bool = True) -> None:
    """Restore ``original`` through restore_snapshot (and the mariadb client): same hash, same texts."""
    copies = [original.database + "_r"]
    restore_snapshot(original, server.dsn, copies[0])
    if via_client:
        copies.append(original.database + "_c")
        load_with_client(server, original.to_sql(database=copies[1]))
    for copy in copies:
        restored = Snapshot.capture(server.dsn, copy)
        assert create_texts(restored) == create_texts(original), copy
        assert restored.schema_hash == original.schema_hash, copy


def literal(value: str, sql_mode: str = "") -> str:
    """A string literal for a statement that runs under ``sql_mode``."""
    return quote_string(value, backslash_escapes="NO_BACKSLASH_ESCAPES" not in sql_mode.upper())
