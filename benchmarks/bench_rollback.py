"""Rollback speed: diff and plan of two large snapshots, the plan's rehearsal, and a rollback that
touches only what a migration changed, against restoring the whole schema from mysqldump's output,
in the same run.

    .venv/bin/python benchmarks/bench_rollback.py [--tables 5000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_capture import generate_schema, load

from schemasync_backup import Snapshot
from schemasync_backup.model.diff import diff
from schemasync_backup.rollback.plan import build_steps
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer


def client(server: ThrowawayServer, *args: str) -> list[str]:
    return ["mariadb", "--no-defaults", "-uroot", f"--socket={server.socket_path}", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=int, default=5000)
    args = parser.parse_args()
    with ThrowawayServer(extra_options=("--table-open-cache=12000",)) as server, \
            tempfile.TemporaryDirectory() as scratch:
        schema = generate_schema(args.tables)
        load(server, "bench", schema)
        store = BackupStore.open(scratch + "/store")
        info = store.create(server.dsn, "bench")
        dump = Path(scratch) / "schema.sql"
        with dump.open("wb") as out:
            subprocess.run(["mariadb-dump", "--no-defaults", "-uroot", f"--socket={server.socket_path}", "--no-data",
                            "--routines", "--triggers", "--events", "bench"], stdout=out, check=True)

        changed = list(schema.tables[1:4])
        migration = [f"ALTER TABLE {q(changed[0])} ADD COLUMN bench_extra INT",
                     f"ALTER TABLE {q(changed[1])} ADD INDEX bench_idx ({q(schema.columns[changed[1]][0])})",
                     f"ALTER TABLE {q(changed[2])} COMMENT 'changed by the benchmark'"]
        subprocess.run(client(server, "bench", "-e", ";".join(migration)), check=True)

        original = store.snapshot(info.id)
        live = Snapshot.capture(server.dsn, "bench")
        started = time.perf_counter()
        differences = diff(live, original)
        steps, _ = build_steps(live, original)
        pure = time.perf_counter() - started
        print(f"== {args.tables} tables: diff + plan of two snapshots (pure) {pure:.3f} s, "
              f"{len(differences.changes)} changed objects, {len(steps)} steps")

        planner = RollbackPlanner(store)
        started = time.perf_counter()
        unrehearsed = planner.plan(server.dsn, info.id, rehearse=False)
        without = time.perf_counter() - started
        started = time.perf_counter()
        plan = planner.plan(server.dsn, info.id)
        planned = time.perf_counter() - started
        assert plan.rehearsal.passed and unrehearsed.steps == plan.steps, plan.rehearsal
        print(f"   rehearsal: {plan.rehearsal.seconds:.2f} s of a {planned:.2f} s plan "
              f"({plan.rehearsal.seconds / planned:.0%}; goal under 20%), {plan.rehearsal.objects_built} objects "
              f"built; the plan without it took {without:.2f} s")
        started = time.perf_counter()
        result = planner.execute(server.dsn, plan, force=True)
        executed = time.perf_counter() - started
        assert result.verified
        print(f"   rollback: plan {planned:.2f} s (capture included), execute {executed:.2f} s "
              f"(pre-rollback backup, {len(plan.steps)} steps, verifying capture) = {planned + executed:.2f} s")

        subprocess.run(client(server, "-e", "CREATE DATABASE bench_restore"), check=True)
        started = time.perf_counter()
        with dump.open("rb") as source:
            subprocess.run(client(server, "bench_restore"), stdin=source, check=True)
        restored = time.perf_counter() - started
        total = planned + executed
        print(f"   mysqldump's schema restored into a fresh database: {restored:.2f} s; "
              f"restore time / rollback time = {restored / total:.2f} (the restore recreates an empty schema, "
              f"the rollback keeps the data of the {args.tables - 3} untouched tables in place)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
