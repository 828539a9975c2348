"""Shared fixtures: one real throwaway MariaDB server per test process (each xdist worker has its own)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from hypothesis import settings

from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.testing.sandbox import ThrowawayServer

pytest_plugins = ["storage_backends"]

CORPUS = Path(os.environ.get("SCHEMASYNC_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
_names = itertools.count()
# Speed is measured in benchmarks/, never by a test: an example must not fail for being slow while
# another worker shares its core.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
# Validation keeps parse verdicts in the user's cache directory: the tests keep theirs apart.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="schemasync-test-cache-")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[ThrowawayServer]:
    with ThrowawayServer() as server:
        yield server


@pytest.fixture
def root(mariadb: ThrowawayServer) -> Iterator[pymysql.connections.Connection]:
    connection = pymysql.connect(unix_socket=str(mariadb.socket_path), user="root", autocommit=True, charset="utf8mb4")
    yield connection
    connection.close()


@pytest.fixture
def accounts(root: pymysql.connections.Connection) -> Iterator[list[str]]:
    """Users and roles a test makes (as quoted accounts), dropped afterwards: the server outlives the test."""
    made: list[str] = []
    yield made
    with root.cursor() as cursor:
        for account in reversed(made):
            cursor.execute(f"DROP {'USER' if '@' in account else 'ROLE'} IF EXISTS {account}")


@pytest.fixture
def fresh_db(mariadb: ThrowawayServer, root: pymysql.connections.Connection) -> Iterator[str]:
    """An empty database with a unique name, dropped afterwards."""
    name = f"t{os.getpid()}_{next(_names)}"
    with root.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    yield name
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


def run_sql(connection: pymysql.connections.Connection, database: str, *statements: str) -> None:
    connection.select_db(database)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def corpus_entries() -> list[tuple[str, str, dict[str, str]]]:
    """(name, load file, extra env) for every corpus schema, read from the corpus's own verify.sh."""
    verify = CORPUS / "verify.sh"
    if not verify.exists():
        return []
    entries = []
    for line in verify.read_text().splitlines():
        match = re.fullmatch(r"([a-z_]+)\|([^|]+\.sql)\|([^|]*)\|tables=.*", line)
        if match:
            env = dict(pair.split("=", 1) for pair in match.group(3).split())
            entries.append((match.group(1), match.group(2), env))
    return entries


def load_corpus(server: ThrowawayServer, database: str, file: str, env: dict[str, str]) -> None:
    environment = {
        **os.environ, "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(server.port), "MYSQL_USER": "root",
        "MYSQL_PWD": "", "LOAD_DROP": "1", **env,
    }
    subprocess.run([str(CORPUS / "load.sh"), database, str(CORPUS / file)], env=environment, check=True,
                   capture_output=True)
