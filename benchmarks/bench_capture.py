"""Capture speed and memory against mysqldump (and mydumper when installed).

Starts a throwaway MariaDB, generates databases of the requested sizes (tables with views,
triggers, routines and events in proportion), then times a full ``Snapshot.capture`` of each
against ``mariadb-dump --no-data --routines --triggers --events`` over the same unix socket.
Every capture runs in a fresh child process that does nothing else, so its peak RSS is the
capture's own. Results are printed as a table and written to
``benchmarks/results/capture-<timestamp>.json``. See benchmarks/README.md.

    .venv/bin/python benchmarks/bench_capture.py [--sizes 100,1000,5000] [--repeat 3] [--no-mysqldump]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pymysql
import pymysql.constants.CLIENT
import pymysql.cursors

from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.testing.sandbox import ThrowawayServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Statements per multi-statement round trip while generating a database.
DDL_BATCH = 200
#: Server options on top of the sandbox's own, which already has table_open_cache and
#: table_definition_cache at 8000 (enough for 5,000 tables and their partitions) and a private
#: tmpdir. The event scheduler is off by default; it is explicit here because the generated
#: events must never run. (A 512M buffer pool instead of 256M made no measurable difference.)
SERVER_OPTIONS = ("--event-scheduler=OFF",)

#: The child that measures one capture. Snapshot.capture imports its module lazily, so the
#: child imports it first: the timed part is the capture alone, and the peak RSS after the
#: imports is the baseline.
CAPTURE_CHILD = """
import time
imports_started = time.perf_counter()
import json, resource, sys
import schemasync_backup.capture.reader
from schemasync_backup import Snapshot
import_seconds = time.perf_counter() - imports_started
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu_before, started = cpu(), time.perf_counter()
snapshot = Snapshot.capture(sys.argv[1], sys.argv[2])
seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_before
print(json.dumps({
    "seconds": seconds,
    "cpu_seconds": cpu_seconds,
    "import_seconds": import_seconds,
    "baseline_kb": baseline,
    "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "counts": {
        "tables": len(snapshot.tables), "views": len(snapshot.views), "triggers": len(snapshot.triggers),
        "routines": len(snapshot.routines), "events": len(snapshot.events),
    },
}))
"""

_NOUNS = (
    "customer", "order", "invoice", "product", "shipment", "payment", "account", "session", "ticket",
    "warehouse", "supplier", "employee", "contract", "review", "coupon", "address", "device", "report",
)


@attrs.frozen
class ColumnSpec:
    name: str
    definition: str


#: The palette regular tables draw their columns from, in table order.
_PALETTE = (
    ColumnSpec("code", "VARCHAR(32) NOT NULL DEFAULT ''"),
    ColumnSpec("name", "VARCHAR(255) NOT NULL COMMENT 'display name'"),
    ColumnSpec("email", "VARCHAR(190) NULL"),
    ColumnSpec("status", "ENUM('new','active','suspended','closed') NOT NULL DEFAULT 'new'"),
    ColumnSpec("flags", "SET('vip','beta','legacy') NOT NULL DEFAULT ''"),
    ColumnSpec("amount", "DECIMAL(12,2) NOT NULL DEFAULT 0.00"),
    ColumnSpec("quantity", "INT NOT NULL DEFAULT 1 CHECK (quantity >= 0)"),
    ColumnSpec("ratio", "DOUBLE NULL"),
    ColumnSpec("score", "SMALLINT UNSIGNED NULL DEFAULT NULL"),
    ColumnSpec("is_active", "TINYINT(1) NOT NULL DEFAULT 1"),
    ColumnSpec("country", "CHAR(2) CHARACTER SET ascii NOT NULL DEFAULT 'FR'"),
    ColumnSpec("uuid", "CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL"),
    ColumnSpec("tags", "VARCHAR(500) COLLATE utf8mb4_unicode_ci NULL COMMENT 'comma separated'"),
    ColumnSpec("notes", "TEXT NULL"),
    ColumnSpec("payload", "JSON NULL"),
    ColumnSpec("picture", "BLOB NULL"),
    ColumnSpec("born_on", "DATE NULL"),
    ColumnSpec("starts_at", "TIME(3) NULL"),
    ColumnSpec("created_at", "DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP"),
    ColumnSpec("updated_at", "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"),
)
_RULES = ("CASCADE", "SET NULL", "RESTRICT", "NO ACTION")


@attrs.frozen
class GeneratedSchema:
    """What was generated, to check that every capture saw all of it."""

    tables: list[str]
    columns: dict[str, tuple[str, ...]]
    statements: list[str]
    counts: dict[str, int]


def generate_schema(size: int) -> GeneratedSchema:
    """DDL for ``size`` tables and, per 100 tables, 10 views, 10 triggers, 5+5 routines, 2 events."""
    rng = random.Random(size)
    tables = ["audit_log"] + [f"{_NOUNS[i % len(_NOUNS)]}_{i:05d}" for i in range(1, size)]
    columns: dict[str, tuple[str, ...]] = {"audit_log": ("id", "table_name", "row_id", "action", "created_at")}
    statements = [
        "SET foreign_key_checks = 0",
        "CREATE TABLE audit_log (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "table_name VARCHAR(64) NOT NULL, row_id BIGINT UNSIGNED NOT NULL, "
        "action ENUM('insert','update','delete') NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT NOW(6), "
        "KEY ix_table_row (table_name, row_id)) ENGINE=InnoDB COMMENT='written by triggers'",
    ]
    partitioned: set[str] = set()
    not_parents: set[str] = set()  # partitioned and Aria tables cannot be referenced by a foreign key
    for index, name in enumerate(tables[1:], start=1):
        if index % 50 == 25:
            partitioned.add(name)
            not_parents.add(name)
            columns[name] = ("id", "created_at", "code", "amount")
            statements.append(_partitioned_table(name, by_range=index % 100 == 25))
            continue
        aria = index % 100 == 50
        chosen = tuple(spec for spec in _PALETTE if rng.random() < 0.4)
        picks = [tables[rng.randrange(1, index)] for _ in range(rng.choice((0, 1, 1, 2)))] if index > 1 else []
        parents = [] if aria else [parent for parent in dict.fromkeys(picks) if parent not in not_parents]
        if aria:
            not_parents.add(name)
        statements.append(_table(name, chosen, parents, index, rng, engine="Aria" if aria else "InnoDB"))
        columns[name] = ("id", *(f"{parent}_id" for parent in parents), *(spec.name for spec in chosen))

    regular = [name for name in tables[1:] if name not in partitioned]
    counts = {"tables": size, "views": size // 10, "triggers": size // 10,
              "routines": 2 * (size // 20), "events": size // 50}
    statements += _views(regular, columns, counts["views"], rng)
    statements += _triggers(regular, columns, counts["triggers"])
    statements += _routines(regular, columns, counts["routines"] // 2)
    statements += _events(regular, counts["events"])
    return GeneratedSchema(tables=tables, columns=columns, statements=statements, counts=counts)


def _partitioned_table(name: str, *, by_range: bool) -> str:
    head = (
        f"CREATE TABLE {name} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
        "created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, code VARCHAR(32) NOT NULL DEFAULT '', "
        "amount DECIMAL(12,2) NOT NULL DEFAULT 0.00, PRIMARY KEY (id, created_at), KEY ix_code (code)) "
        "ENGINE=InnoDB COMMENT='partitioned history'"
    )
    if by_range:
        return head + (
            " PARTITION BY RANGE (YEAR(created_at)) (PARTITION p2023 VALUES LESS THAN (2024), "
            "PARTITION p2024 VALUES LESS THAN (2025), PARTITION p2025 VALUES LESS THAN (2026), "
            "PARTITION pmax VALUES LESS THAN MAXVALUE)"
        )
    return head + " PARTITION BY HASH (id) PARTITIONS 4"


def _table(
    name: str, chosen: tuple[ColumnSpec, ...], parents: list[str], index: int, rng: random.Random, *, engine: str
) -> str:
    names = {spec.name for spec in chosen}
    lines = ["id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT"]
    lines += [f"{parent}_id BIGINT UNSIGNED NULL COMMENT 'parent row'" for parent in parents]
    lines += [f"{spec.name} {spec.definition}" for spec in chosen]
    if {"amount", "quantity"} <= names:
        lines.append("total DECIMAL(14,2) AS (amount * quantity) VIRTUAL")
    lines.append("PRIMARY KEY (id)")
    if "code" in names:
        lines.append("UNIQUE KEY uq_code (code)")
    if "email" in names:
        lines.append("UNIQUE KEY uq_email (email)")
    if "status" in names and "created_at" in names:
        lines.append("KEY ix_status_created (status, created_at)")
    if "name" in names:
        lines.append("KEY ix_name_prefix (name(32))")
    if "notes" in names and "name" in names and index % 4 == 0:
        lines.append("FULLTEXT KEY ft_name_notes (name, notes)")
    for number, parent in enumerate(parents, start=1):
        lines.append(
            f"CONSTRAINT fk_{index}_{number} FOREIGN KEY ({parent}_id) REFERENCES {parent} (id) "
            f"ON DELETE {rng.choice(_RULES)} ON UPDATE CASCADE"
        )
    if "amount" in names:
        lines.append(f"CONSTRAINT chk_{index}_amount CHECK (amount >= 0)")
    if "score" in names and "ratio" in names:
        lines.append("CONSTRAINT chk_score_ratio CHECK (score IS NULL OR ratio IS NOT NULL)")
    options = " ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8" if engine == "InnoDB" and index % 37 == 0 else ""
    return (
        f"CREATE TABLE {name} (\n  " + ",\n  ".join(lines) + f"\n) ENGINE={engine} DEFAULT CHARSET=utf8mb4 "
        f"COLLATE=utf8mb4_general_ci{options} COMMENT='{name.rpartition('_')[0]} records, generation {index}'"
    )


def _views(tables: list[str], columns: dict[str, tuple[str, ...]], count: int, rng: random.Random) -> list[str]:
    statements: list[str] = []
    for number in range(count):
        base = tables[(number * 7) % len(tables)]
        shown = ", ".join(f"b.{column}" for column in columns[base][:4])
        parents = [column for column in columns[base] if column.endswith("_id") and column != "id"]
        if parents and number % 2:
            parent = parents[0].removesuffix("_id")
            select = (
                f"SELECT {shown}, p.id AS parent_key FROM {base} b "
                f"LEFT JOIN {parent} p ON p.id = b.{parents[0]}"
            )
        elif number % 5 == 4 and statements:
            select = f"SELECT * FROM v_{number - 1:05d} WHERE id > 100"
        else:
            select = f"SELECT {shown}, COUNT(*) OVER () AS total_rows FROM {base} b WHERE b.id > {rng.randrange(1000)}"
        security = "INVOKER" if number % 3 == 0 else "DEFINER"
        statements.append(f"CREATE ALGORITHM=UNDEFINED SQL SECURITY {security} VIEW v_{number:05d} AS {select}")
    return statements


def _triggers(tables: list[str], columns: dict[str, tuple[str, ...]], count: int) -> list[str]:
    statements = []
    for number in range(count):
        table = tables[number % len(tables)]
        if number % 2:
            action = ("insert", "update", "delete")[number % 3]
            row = "OLD" if action == "delete" else "NEW"
            statements.append(
                f"CREATE TRIGGER trg_{number:05d} AFTER {action.upper()} ON {table} FOR EACH ROW "
                f"INSERT INTO audit_log (table_name, row_id, action) VALUES ('{table}', {row}.id, '{action}')"
            )
        else:
            guard = "amount" if "amount" in columns[table] else "id"
            statements.append(
                f"CREATE TRIGGER trg_{number:05d} BEFORE UPDATE ON {table} FOR EACH ROW BEGIN\n"
                f"  IF NEW.{guard} < 0 THEN\n"
                f"    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative {guard} in {table}';\n"
                f"  END IF;\n"
                f"  IF NEW.id <> OLD.id THEN SET NEW.id = OLD.id; END IF;\n"
                f"END"
            )
    return statements


def _routines(tables: list[str], columns: dict[str, tuple[str, ...]], count: int) -> list[str]:
    statements = []
    for number in range(count):
        table = tables[(number * 3) % len(tables)]
        statements.append(
            f"CREATE PROCEDURE p_{number:05d}(IN p_from BIGINT UNSIGNED, IN p_limit INT, OUT p_rows INT, "
            f"INOUT p_note VARCHAR(200))\n"
            f"  READS SQL DATA SQL SECURITY INVOKER COMMENT 'count a range of {table}'\n"
            f"BEGIN\n"
            f"  DECLARE v_seen INT DEFAULT 0;\n"
            f"  DECLARE v_max BIGINT UNSIGNED;\n"
            f"  SELECT COUNT(*), MAX(id) INTO v_seen, v_max FROM {table} WHERE id >= p_from;\n"
            f"  SET p_rows = LEAST(v_seen, p_limit);\n"
            f"  SET p_note = CONCAT(COALESCE(p_note, ''), ' max=', COALESCE(v_max, 0));\n"
            f"END"
        )
        column = next((c for c in ("amount", "quantity", "score") if c in columns[table]), "id")
        statements.append(
            f"CREATE FUNCTION f_{number:05d}(p_id BIGINT UNSIGNED, p_scale DECIMAL(6,3)) RETURNS DECIMAL(18,3)\n"
            f"  {'DETERMINISTIC ' if number % 2 else ''}READS SQL DATA COMMENT 'scaled {column} of one row'\n"
            f"BEGIN\n"
            f"  DECLARE v_value DECIMAL(18,3);\n"
            f"  SELECT {column} INTO v_value FROM {table} WHERE id = p_id;\n"
            f"  RETURN COALESCE(v_value, 0) * p_scale;\n"
            f"END"
        )
    return statements


def _events(tables: list[str], count: int) -> list[str]:
    statements = []
    for number in range(count):
        table = tables[(number * 11) % len(tables)]
        if number % 2:
            schedule = "AT '2031-01-01 00:00:00' ON COMPLETION PRESERVE"
        else:
            schedule = "EVERY 1 DAY STARTS '2030-01-01 03:00:00' ON COMPLETION NOT PRESERVE"
        statements.append(
            f"CREATE EVENT ev_{number:05d} ON SCHEDULE {schedule} DISABLE COMMENT 'purge {table}' "
            f"DO DELETE FROM audit_log WHERE table_name = '{table}' AND created_at < NOW() - INTERVAL 30 DAY"
        )
    return statements


@contextlib.contextmanager
def root_connection(server: ThrowawayServer) -> Iterator[pymysql.cursors.Cursor]:
    """A cursor of a root connection over the socket that accepts multi-statement batches."""
    connection = pymysql.connect(
        unix_socket=str(server.socket_path), user="root", autocommit=True, charset="utf8mb4",
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def load(server: ThrowawayServer, database: str, schema: GeneratedSchema) -> float:
    """Create ``database`` from ``schema`` in multi-statement batches; the seconds it took."""
    started = time.perf_counter()
    with root_connection(server) as cursor:
        cursor.execute(f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET utf8mb4")
        cursor.connection.select_db(database)
        for start in range(0, len(schema.statements), DDL_BATCH):
            cursor.execute(";\n".join(schema.statements[start : start + DDL_BATCH]))
            while cursor.nextset():
                pass
    return time.perf_counter() - started


def server_cpu_seconds(server: ThrowawayServer) -> float:
    """User + system CPU the server process has used so far (Linux /proc)."""
    if server.workdir is None:
        raise RuntimeError("the server is not running")
    pid = (server.workdir / "mariadb.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Run:
    """One run of one tool: wall seconds, CPU seconds of the client and of the server."""

    seconds: float
    client_cpu: float
    server_cpu: float


@attrs.frozen
class Runs:
    """Every run of one tool; the first ran right after FLUSH TABLES emptied the table caches."""

    runs: list[Run]

    @property
    def cold(self) -> Run:
        return self.runs[0]

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda run: run.seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [attrs.asdict(run) for run in self.runs],
            "cold_seconds": self.cold.seconds,
            "best_seconds": self.best.seconds,
            "best_cpu_seconds": {"client": self.best.client_cpu, "server": self.best.server_cpu},
        }


def repeat_cold_first(server: ThrowawayServer, repeat: int, tool: Callable[[], tuple[float, float]]) -> Runs:
    """Run ``tool`` (which returns wall seconds and client CPU seconds) ``repeat`` times."""
    with root_connection(server) as cursor:
        cursor.execute("FLUSH TABLES")
    runs = []
    for _ in range(repeat):
        server_before = server_cpu_seconds(server)
        seconds, client_cpu = tool()
        runs.append(Run(seconds, client_cpu, server_cpu_seconds(server) - server_before))
    return Runs(runs)


def capture_in_child(server: ThrowawayServer, database: str, expected: dict[str, int]) -> dict[str, Any]:
    """One capture in a fresh interpreter: its seconds, CPU seconds, baseline and peak RSS (KiB)."""
    dsn = f"mysql://root@localhost/?unix_socket={quote(str(server.socket_path), safe='')}"
    done = subprocess.run(
        [sys.executable, "-c", CAPTURE_CHILD, dsn, database], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"capture of {database} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["counts"] != expected:
        raise RuntimeError(f"capture of {database} saw {result['counts']}, generated {expected}")
    return result


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(command: list[str]) -> tuple[float, float]:
    """Run ``command`` with its output discarded: wall seconds and its CPU seconds."""
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, children_cpu_seconds() - cpu_before


def mysqldump_command(server: ThrowawayServer, database: str) -> list[str]:
    program = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    if program is None:
        raise RuntimeError("neither mariadb-dump nor mysqldump is installed (apt-get install mariadb-client)")
    return [program, "--no-defaults", f"--socket={server.socket_path}", "--user=root",
            "--no-data", "--routines", "--triggers", "--events", database]


@attrs.frozen
class Mydumper:
    program: str

    @classmethod
    def find(cls) -> Mydumper | None:
        program = shutil.which("mydumper")
        return cls(program) if program else None

    def version(self) -> str:
        done = subprocess.run([self.program, "--version"], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    def run(self, server: ThrowawayServer, database: str) -> tuple[float, float]:
        with tempfile.TemporaryDirectory(prefix="bench-mydumper-") as outdir:
            return run_command([
                self.program, f"--socket={server.socket_path}", "--user=root", f"--database={database}",
                f"--outputdir={outdir}", "--no-data", "--triggers", "--routines", "--events", "--verbose=1",
            ])


def mib(kib: float) -> float:
    return kib / 1024


def bench_size(
    server: ThrowawayServer, size: int, repeat: int, mydumper: Mydumper | None, *, mysqldump: bool = True
) -> dict[str, Any]:
    database = f"bench_{size}"
    schema = generate_schema(size)
    print(f"[{size}] loading {len(schema.statements)} statements ...", flush=True)
    load_seconds = load(server, database, schema)
    print(f"[{size}] loaded in {load_seconds:.1f} s; capture ...", flush=True)

    captures: list[dict[str, Any]] = []

    def one_capture() -> tuple[float, float]:
        captures.append(capture_in_child(server, database, schema.counts))
        return captures[-1]["seconds"], captures[-1]["cpu_seconds"]

    load_average = os.getloadavg()
    capture_runs = repeat_cold_first(server, repeat, one_capture)
    print(f"[{size}] capture best {capture_runs.best.seconds:.2f} s, cold {capture_runs.cold.seconds:.2f} s "
          f"(load average {load_average[0]:.2f})", flush=True)
    result: dict[str, Any] = {
        "size": size,
        "database": database,
        "objects": schema.counts,
        "statements": len(schema.statements),
        "load_seconds": load_seconds,
        "capture": {
            **capture_runs.to_json(),
            "baseline_rss_mib": mib(max(run["baseline_kb"] for run in captures)),
            "peak_rss_mib": mib(max(run["peak_kb"] for run in captures)),
            "peak_rss_over_baseline_mib": mib(max(run["peak_kb"] - run["baseline_kb"] for run in captures)),
            "import_seconds": min(run["import_seconds"] for run in captures),
            "load_average_before": load_average,
        },
    }
    if mysqldump:
        dump_command = mysqldump_command(server, database)
        dump_runs = repeat_cold_first(server, repeat, lambda: run_command(dump_command))
        print(f"[{size}] mysqldump best {dump_runs.best.seconds:.2f} s", flush=True)
        result["mysqldump"] = {"command": " ".join(dump_command), **dump_runs.to_json()}
        result["mysqldump_over_capture"] = dump_runs.best.seconds / capture_runs.best.seconds
    if mydumper is not None:
        mydumper_runs = repeat_cold_first(server, repeat, lambda: mydumper.run(server, database))
        print(f"[{size}] mydumper best {mydumper_runs.best.seconds:.2f} s", flush=True)
        result["mydumper"] = mydumper_runs.to_json()
        result["mydumper_over_capture"] = mydumper_runs.best.seconds / capture_runs.best.seconds
    with root_connection(server) as cursor:
        cursor.execute(f"DROP DATABASE {quote_identifier(database)}")
    return result


def git_revision() -> str:
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"{head}{'+dirty-src' if dirty else ''}" if head else "unknown"


def table_rows(results: list[dict[str, Any]]) -> Iterator[list[str]]:
    others = [tool for tool in ("mysqldump", "mydumper") if any(tool in result for result in results)]
    yield [
        "tables", "capture s", "cold s", "CPU client+server s",
        *(cell for tool in others for cell in (f"{tool} s", f"{tool}/capture")),
        "peak RSS MiB", "over baseline MiB", "load avg",
    ]
    for result in results:
        capture = result["capture"]
        cpu = capture["best_cpu_seconds"]
        other_cells = []
        for tool in others:
            runs = result.get(tool)
            ratio = result.get(f"{tool}_over_capture")
            other_cells += [f"{runs['best_seconds']:.2f}", f"{ratio:.1f}x"] if runs else ["-", "-"]
        yield [
            f"{result['size']:,}", f"{capture['best_seconds']:.2f}", f"{capture['cold_seconds']:.2f}",
            f"{cpu['client']:.2f}+{cpu['server']:.2f}", *other_cells,
            f"{capture['peak_rss_mib']:.0f}", f"{capture['peak_rss_over_baseline_mib']:.0f}",
            f"{capture['load_average_before'][0]:.2f}",
        ]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000",
                        type=lambda text: [int(part) for part in text.split(",") if part.strip()],
                        help="comma-separated table counts (default: 100,1000,5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool per size; best is reported")
    parser.add_argument("--no-mysqldump", action="store_true",
                        help="leave mysqldump out (it takes about 100 s per run on 5,000 tables): for iterating")
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1 or any(size < 100 for size in arguments.sizes):
        parser.error("--repeat must be at least 1 and every size at least 100")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    started, revision, load_before = datetime.now(UTC), git_revision(), os.getloadavg()
    mydumper = Mydumper.find()
    print(f"mydumper: {mydumper.version() if mydumper else 'not installed, skipped (apt-get install mydumper)'}")
    with ThrowawayServer(extra_options=SERVER_OPTIONS) as server:
        with root_connection(server) as cursor:
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0])
        print(f"server: MariaDB {version}, extra options {' '.join(SERVER_OPTIONS)}", flush=True)
        results = [bench_size(server, size, arguments.repeat, mydumper, mysqldump=not arguments.no_mysqldump)
                   for size in arguments.sizes]
    print()
    print_table(list(table_rows(results)))
    report = {
        "started": started.isoformat(timespec="seconds"),
        "revision": revision,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "server": {"version": version, "extra_options": list(SERVER_OPTIONS)},
        "mydumper": mydumper.version() if mydumper else None,
        "repeat": arguments.repeat,
        "results": results,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"capture-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
