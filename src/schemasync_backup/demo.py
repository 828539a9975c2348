"""The main job on an embedded default: a throwaway MariaDB, a sample schema, and the library at work.

Run it with ``python -m schemasync_backup.demo`` (or the ``schemasync-demo`` script).
"""

from __future__ import annotations

import argparse
import time

from .restore import restore_snapshot
from .samples import load_sample
from .sandbox import ThrowawayServer
from .snapshot import Snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", default="shop", help="which bundled sample schema to load")
    parser.add_argument("--no-ddl", action="store_true", help="do not print the DDL script")
    args = parser.parse_args(argv)

    with ThrowawayServer() as server:
        print(f"started a throwaway MariaDB on 127.0.0.1:{server.port} (datadir {server.workdir})")
        load_sample(server.dsn, "shop", args.sample)

        started = time.perf_counter()
        snapshot = Snapshot.capture(server.dsn, "shop")
        print(f"\n== capture ({(time.perf_counter() - started) * 1000:.0f} ms)\n{snapshot}")

        if not args.no_ddl:
            print(f"\n== DDL that recreates it\n{snapshot.to_sql()}")

        restore_snapshot(snapshot, server.dsn, "shop_restored")
        restored = Snapshot.capture(server.dsn, "shop_restored")
        verdict = "identical" if restored.schema_hash == snapshot.schema_hash else "DIFFERENT"
        print(f"== restored into `shop_restored` and captured again: schema hash {restored.schema_hash} ({verdict})")
        return 0 if verdict == "identical" else 1


if __name__ == "__main__":
    raise SystemExit(main())
