"""Fidelity on real public schemas: load -> capture -> to_sql into a fresh database -> capture again."""

from __future__ import annotations

import attrs
import pymysql
import pytest
from conftest import CORPUS, corpus_entries, load_corpus
from test_capture_reader import pymysql_show_create
from test_snapshot_support import create_texts

from schemasync_backup import Snapshot
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.testing.sandbox import ThrowawayServer

ENTRIES = corpus_entries()
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not ENTRIES, reason=f"corpus not found at {CORPUS}: fidelity tests need ../shared/corpus"),
]


@pytest.mark.parametrize(("name", "file", "env"), ENTRIES, ids=[entry[0] for entry in ENTRIES])
def test_restore_reproduces_schema(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, name: str, file: str, env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original_db, copy_db = f"orig_{name}", f"copy_{name}"
    load_corpus(mariadb, original_db, file, env)
    original = Snapshot.capture(mariadb.dsn, original_db)
    assert original.tables, "the corpus schema loaded no tables"
    with monkeypatch.context() as patch:  # the raw packet reader of SHOW CREATE answers changes nothing
        pymysql_show_create(patch)
        assert attrs.evolve(Snapshot.capture(mariadb.dsn, original_db), captured_at="") == attrs.evolve(
            original, captured_at="")

    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{copy_db}`")
    restore_snapshot(original, mariadb.dsn, copy_db)
    copy = Snapshot.capture(mariadb.dsn, copy_db)

    assert copy.schema_hash == original.schema_hash
    assert create_texts(copy) == create_texts(original)
    assert Snapshot.from_json(original.to_json()) == original
    # A second capture of the unchanged original hashes the same: nothing volatile leaks in.
    assert Snapshot.capture(mariadb.dsn, original_db).schema_hash == original.schema_hash
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{copy_db}`")
        cursor.execute(f"DROP DATABASE `{original_db}`")
