"""Validation speed of a large backup: cold and warm parse-check cache, the share that is parsing.

Starts a throwaway MariaDB, loads a generated schema (``generate_schema``: tables with views,
triggers, routines and events in proportion), creates one backup in a temporary file:// store, then
validates it twice with a fresh parse-check cache file: cold (every statement parsed) and warm
(every verdict reused). Prints seconds, the seconds inside sqlglot, the counts, the time to render
the result as the command line prints it, peak RSS and the load average. See benchmarks/README.md.

    .venv/bin/python benchmarks/bench_validate.py [--tables 2000] [--encrypted]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_capture import SERVER_OPTIONS, generate_schema, load

from schemasync_backup.cli.render import _validation_text
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.sql.quoting import parse_problem
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate import parse_checks
from schemasync_backup.validate.parse_checks import ParseCache
from schemasync_backup.validate.validator import Validator


class TimedParser:
    """The real parse check, timing its calls."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, statement: str) -> tuple[bool, str | None]:
        started = time.perf_counter()
        try:
            return parse_problem(statement)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--encrypted", action="store_true", help="an encrypted store (AES-256-GCM)")
    args = parser.parse_args()
    import sqlglot  # noqa: F401 - imported before timing, as a long-running process has it

    timed = TimedParser()
    parse_checks.parse_problem = timed  # type: ignore[assignment]
    with ThrowawayServer(extra_options=SERVER_OPTIONS) as server, tempfile.TemporaryDirectory() as scratch:
        load(server, "bench", generate_schema(args.tables))
        keys = EncryptionKey.generate() if args.encrypted else None
        store = BackupStore.open(f"file://{scratch}/store", encryption_keys=keys)
        started = time.perf_counter()
        info = store.create(server.dsn, "bench")
        created = time.perf_counter() - started
        print(f"== validate of a {args.tables}-table backup ({info.raw_size / 2**20:.1f} MiB raw, "
              f"{info.stored_size / 2**20:.2f} MiB stored, {'encrypted' if keys else 'plain'}); "
              f"create took {created:.2f} s; {os.cpu_count()} cores")
        cache = Path(scratch) / "cache" / "parse-checks.json"
        before = peak_mib()
        for label in ("cold cache", "warm cache"):
            parsed_before, calls_before = timed.seconds, timed.calls
            started = time.perf_counter()
            result = Validator(store, ParseCache(cache)).validate(info.id)
            seconds = time.perf_counter() - started
            parsing = timed.seconds - parsed_before
            started = time.perf_counter()
            text = _validation_text(result)
            printing = time.perf_counter() - started
            print(f"   {label}: {seconds:5.2f} s, of which parsing {parsing:5.2f} s ({parsing / seconds:4.0%}, "
                  f"{timed.calls - calls_before} statements parsed); printing {printing * 1000:.1f} ms, "
                  f"{len(text.splitlines())} lines; valid={result.valid}")
            print(f"      judged {result.parse_checked} ({result.parse_cached} cached), failed {result.parse_failed}, "
                  f"not judged {result.parse_not_judged}, warnings {len(result.warnings)}")
        print(f"   peak RSS {peak_mib():.0f} MiB (after create: {before:.0f} MiB); "
              f"cache file {cache.stat().st_size / 1024:.0f} KiB; load average "
              f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
