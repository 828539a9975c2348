"""Table data speed: read_chunks, load_chunk (LOAD DATA and INSERT) and chunk_digest on ~100 MB tables.

    .venv/bin/python benchmarks/bench_table_data.py [--rows 500000] [--narrow-rows 2000000]

Two tables in a throwaway MariaDB: "wide" (id, int, varchar, double, datetime(6), text with
tabs and backslashes; ~200 bytes a row) and "narrow" (three integers; ~25 bytes a row), with
mariadb-dump's time for the same rows beside ours.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import time

from schemasync_backup.capture.connection import ConnectionSpec, execute
from schemasync_backup.capture.table_data import Chunk, chunk_digest, load_chunk, open_data_connection, read_chunks
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.testing.sandbox import ThrowawayServer

TABLES = {
    "wide": (
        "id int PRIMARY KEY, a int, b varchar(200), c double, d datetime(6), e text",
        "SELECT n, n * 7 % 100000, REPEAT(MD5(n), 2 + n % 3), n / 7, '2020-01-01' + INTERVAL n SECOND, "
        "REPEAT(CONCAT(MD5(n), '\\t\\\\x'), 1 + n % 2) FROM s",
    ),
    "narrow": ("id bigint PRIMARY KEY, a int, b int", "SELECT n, n % 1000, n * 3 FROM s"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the wide table")
    parser.add_argument("--narrow-rows", type=int, default=2_000_000, help="rows of the narrow table")
    arguments = parser.parse_args()
    with ThrowawayServer() as server:
        spec = ConnectionSpec(unix_socket=str(server.socket_path), database="bench")
        admin = open_data_connection(ConnectionSpec(unix_socket=str(server.socket_path)))
        execute(admin, "CREATE DATABASE bench")
        execute(admin, "SET SESSION max_recursive_iterations = 100000000")
        for name, rows in (("wide", arguments.rows), ("narrow", arguments.narrow_rows)):
            columns, select = TABLES[name]
            execute(admin, f"CREATE TABLE bench.{name} ({columns})")
            execute(admin, f"INSERT INTO bench.{name} WITH RECURSIVE s(n) AS "
                           f"(SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) {select}")
            measure(server, spec, name)


def measure(server: ThrowawayServer, spec: ConnectionSpec, name: str) -> None:
    table = Snapshot.capture(f"mysql://root@localhost/bench?unix_socket={spec.unix_socket}", "bench").table(name)
    connection = open_data_connection(spec)
    started = time.perf_counter()
    chunks: list[Chunk] = list(read_chunks(connection, table))
    read = time.perf_counter() - started
    size = sum(len(chunk.data) for chunk in chunks) / 1e6
    rows = sum(chunk.rows for chunk in chunks)
    print(f"{name}: {rows:,} rows, {size:.1f} MB of chunk data in {len(chunks)} chunks, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (all chunks held)")
    print(f"  read_chunks        {read:6.2f} s  {size / read:6.1f} MB/s  {rows / read:10,.0f} rows/s")
    for method in ("load_data", "insert"):
        copy = f"{name}_{method}"
        execute(connection, f"CREATE TABLE {copy} LIKE {name}")
        started = time.perf_counter()
        for chunk in chunks:
            load_chunk(connection, copy, chunk, method=method)
        took = time.perf_counter() - started
        print(f"  load {method:<13} {took:6.2f} s  {size / took:6.1f} MB/s  {rows / took:10,.0f} rows/s")
    started = time.perf_counter()
    for chunk in chunks:
        assert chunk_digest(connection, table, chunk.columns, chunk.first_key, chunk.last_key) == (
            chunk.rows, chunk.sha256)
    took = time.perf_counter() - started
    print(f"  chunk_digest       {took:6.2f} s  {size / took:6.1f} MB/s")
    dump = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    if dump:
        started = time.perf_counter()
        subprocess.run([dump, "--no-defaults", f"--socket={server.socket_path}", "--user=root", "--single-transaction",
                        "bench", name], stdout=subprocess.DEVNULL, check=True)
        print(f"  {dump.rsplit('/', 1)[-1]:<18} {time.perf_counter() - started:6.2f} s  (to /dev/null)")
    connection.close()


if __name__ == "__main__":
    main()
