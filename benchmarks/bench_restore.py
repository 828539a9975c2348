"""The data restore of a rollback on 1, 2, ... connections, as seconds.

    .venv/bin/python benchmarks/bench_restore.py [--rows 1000000] [--parallel 1 2]

One throwaway MariaDB, one table of --rows rows (the types of bench_data.py), backed up with
``data="all"`` and dropped; then, for each --parallel, the rollback that reloads it (planned
first, untimed), after dropping the table again.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time

from schemasync_backup import RollbackPlanner
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

TABLE = ("CREATE TABLE big (id int unsigned PRIMARY KEY, account bigint NOT NULL, status enum('new','paid','void'), "
         "amount decimal(12,2), title varchar(120), body text, created datetime(3), KEY (account))")
FILL = ("INSERT INTO big SELECT seq, seq * 7919 % 100003, ELT(1 + seq % 3, 'new', 'paid', 'void'), "
        "(seq % 100000) / 100, CONCAT('title ', MD5(seq)), IF(seq % 5 = 0, NULL, REPEAT(MD5(seq), 1 + seq % 3)), "
        "'2020-01-01' + INTERVAL seq SECOND FROM seq_1_to_{rows}")


def sql(server: ThrowawayServer, statement: str) -> None:
    subprocess.run(["mariadb", "--no-defaults", "-uroot", f"--socket={server.socket_path}", "-e", statement],
                   check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with ThrowawayServer() as server, tempfile.TemporaryDirectory() as scratch:
        sql(server, f"CREATE DATABASE bench; USE bench; {TABLE}; {FILL.format(rows=args.rows)}")
        store = BackupStore.open(scratch + "/store", compression="lz4")
        started = time.perf_counter()
        info = store.create(server.dsn, "bench", data="all")
        print(f"backup of {args.rows:,} rows: {time.perf_counter() - started:.1f} s, "
              f"{info.data.size if info.data else 0:,} bytes in chunks")
        planner = RollbackPlanner(store)
        for parallel in args.parallel:
            sql(server, "DROP TABLE bench.big")
            plan = planner.plan(server.dsn, info.id, rehearse=False)
            started = time.perf_counter()
            result = planner.execute(server.dsn, plan, parallel=parallel, destructive_confirmed=True)
            print(f"restore, parallel={parallel}: {time.perf_counter() - started:.1f} s (verified: {result.verified})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
