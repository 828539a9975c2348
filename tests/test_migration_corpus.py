"""Real before/after pairs (sqldef's MySQL suite) and the corpus schemas, rolled back both ways.

Every pair whose two states load on MariaDB: back up one state, make the live database the
other, plan, execute, and compare every SHOW CREATE text with the backup's, byte for byte. A
rollback either comes back exact or is refused at plan time for a named reason; none may fail
in the middle of execute or end elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest
from conftest import CORPUS, corpus_entries, load_corpus
from migration_pairs import Outcome, both_ways, database_for, differences, roll_back, sqldef_pairs

from schemasync_backup import RollbackPlanner, Snapshot
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

PAIRS = sqldef_pairs()
CASES = [(record, direction, backup, live) for record in PAIRS for direction, backup, live in both_ways(record)]
#: Refused at plan time, and rightly: (pair, direction) -> what the refusal must say.
REFUSED = {
    # The event's definer root@'%' does not exist on a server that has root@localhost.
    ("tests_events.yml:CreateEventWithDefiner", "current->desired"): "definer `root`@`%` of event `daily_cleanup`",
}
pytestmark = [pytest.mark.corpus, pytest.mark.skipif(not PAIRS, reason="needs ../shared/corpus/migrations")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BackupStore:
    return BackupStore.open(str(tmp_path_factory.mktemp("pairs") / "backups"))


@pytest.mark.parametrize(("record", "direction", "backup_sql", "live_sql"), CASES,
                         ids=[f"{record['id']}:{direction}" for record, direction, _, _ in CASES])
def test_pair_rolls_back_exactly_or_is_refused_at_plan_time(
    mariadb: ThrowawayServer, store: BackupStore, record: dict[str, object], direction: str, backup_sql: str,
    live_sql: str,
) -> None:
    result = roll_back(mariadb, store, database_for(record), backup_sql, live_sql)
    refusal = REFUSED.get((str(record["id"]), direction))
    if refusal is None:
        assert result.outcome == Outcome.EXACT, result.detail
    else:
        assert result.outcome == Outcome.REFUSED and refusal in result.detail, result.detail


def test_at_least_99_percent_of_the_pairs_roll_back_exactly() -> None:
    assert len(CASES) >= 500
    assert len(REFUSED) <= 0.01 * len(CASES)


ENTRIES = corpus_entries()


@pytest.mark.skipif(not ENTRIES, reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize(("name", "file", "env"), ENTRIES, ids=[entry[0] for entry in ENTRIES])
def test_a_corpus_schema_comes_back_into_an_emptied_database_and_goes_again(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, tmp_path: Path, name: str, file: str,
    env: dict[str, str],
) -> None:
    database = f"pairs_{name}"
    load_corpus(mariadb, database, file, env)
    full = Snapshot.capture(mariadb.dsn, database)
    store = BackupStore.open(str(tmp_path / "backups"))
    held = store.save(full)
    planner = RollbackPlanner(store)
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{database}`")
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET {full.charset} COLLATE {full.collation}")
    empty = store.save(Snapshot.capture(mariadb.dsn, database))
    for backup, expected in ((held.id, full), (empty.id, None)):
        plan = planner.plan(mariadb.dsn, backup)
        assert plan.rehearsal.passed, plan.rehearsal
        planner.execute(mariadb.dsn, plan, force=True)
        got = Snapshot.capture(mariadb.dsn, database)
        if expected is None:
            assert not got.objects()
        else:
            assert differences(got, expected) == []
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{database}`")
