"""Data backups against the dump tools, in the same run, as ratios.

    .venv/bin/python benchmarks/bench_data.py [--rows 1000000]

One throwaway MariaDB, one database of 50 tables with realistic types and skewed sizes (the
largest table has --rows rows, the others fall off geometrically, one table of --rows/10). It times:

- ``create(data="all", max_workers=2)`` with lz4 and AES-256-GCM, against ``mariadb-dump --single-transaction | lz4``
  and ``mydumper -t 2`` (uncompressed, when installed); peak RSS of this process;
- the restore of that backup (a rollback of the dropped database, parallel=2), against ``mariadb < dump.sql`` and
  ``myloader -t 2``;
- ``create(data="at-risk")`` before a migration that drops a column of the largest table and the
  table of --rows/10 rows, against the full data backup, and the rollback that gives both back;
- a ``data="all"`` backup after changing 1% of the rows, spread out and clustered: the new bytes it stores.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from schemasync_backup import RollbackPlanner
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

TABLE = ("CREATE TABLE {name} (id int unsigned PRIMARY KEY, account bigint NOT NULL, status enum('new','paid','void'), "
         "amount decimal(12,2), ratio double, title varchar(120), body text, created datetime(3), flags bit(8), "
         "payload varbinary(64), KEY (account))")
FILL = ("INSERT INTO {name} SELECT seq, seq * 7919 % 100003, ELT(1 + seq % 3, 'new', 'paid', 'void'), "
        "(seq % 100000) / 100, seq / 3, CONCAT('title ', MD5(seq)), "
        "IF(seq % 5 = 0, NULL, REPEAT(MD5(seq), 1 + seq % 6)), "
        "'2020-01-01' + INTERVAL seq SECOND, seq % 256, UNHEX(MD5(seq)) FROM seq_1_to_{rows}")


def client(server: ThrowawayServer, *args: str) -> list[str]:
    return ["mariadb", "--no-defaults", "-uroot", f"--socket={server.socket_path}", *args]


def sql(server: ThrowawayServer, statement: str, database: str = "") -> None:
    subprocess.run(client(server, *([database] if database else []), "-e", statement), check=True)


def timed(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


def generate(server: ThrowawayServer, rows: int) -> dict[str, int]:
    sql(server, "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench")
    sizes = {f"t{n:02d}": max(100, int(rows * 0.8 ** n)) for n in range(49)}
    sizes["medium"] = rows // 10
    for name, count in sizes.items():
        sql(server, TABLE.format(name=name) + "; " + FILL.format(name=name, rows=count), "bench")
    return sizes


def _stored(scratch: str) -> int:
    return sum(f.stat().st_size for f in Path(scratch, "store").rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the largest table")
    args = parser.parse_args()
    with ThrowawayServer() as server, tempfile.TemporaryDirectory() as scratch:
        sizes = generate(server, args.rows)
        print(f"== {len(sizes)} tables, {sum(sizes.values()):,} rows")
        store = BackupStore.open(scratch + "/store", compression="lz4", encryption_keys=EncryptionKey.generate())
        held: list[object] = []
        ours = timed(lambda: held.append(store.create(server.dsn, "bench", data="all", max_workers=2)))
        info = held[0]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        dump = Path(scratch) / "dump.sql"
        mysqldump = timed(lambda: subprocess.run(
            f"mariadb-dump --no-defaults -uroot --socket={server.socket_path} --single-transaction --routines "
            f"--triggers --events bench | lz4 -q > {dump}.lz4", shell=True, check=True))
        subprocess.run(f"lz4 -dq {dump}.lz4 {dump}", shell=True, check=True)
        mydumper = None
        if shutil.which("mydumper"):
            out = Path(scratch) / "mydumper"
            mydumper = timed(lambda: subprocess.run(
                ["mydumper", f"--socket={server.socket_path}", "--user=root", "--database=bench", "-t", "2",
                 f"--outputdir={out}"], check=True, capture_output=True))
        print(f"   create(data='all'), lz4 + AES-256-GCM: {ours:.2f} s, peak RSS {peak:.0f} MiB, "
              f"{info.data} stored in {info.stored_size / 2**20:.0f} MiB")  # type: ignore[attr-defined]
        print(f"   mariadb-dump --single-transaction | lz4: {mysqldump:.2f} s ({mysqldump / ours:.1f}x ours)")
        if mydumper is not None:
            print(f"   mydumper -t 2: {mydumper:.2f} s (ours / mydumper = {ours / mydumper:.2f})")

        planner = RollbackPlanner(store)
        sql(server, "DROP DATABASE bench")
        restore = timed(lambda: planner.execute(server.dsn, planner.plan(server.dsn, info.id), parallel=2))  # type: ignore[attr-defined]
        sql(server, "DROP DATABASE bench; CREATE DATABASE bench")
        reload = timed(lambda: subprocess.run(client(server, "bench"), stdin=dump.open("rb"), check=True))
        print(f"   restore (rollback of the dropped database, every chunk verified): {restore:.2f} s; "
              f"mariadb < dump.sql {reload:.2f} s ({reload / restore:.1f}x ours)")
        if mydumper is not None and shutil.which("myloader"):
            sql(server, "DROP DATABASE bench")
            myloader = timed(lambda: subprocess.run(
                ["myloader", f"--socket={server.socket_path}", "--user=root", "-t", "2", f"--directory={out}"],
                check=True, capture_output=True))
            print(f"   myloader -t 2: {myloader:.2f} s (ours / myloader = {restore / myloader:.2f})")

        migration = ["ALTER TABLE t00 DROP COLUMN body", "DROP TABLE medium"]
        at_risk: list[object] = []
        risky = timed(lambda: at_risk.append(store.create(server.dsn, "bench", data="at-risk", migration=migration)))
        print(f"   create(data='at-risk') before dropping t00.body and table medium: {risky:.2f} s "
              f"({risky / ours:.0%} of the full data backup)")
        for statement in migration:
            sql(server, statement, "bench")
        back = timed(lambda: planner.execute(server.dsn, planner.plan(server.dsn, at_risk[0].id),  # type: ignore[attr-defined]
                                             destructive_confirmed=True))
        print(f"   the rollback that gives both back: {back:.2f} s")

        # The database now holds what the rollbacks and the dump tools' reloads wrote: a baseline of it first.
        baseline = store.create(server.dsn, "bench", data="all", max_workers=2)
        newest = f"id > {args.rows * 99 // 100}"
        for what, where in (("spread over t00", "id % 100 = 0"), ("the newest of t00", newest)):
            before = _stored(scratch)
            sql(server, f"UPDATE t00 SET amount = amount + 1 WHERE {where}", "bench")
            store.create(server.dsn, "bench", data="all", max_workers=2)
            new = _stored(scratch) - before
            print(f"   a data='all' backup after changing 1% of t00's rows ({what}) stored {new / 2**20:.1f} MiB new "
                  f"({new / baseline.stored_size:.1%} of a full one)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
