"""Data backups under a SIGKILL and under concurrent writes, on the real MariaDB."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pymysql
import pytest
from conftest import run_sql

from schemasync_backup import RollbackPlanner, Validator
from schemasync_backup.formats.manifest import Status
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server
KEY = EncryptionKey.generate()

# --- a SIGKILL while chunks are written ------------------------------------------------------------------

_CREATE = """
import sys
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.store.store import BackupStore
store = BackupStore.open(sys.argv[1], encryption_keys=EncryptionKey.from_value(sys.argv[2]), frame_size=4096)
store.create(sys.argv[3], sys.argv[4], data="all", chunk_bytes=16384)
"""


def object_files(root: Path) -> list[Path]:
    return [path for path in (root / "objects").rglob("*") if path.is_file()] if (root / "objects").exists() else []


def kill_after_objects(command: list[str], root: Path, objects: int, log: Path) -> None:
    """Run ``command`` and SIGKILL it once ``objects`` more object files exist (it must still be running)."""
    before = len(object_files(root))
    with log.open("wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + 120
        while len(object_files(root)) < before + objects:
            assert process.poll() is None, f"the create ended before {objects} chunks: {log.read_text()}"
            assert time.monotonic() < deadline, "no chunks written in two minutes"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the create finished before the kill: make the table bigger"


def test_sigkill_during_a_data_backup_never_lists_it_complete(
    tmp_path: Path, mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str
) -> None:
    # ~20 MB of rows in chunks of at most 16 KiB: thousands of chunk objects, written over seconds.
    run_sql(root, fresh_db, "CREATE TABLE big (id int PRIMARY KEY, pad varchar(100) NOT NULL) ENGINE=InnoDB",
            "INSERT INTO big SELECT seq, CONCAT(seq, REPEAT('x', 80)) FROM seq_1_to_200000")
    folder = tmp_path / "store"
    command = [sys.executable, "-c", _CREATE, str(folder), KEY.material.hex(), mariadb.dsn, fresh_db]
    for objects in (3, 60):
        kill_after_objects(command, folder, objects, tmp_path / "create.log")
    # The kills landed in the data phase: chunks are stored, but no manifest was ever written (it is
    # the last thing a create writes, after the snapshot object that follows the chunks).
    assert len(object_files(folder)) >= 63
    manifests = list((folder / "manifests").iterdir()) if (folder / "manifests").exists() else []
    assert manifests == []
    store = BackupStore.open(str(folder), encryption_keys=KEY)
    listed = store.list()
    assert len(listed) == 2 and {info.status for info in listed} == {Status.CREATING}
    assert store.list(status="COMPLETED") == []
    scan = Validator(store).recovery_scan()
    pending = {path.stem for path in (folder / "pending").iterdir()}
    assert pending == {info.id for info in listed}
    assert pending == {entry.backup_id for entry in scan if entry.kind == "incomplete"}
    assert not [entry for entry in scan if entry.kind in ("damaged", "running")]
    orphans = {Path(entry.path).name for entry in scan if entry.kind == "orphaned_object"}
    assert orphans == {path.name for path in object_files(folder)}
    leftovers = list((folder / "tmp").iterdir()) if (folder / "tmp").exists() else []
    assert all(not path.name.endswith(".json") for path in leftovers)
    # Prune takes the leftovers away: the dead creates' markers and (past the grace period) their chunks.
    pruned = store.prune(grace=timedelta(0))
    assert set(pruned.removed_markers) == pending and len(pruned.removed_objects) == len(orphans)
    assert store.list() == [] and object_files(folder) == []
    # And the store works as before: a data backup taken now is whole.
    info = store.create(mariadb.dsn, fresh_db, data=["big"], chunk_bytes=1 << 20)
    assert info.status == Status.COMPLETED and Validator(store).validate(info.id).valid


# --- a backup beside concurrent writers ----------------------------------------------------------------------

ACCOUNTS = 20_000
BALANCE = 1_000
#: Deadlock, lock wait timeout: a writer's transaction lost a race; it rolls back and goes on.
_RETRY = {1213, 1205}


class Writers:
    """Threads that move money between accounts in transactions, add accounts and close them: the sum
    of balances never changes, and ``meta.accounts`` always counts the rows, at every commit."""

    def __init__(self, server: ThrowawayServer, database: str, threads: int) -> None:
        self.server, self.database = server, database
        self.stop = threading.Event()
        self.commits = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(ACCOUNTS + 1)
        self._threads = [threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not self.errors, self.errors

    def wait_for(self, commits: int) -> None:
        deadline = time.monotonic() + 60
        while self.commits < commits:
            assert not self.errors and time.monotonic() < deadline, self.errors
            time.sleep(0.01)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        try:
            connection = pymysql.connect(unix_socket=str(self.server.socket_path), user="root",
                                         database=self.database, autocommit=False)
            with connection, connection.cursor() as cursor:
                while not self.stop.is_set():
                    try:
                        if self._transaction(cursor, rng):
                            connection.commit()
                            with self._lock:
                                self.commits += 1
                        else:
                            connection.rollback()
                    except pymysql.err.OperationalError as exc:
                        if exc.args[0] not in _RETRY:
                            raise
                        connection.rollback()
        except BaseException as exc:  # handed to the test thread, which fails with it
            self.errors.append(exc)

    def _transaction(self, cursor: pymysql.cursors.Cursor, rng: random.Random) -> bool:
        """One change that keeps both invariants; False when it found nothing to change (rolled back)."""
        source, target = rng.randint(1, ACCOUNTS * 2), rng.randint(1, ACCOUNTS * 2)
        kind = rng.random()
        cursor.execute("SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (source,))
        found = cursor.fetchone()
        if found is None:
            return False
        if kind < 0.6:  # a transfer
            amount = rng.randint(1, 50)
            cursor.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, target))
            if cursor.rowcount != 1 or source == target:
                return False
            cursor.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, source))
        elif kind < 0.8:  # a new account, funded from another
            amount = rng.randint(1, 50)
            cursor.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, source))
            cursor.execute("INSERT INTO accounts VALUES (%s, %s, REPEAT('n', 40))", (next(self._ids), amount))
            cursor.execute("UPDATE meta SET accounts = accounts + 1")
        else:  # an account closed, its balance moved to another
            cursor.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (found[0], target))
            if cursor.rowcount != 1 or source == target:
                return False
            cursor.execute("DELETE FROM accounts WHERE id = %s", (source,))
            cursor.execute("UPDATE meta SET accounts = accounts - 1")
        return True


def invariants(root: pymysql.connections.Connection, database: str) -> tuple[int, int, int]:
    """(sum of balances, rows of accounts, meta.accounts), read in one transaction."""
    root.select_db(database)
    with root.cursor() as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cursor.execute("SELECT SUM(balance), COUNT(*) FROM accounts")
        total, count = cursor.fetchone()
        cursor.execute("SELECT accounts FROM meta")
        (counted,) = cursor.fetchone()
        cursor.execute("COMMIT")
    return int(total), int(count), int(counted)


@pytest.mark.parametrize("workers", [1, 4])
def test_a_data_backup_beside_concurrent_writers_restores_one_moment(
    tmp_path: Path, mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str, workers: int
) -> None:
    # Several reading connections share one moment through a brief FLUSH TABLES WITH READ LOCK.
    run_sql(root, fresh_db,
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, note varchar(60)) ENGINE=InnoDB",
            f"INSERT INTO accounts SELECT seq, {BALANCE}, REPEAT('o', 40) FROM seq_1_to_{ACCOUNTS}",
            "CREATE TABLE meta (id int PRIMARY KEY, accounts int NOT NULL) ENGINE=InnoDB",
            f"INSERT INTO meta VALUES (1, {ACCOUNTS})")
    store = BackupStore.open(str(tmp_path / "store"))
    with Writers(mariadb, fresh_db, threads=4) as writers:
        writers.wait_for(50)
        before = writers.commits
        info = store.create(mariadb.dsn, fresh_db, data="all", chunk_bytes=16384, max_workers=workers)
        during = writers.commits - before
        writers.wait_for(writers.commits + 50)
    assert during > 0, "no write committed while the backup read: the test proves nothing"
    live = invariants(root, fresh_db)
    assert live[0] == ACCOUNTS * BALANCE and live[1] == live[2]
    index = store.data_index(info.id)
    assert index is not None and len(index.table("accounts").chunks) > 10  # type: ignore[union-attr]
    backed_up = index.table("accounts").rows  # type: ignore[union-attr]
    run_sql(root, "mysql", f"DROP DATABASE `{fresh_db}`")
    planner = RollbackPlanner(store)
    assert planner.execute(mariadb.dsn, planner.plan(mariadb.dsn, info.id)).verified
    # One moment: the money all there, and the row count the same moment's meta row says, in both tables.
    total, count, counted = invariants(root, fresh_db)
    assert (total, count, counted) == (ACCOUNTS * BALANCE, backed_up, backed_up)
    assert planner.validate(mariadb.dsn, info.id).data_matches is True
