"""Rollback speed: undoing a migration of 3 tables in a 500- and a 5,000-table database, against
reloading mysqldump's ``--no-data`` output of the backed-up schema, in the same run.

    .venv/bin/python benchmarks/bench_rollback.py [--sizes 500,5000] [--repeat 3]

Per size: a generated schema (bench_capture.generate_schema), a backup, then ``--repeat`` rounds
of: the migration (ADD COLUMN, ADD INDEX, a table COMMENT), ``plan`` (rehearsed) and ``execute``
(stale check, pinned pre-rollback backup holding the dropped column's data, the steps, the
verifying capture). The best round and the first are printed, with the plan's own share of
capture and rehearsal, the reload of the dump into a fresh database, the ratios the issue asks
for, the peak RSS of this process and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_capture import generate_schema, load

from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer


def client(server: ThrowawayServer, *args: str) -> list[str]:
    return ["mariadb", "--no-defaults", "-uroot", f"--socket={server.socket_path}", *args]


def rollback_rounds(server: ThrowawayServer, store: BackupStore, size: int, repeat: int) -> dict[str, float]:
    database = f"bench{size}"
    schema = generate_schema(size)
    load(server, database, schema)
    info = store.create(server.dsn_for(database), database, description=f"before the migration of {size}")
    changed = list(schema.tables[1:4])
    migration = [f"ALTER TABLE {q(changed[0])} ADD COLUMN bench_extra INT",
                 f"ALTER TABLE {q(changed[1])} ADD INDEX bench_idx ({q(schema.columns[changed[1]][0])})",
                 f"ALTER TABLE {q(changed[2])} COMMENT 'changed by the benchmark'"]
    planner = RollbackPlanner(store)
    rounds = []
    for _ in range(repeat):
        subprocess.run(client(server, database, "-e", ";".join(migration)), check=True)
        started = time.perf_counter()
        plan = planner.plan(server.dsn_for(database), info.id)
        planned = time.perf_counter() - started
        assert plan.rehearsal.passed and len(plan.steps) == 3, (plan.rehearsal, plan.steps)
        started = time.perf_counter()
        result = planner.execute(server.dsn_for(database), plan, force=True)
        executed = time.perf_counter() - started
        assert result.verified
        rounds.append((planned + executed, planned, executed, plan.rehearsal.seconds))
    best = min(rounds)
    return {"first": rounds[0][0], "best": best[0], "plan": best[1], "execute": best[2], "rehearsal": best[3]}


def dump_reload(server: ThrowawayServer, size: int, scratch: str) -> float:
    dump = Path(scratch) / f"schema{size}.sql"
    with dump.open("wb") as out:
        subprocess.run(["mariadb-dump", "--no-defaults", "-uroot", f"--socket={server.socket_path}", "--no-data",
                        "--routines", "--triggers", "--events", f"bench{size}"], stdout=out, check=True)
    subprocess.run(client(server, "-e", f"CREATE DATABASE bench{size}_reload"), check=True)
    started = time.perf_counter()
    with dump.open("rb") as source:
        subprocess.run(client(server, f"bench{size}_reload"), stdin=source, check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="500,5000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    with ThrowawayServer(extra_options=("--table-open-cache=12000", "--event-scheduler=OFF")) as server, \
            tempfile.TemporaryDirectory() as scratch:
        store = BackupStore.open(scratch + "/store")
        for size in sizes:
            results[size] = rollback_rounds(server, store, size, args.repeat)
            results[size]["reload"] = dump_reload(server, size, scratch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}, peak RSS {peak:.0f} MiB")
    print("| tables | rollback s (best) | first s | plan s | of it rehearsal s | execute s | mysqldump reload s "
          "| reload / rollback |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, found in results.items():
        print(f"| {size:,} | {found['best']:.2f} | {found['first']:.2f} | {found['plan']:.2f} | "
              f"{found['rehearsal']:.2f} | {found['execute']:.2f} | {found['reload']:.2f} | "
              f"{found['reload'] / found['best']:.1f}x |")
    if len(sizes) > 1:
        small, large = results[sizes[0]]["best"], results[sizes[-1]]["best"]
        print(f"rollback of {sizes[-1]:,} tables / rollback of {sizes[0]:,}: {large / small:.2f}x "
              "(the same 3-table change)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
