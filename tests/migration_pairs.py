"""Roll a database back across a real before/after pair, and say how it went.

Shared by the sqldef corpus test, the generated-pair properties and the benchmark of the
rehearsal: load the backup's state, back it up, make the live database the other state, plan,
execute, and compare every object's SHOW CREATE text with the backup's, byte for byte.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pymysql
from pymysql.constants import CLIENT

from schemasync_backup import RollbackPlanner, Snapshot
from schemasync_backup.errors import SchemaSyncBackupError
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

PAIRS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "migrations" / "sqldef-mysql.jsonl"
_STARTS = re.compile(r"STARTS '[^']*'")


class Outcome(enum.StrEnum):
    EXACT = "exact"  # the rollback ran and every SHOW CREATE text equals the backup's
    REFUSED = "refused"  # plan() or the rehearsal refused it, before the live database changed
    FAILED_IN_EXECUTE = "failed in execute"  # a step failed after the live database changed
    DIFFERS = "differs"  # execute ran every step, and the result is not the backup's


@attrs.frozen
class PairResult:
    outcome: Outcome
    detail: str = ""


def sqldef_pairs() -> list[dict[str, object]]:
    """The corpus records whose two states both load on MariaDB (empty without ../shared)."""
    if not PAIRS.exists():
        return []
    records = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    return [r for r in records if r["loads_on_mariadb_10_11"] == {"current": True, "desired": True}]  # type: ignore[comparison-overlap]


def load_state(server: ThrowawayServer, database: str, sql: str) -> None:
    """A fresh ``database`` holding ``sql``, loaded the way the corpus was checked."""
    connection = pymysql.connect(unix_socket=str(server.socket_path), user="root",
                                 client_flag=CLIENT.MULTI_STATEMENTS, charset="utf8mb4", autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            cursor.execute(f"USE `{database}`")
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            if sql.strip():
                cursor.execute(sql)
                while cursor.nextset():
                    pass
    finally:
        connection.close()


def texts(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    found = {("table", t.name): t.create_sql for t in snapshot.tables}
    found |= {("view", v.name): v.create_sql for v in snapshot.views}
    found |= {("trigger", t.name): t.create_sql for t in snapshot.triggers}
    found |= {(r.kind, r.name): r.create_sql for r in snapshot.routines}
    found |= {("event", e.name): _STARTS.sub("STARTS <creation>", e.create_sql) for e in snapshot.events}
    return found


def differences(got: Snapshot, wanted: Snapshot) -> list[str]:
    mine, theirs = texts(got), texts(wanted)
    return [f"{kind} {name}:\n  got:    {mine.get((kind, name))!r}\n  wanted: {theirs.get((kind, name))!r}"
            for kind, name in sorted(mine.keys() | theirs.keys()) if mine.get((kind, name)) != theirs.get((kind, name))]


def roll_back(server: ThrowawayServer, store: BackupStore, database: str, backup_sql: str,
              live_sql: str) -> PairResult:
    """Back up ``backup_sql``, make the live database ``live_sql``, roll back, compare."""
    load_state(server, database, backup_sql)
    wanted = Snapshot.capture(server.dsn, database)
    info = store.save(wanted)
    load_state(server, database, live_sql)
    planner = RollbackPlanner(store)
    try:
        plan = planner.plan(server.dsn, info.id, database=database)
    except SchemaSyncBackupError as exc:
        return PairResult(Outcome.REFUSED, f"plan: {exc}")
    rehearsal = getattr(plan, "rehearsal", None)
    if rehearsal is not None and rehearsal.failed:
        return PairResult(Outcome.REFUSED, f"rehearsal: {rehearsal}")
    if plan.preflight:
        return PairResult(Outcome.REFUSED, "preflight: " + "; ".join(plan.preflight))
    try:
        planner.execute(server.dsn, plan, force=True)
    except SchemaSyncBackupError as exc:
        return PairResult(Outcome.FAILED_IN_EXECUTE, f"{exc}\n{plan.to_json()}")
    got = Snapshot.capture(server.dsn, database)
    found = differences(got, wanted)
    if found or not planner.validate(server.dsn, info.id, database=database).matches:
        return PairResult(Outcome.DIFFERS, "\n".join(found) or "validate() does not match")
    return PairResult(Outcome.EXACT)


def both_ways(record: dict[str, object]) -> Iterator[tuple[str, str, str]]:
    """(direction, backup state, live state): back up current and roll back from desired, then the reverse."""
    current, desired = str(record["current"]), str(record["desired"])
    yield "desired->current", current, desired
    yield "current->desired", desired, current


def database_for(record: dict[str, object]) -> str:
    return str(record.get("refers_to_database") or "mysqldef_test")
