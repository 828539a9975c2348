"""Incremental capture (``Snapshot.capture(..., known=earlier)``) always equals a full capture.

The property test builds one schema with every kind of object, captures it, then applies random
changes (some within the second the earlier capture began, some after it) and checks that the
incremental capture equals a full one taken right after it, round after round (each incremental
result is the ``known`` of the next). The deterministic tests pin down what is reused and when
(identity of reused objects, which SHOW CREATE statements go to the server), fingerprints that
are not conclusive, another database's snapshot, snapshots without fingerprints, stored backups
(index object present, missing or damaged) and the JSON form.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_snapshot_support import connect, scratch_database

from schemasync_backup import Snapshot
from schemasync_backup.capture import reader
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

BASE = (
    "CREATE TABLE parent (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10) NOT NULL, "
    "note VARCHAR(20) DEFAULT 'n', UNIQUE KEY uk_code (code)) ENGINE=InnoDB",
    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, pcode VARCHAR(10), "
    "CONSTRAINT fk_c_id FOREIGN KEY (parent_id) REFERENCES parent (id), "
    "CONSTRAINT fk_c_code FOREIGN KEY (pcode) REFERENCES parent (code) ON UPDATE CASCADE) ENGINE=InnoDB",
    "CREATE TABLE grandchild (id INT PRIMARY KEY, child_id INT, "
    "CONSTRAINT fk_gc FOREIGN KEY (child_id) REFERENCES child (id) ON DELETE CASCADE) ENGINE=InnoDB",
    "CREATE TABLE aria_t (id INT PRIMARY KEY, v INT DEFAULT 1) ENGINE=Aria",
    "CREATE SEQUENCE seq START WITH 10 INCREMENT BY 1",
    "CREATE TABLE solo (id INT PRIMARY KEY, s VARCHAR(5)) ENGINE=InnoDB",
    "CREATE TABLE sw1 (id INT PRIMARY KEY, a INT) ENGINE=InnoDB",
    "CREATE TABLE sw2 (id INT PRIMARY KEY, b VARCHAR(5), c INT) ENGINE=InnoDB",
    "CREATE TABLE swref (id INT PRIMARY KEY, s INT, "
    "CONSTRAINT fk_sw FOREIGN KEY (s) REFERENCES sw1 (id)) ENGINE=InnoDB",
    "CREATE VIEW v1 AS SELECT id, note FROM parent",
    "CREATE VIEW v2 AS SELECT id FROM v1 WHERE id > 1",
    "CREATE VIEW v_sw AS SELECT id FROM sw1",
    # Invalid whenever sw1 is the table that has no column a (after an odd number of swaps).
    "CREATE VIEW v_swa AS SELECT a FROM sw1",
    "CREATE TRIGGER tr_parent BEFORE INSERT ON parent FOR EACH ROW SET NEW.note = COALESCE(NEW.note, 'x')",
    # (RENAME TABLE rewrites an unquoted table name in its triggers: see
    # test_a_trigger_whose_table_is_renamed_back_is_read_again.)
    "CREATE TRIGGER tr_solo BEFORE UPDATE ON `solo` FOR EACH ROW SET NEW.s = UPPER(NEW.s)",
    "CREATE TRIGGER tr_sw AFTER INSERT ON `sw1` FOR EACH ROW SET @sw = NEW.id",
    "CREATE PROCEDURE proc1(IN a INT, OUT b VARCHAR(10)) SET b = CONCAT(a, '')",
    "CREATE FUNCTION fn1(x INT, y INT) RETURNS INT DETERMINISTIC RETURN x + y",
    "CREATE EVENT ev1 ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO SELECT 1",
)
VIEW_TEXTS = ("SELECT id, note FROM parent", "SELECT id, CONCAT(note, '!') AS note FROM parent")
PROC_PARAMS = ("IN a INT, OUT b VARCHAR(10)", "IN a BIGINT, OUT b VARCHAR(10)", "a INT, INOUT b TEXT",
               "IN a INT, OUT b VARCHAR(20)")
TRIGGER_SPACING = (" ", "  ", "\n", " \t ")
COMMENTS = ("", "a", "b c", "it's")


# --- helpers -------------------------------------------------------------------------------------


def sleep_past_second() -> None:
    """Sleep until just after the next whole second (the resolution of the server's times)."""
    time.sleep(1.02 - time.time() % 1)


def run(connection: pymysql.connections.Connection, statements: list[str] | tuple[str, ...]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            try:
                cursor.execute(statement)
            except Exception as exc:
                raise AssertionError(f"statement failed: {exc}\n{statement}") from exc


def keyed_texts(snapshot: Snapshot) -> list[tuple[str, str]]:
    return [(key, item.create_sql) for key, item in snapshot.keyed_objects()]


def undated(snapshot: Snapshot) -> Snapshot:
    return attrs.evolve(snapshot, captured_at="")


def assert_same(incremental: Snapshot, full: Snapshot, context: str = "") -> None:
    """The incremental capture equals the full one: same objects, same order, same texts."""
    for field in ("tables", "views", "triggers", "routines", "events"):
        got, want = getattr(incremental, field), getattr(full, field)
        assert [item.name for item in got] == [item.name for item in want], f"{context}: {field} differ"
        for mine, theirs in zip(got, want, strict=True):
            assert mine.create_sql == theirs.create_sql, f"{context}: {field[:-1]} {mine.name} is stale"
            assert mine == theirs, f"{context}: {field[:-1]} {mine.name} differs"
    assert undated(incremental) == undated(full), context
    assert incremental.schema_hash == full.schema_hash, context


def object_count(snapshot: Snapshot) -> int:
    return sum(1 for _ in snapshot.keyed_objects())


def shared_objects(one: Snapshot, other: Snapshot) -> set[int]:
    """The ids of objects both snapshots hold (the very same Python objects, taken, not read)."""
    return {id(item) for _, item in one.keyed_objects()} & {id(item) for _, item in other.keyed_objects()}


@contextlib.contextmanager
def show_creates_recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every (kind, name) capture asks SHOW CREATE for, in order."""
    asked: list[tuple[str, str]] = []
    original = reader._show_create

    def recording(connection: Any, objects: list[tuple[str, str]], *rest: Any) -> Any:
        asked.extend(objects)
        return original(connection, objects, *rest)

    monkeypatch.setattr(reader, "_show_create", recording)
    yield asked
    monkeypatch.setattr(reader, "_show_create", original)


@contextlib.contextmanager
def schema_database(server: ThrowawayServer) -> Iterator[tuple[pymysql.connections.Connection, str]]:
    """A scratch database holding BASE, with a root connection to it."""
    with scratch_database(server) as database, contextlib.closing(connect(server, database)) as connection:
        run(connection, BASE)
        yield connection, database


def same_second(action: Callable[[], Any], attempts: int = 5) -> Any:
    """Run ``action`` within one wall-clock second (from its start at a second's beginning)."""
    for _ in range(attempts):
        sleep_past_second()
        began = int(time.time())
        result = action()
        if int(time.time()) == began:
            return result
    pytest.skip("the machine is too slow to run the steps within one second")


# --- the property --------------------------------------------------------------------------------


@dataclass
class Model:
    """What the random changes need to know of the live schema."""

    code: str = "code"
    child_extra: bool = False
    gc_index: bool = False
    solo: str = "solo"
    view_text: int = 0
    proc_params: int = 0
    extra_table: bool = False
    extra_view: bool = False
    extra_proc: bool = False
    inserted: int = 0


Change = Callable[[Model, st.DataObject], list[str]]


def _add_drop_column(m: Model, data: st.DataObject) -> list[str]:
    m.child_extra = not m.child_extra
    return ["ALTER TABLE child ADD COLUMN extra INT DEFAULT 0" if m.child_extra
            else "ALTER TABLE child DROP COLUMN extra"]


def _change_default(m: Model, data: st.DataObject) -> list[str]:
    value = data.draw(st.sampled_from(("n", "m", "o")), label="note default")
    return [f"ALTER TABLE parent ALTER COLUMN note SET DEFAULT '{value}'"]


def _add_drop_index(m: Model, data: st.DataObject) -> list[str]:
    m.gc_index = not m.gc_index
    return ["ALTER TABLE grandchild ADD INDEX ix_gc (id, child_id)" if m.gc_index
            else "ALTER TABLE grandchild DROP INDEX ix_gc"]


def _table_comment(m: Model, data: st.DataObject) -> list[str]:
    comment = data.draw(st.sampled_from(COMMENTS), label="table comment").replace("'", "''")
    return [f"ALTER TABLE grandchild COMMENT = '{comment}'"]


def _rename_table(m: Model, data: st.DataObject) -> list[str]:
    old, m.solo = m.solo, "solo2" if m.solo == "solo" else "solo"
    return [f"RENAME TABLE {old} TO {m.solo}"]


def _swap_tables(m: Model, data: st.DataObject) -> list[str]:
    return ["RENAME TABLE sw1 TO sw_tmp, sw2 TO sw1, sw_tmp TO sw2"]


def _rename_referenced_column(m: Model, data: st.DataObject) -> list[str]:
    old, m.code = m.code, "code2" if m.code == "code" else "code"
    return [f"ALTER TABLE parent RENAME COLUMN {old} TO {m.code}"]


def _respace_trigger(m: Model, data: st.DataObject) -> list[str]:
    spacing = data.draw(st.sampled_from(TRIGGER_SPACING), label="trigger spacing")
    return ["DROP TRIGGER tr_parent",
            f"CREATE TRIGGER tr_parent{spacing}BEFORE INSERT ON parent FOR EACH ROW "
            "SET NEW.note = COALESCE(NEW.note, 'x')"]


def _replace_view_same(m: Model, data: st.DataObject) -> list[str]:
    return [f"CREATE OR REPLACE VIEW v1 AS {VIEW_TEXTS[m.view_text]}"]


def _replace_view_other(m: Model, data: st.DataObject) -> list[str]:
    m.view_text = 1 - m.view_text
    return [f"CREATE OR REPLACE VIEW v1 AS {VIEW_TEXTS[m.view_text]}"]


def _recreate_procedure(m: Model, data: st.DataObject) -> list[str]:
    m.proc_params = data.draw(st.sampled_from([i for i in range(len(PROC_PARAMS)) if i != m.proc_params]),
                              label="procedure parameters")
    return ["DROP PROCEDURE proc1", f"CREATE PROCEDURE proc1({PROC_PARAMS[m.proc_params]}) SET b = CONCAT(a, '')"]


def _event_comment(m: Model, data: st.DataObject) -> list[str]:
    comment = data.draw(st.sampled_from(COMMENTS), label="event comment").replace("'", "''")
    return [f"ALTER EVENT ev1 COMMENT '{comment}'"]


def _sequence_increment(m: Model, data: st.DataObject) -> list[str]:
    return [f"ALTER SEQUENCE seq INCREMENT BY {data.draw(st.integers(1, 5), label='increment')}"]


def _aria_default(m: Model, data: st.DataObject) -> list[str]:
    return [f"ALTER TABLE aria_t ALTER COLUMN v SET DEFAULT {data.draw(st.integers(0, 3), label='aria default')}"]


def _insert(m: Model, data: st.DataObject) -> list[str]:
    m.inserted += 1
    return [f"INSERT INTO parent ({m.code}) VALUES ('k{m.inserted}')"]


def _create_drop_table(m: Model, data: st.DataObject) -> list[str]:
    m.extra_table = not m.extra_table
    if m.extra_table:
        return ["CREATE TABLE extra_t (id INT PRIMARY KEY, p INT, "
                "CONSTRAINT fk_x FOREIGN KEY (p) REFERENCES parent (id))",
                "CREATE TRIGGER tr_extra BEFORE INSERT ON extra_t FOR EACH ROW SET NEW.p = NEW.p"]
    return ["DROP TABLE extra_t"]


def _create_drop_view(m: Model, data: st.DataObject) -> list[str]:
    m.extra_view = not m.extra_view
    return ["CREATE VIEW extra_v AS SELECT id FROM v2" if m.extra_view else "DROP VIEW extra_v"]


def _create_drop_procedure(m: Model, data: st.DataObject) -> list[str]:
    m.extra_proc = not m.extra_proc
    return ["CREATE PROCEDURE extra_p(n INT) SELECT n" if m.extra_proc else "DROP PROCEDURE extra_p"]


def _no_change(m: Model, data: st.DataObject) -> list[str]:
    return []


CHANGES: dict[str, Change] = {
    "add/drop column": _add_drop_column,
    "change default": _change_default,
    "add/drop index": _add_drop_index,
    "table comment": _table_comment,
    "rename table": _rename_table,
    "swap tables": _swap_tables,
    "rename referenced column": _rename_referenced_column,
    "respace trigger": _respace_trigger,
    "replace view, same text": _replace_view_same,
    "replace view, other text": _replace_view_other,
    "recreate procedure": _recreate_procedure,
    "event comment": _event_comment,
    "sequence increment": _sequence_increment,
    "aria default": _aria_default,
    "insert (auto_increment)": _insert,
    "create/drop table": _create_drop_table,
    "create/drop view": _create_drop_view,
    "create/drop procedure": _create_drop_procedure,
    "no change": _no_change,
}


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_incremental_capture_equals_a_full_capture(mariadb: ThrowawayServer, data: st.DataObject) -> None:
    with schema_database(mariadb) as (connection, database):
        dsn = mariadb.dsn_for(database)
        model = Model()
        # Past the second the schema was built in, so that the known capture's fingerprints count.
        sleep_past_second()
        known = Snapshot.capture(dsn, database)
        assert "table parent" in known.fingerprints
        for round_ in range(3):
            wait = data.draw(st.booleans(), label=f"round {round_}: sleep past a second before the changes")
            names = data.draw(st.lists(st.sampled_from(sorted(CHANGES)), max_size=5), label=f"round {round_}: changes")
            if wait:
                sleep_past_second()
            for name in names:
                run(connection, CHANGES[name](model, data))
            incremental = Snapshot.capture(dsn, database, known=known)
            full = Snapshot.capture(dsn, database)
            assert_same(incremental, full, f"round {round_} after {names} (slept: {wait})")
            known = incremental


# --- deterministic tests -------------------------------------------------------------------------


def test_nothing_changed_reuses_the_known_objects(mariadb: ThrowawayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with schema_database(mariadb) as (_, database):
        dsn = mariadb.dsn_for(database)
        sleep_past_second()
        known = Snapshot.capture(dsn, database)
        sleep_past_second()
        with show_creates_recorded(monkeypatch) as asked:
            incremental = Snapshot.capture(dsn, database, known=known)
        assert_same(incremental, Snapshot.capture(dsn, database))
        for mine, theirs in zip(incremental.tables, known.tables, strict=True):
            if mine.engine == "InnoDB" and mine.kind == "BASE TABLE":
                assert mine is theirs, f"table {mine.name} was read again"
            else:
                assert mine is not theirs, f"{mine.engine} {mine.kind} {mine.name} was not read again"
        for field in ("views", "events"):
            for mine, theirs in zip(getattr(incremental, field), getattr(known, field), strict=True):
                assert mine is theirs, f"{field[:-1]} {mine.name} was read again"
        # Only what no fingerprint proves: the Aria table, the sequence, triggers and routines.
        programs = [("TRIGGER", trigger.name) for trigger in known.triggers] + [
            (routine.kind, routine.name) for routine in known.routines]
        assert sorted(asked) == sorted([("SEQUENCE", "seq"), ("TABLE", "aria_t"), *programs])
        assert incremental.fingerprints == known.fingerprints


def test_a_change_in_the_second_of_the_known_capture_is_seen(mariadb: ThrowawayServer) -> None:
    with schema_database(mariadb) as (connection, database):
        dsn = mariadb.dsn_for(database)

        def capture_then_change() -> Snapshot:
            known = Snapshot.capture(dsn, database)
            run(connection, ["ALTER TABLE solo ADD COLUMN late INT", "ALTER TABLE parent COMMENT 'late'",
                             "DROP TRIGGER tr_solo",
                             "CREATE TRIGGER tr_solo  BEFORE UPDATE ON `solo` FOR EACH ROW SET NEW.s = UPPER(NEW.s)",
                             "DROP PROCEDURE proc1", "CREATE PROCEDURE proc1(IN a INT, OUT b TEXT) SET b = a",
                             "ALTER EVENT ev1 COMMENT 'late'"])
            return known

        known = same_second(capture_then_change)
        # The objects were older than the known capture's second: their old fingerprints count.
        assert {"table solo", "table parent", "event ev1"} <= set(known.fingerprints)
        incremental = Snapshot.capture(dsn, database, known=known)
        assert_same(incremental, Snapshot.capture(dsn, database), "changed in the known capture's second")
        assert [c.name for c in incremental.table("solo").columns] == ["id", "s", "late"]


def test_an_object_made_in_the_second_of_the_known_capture_has_no_fingerprint(mariadb: ThrowawayServer) -> None:
    with scratch_database(mariadb) as database, contextlib.closing(connect(mariadb, database)) as connection:
        dsn = mariadb.dsn_for(database)

        def create_capture_alter() -> Snapshot:
            run(connection, ["CREATE TABLE t (id INT PRIMARY KEY)",
                             "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id",
                             "CREATE PROCEDURE p() SELECT 1",
                             "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1"])
            known = Snapshot.capture(dsn, database)
            run(connection, ["ALTER TABLE t ADD COLUMN c INT",
                             "DROP TRIGGER tr",
                             "CREATE TRIGGER tr  BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id",
                             "DROP PROCEDURE p", "CREATE PROCEDURE p(x INT) SELECT 1",
                             "ALTER EVENT e COMMENT 'c'"])
            return known

        known = same_second(create_capture_alter)
        assert not {"table t", "trigger tr", "routine PROCEDURE p", "event e"} & set(known.fingerprints)
        # Now the changed objects' times are conclusive, but the known capture's were not.
        sleep_past_second()
        incremental = Snapshot.capture(dsn, database, known=known)
        assert_same(incremental, Snapshot.capture(dsn, database), "made and changed in one second")
        assert "table t" in incremental.fingerprints


def test_a_view_replaced_by_the_same_text_is_the_same_view(mariadb: ThrowawayServer) -> None:
    with schema_database(mariadb) as (connection, database):
        dsn = mariadb.dsn_for(database)
        sleep_past_second()
        known = Snapshot.capture(dsn, database)
        run(connection, [f"CREATE OR REPLACE VIEW v1 AS {VIEW_TEXTS[0]}", "CREATE OR REPLACE VIEW v2 AS "
                         "SELECT id FROM v1 WHERE id > 1"])
        incremental = Snapshot.capture(dsn, database, known=known)
        assert_same(incremental, Snapshot.capture(dsn, database))
        assert incremental.views == known.views
        assert all(mine is theirs for mine, theirs in zip(incremental.views, known.views, strict=True))
        run(connection, [f"CREATE OR REPLACE VIEW v1 AS {VIEW_TEXTS[1]}"])
        incremental = Snapshot.capture(dsn, database, known=known)
        assert_same(incremental, Snapshot.capture(dsn, database))
        assert incremental.views != known.views


def test_a_snapshot_of_another_database_lends_nothing(mariadb: ThrowawayServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with schema_database(mariadb) as (_, first), schema_database(mariadb) as (connection, second):
        sleep_past_second()
        known = Snapshot.capture(mariadb.dsn_for(first), first)
        assert known.fingerprints
        # The same schema, built in the same second: only the database tells the rows apart.
        with show_creates_recorded(monkeypatch) as asked:
            incremental = Snapshot.capture(mariadb.dsn_for(second), second, known=known)
        full = Snapshot.capture(mariadb.dsn_for(second), second)
        assert_same(incremental, full)
        assert incremental.database == second
        assert len(asked) == object_count(full)
        assert not shared_objects(known, incremental)
        assert not set(known.fingerprints.values()) & set(incremental.fingerprints.values())
        # And a change in the second database after that is still seen with the first's snapshot.
        run(connection, ["ALTER TABLE solo ADD COLUMN other INT"])
        assert_same(Snapshot.capture(mariadb.dsn_for(second), second, known=known),
                    Snapshot.capture(mariadb.dsn_for(second), second))


def test_no_known_or_no_fingerprints_is_a_full_capture(mariadb: ThrowawayServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with schema_database(mariadb) as (connection, database):
        dsn = mariadb.dsn_for(database)
        sleep_past_second()
        known = Snapshot.capture(dsn, database)
        bare = attrs.evolve(known, fingerprints={})
        assert bare == known
        run(connection, ["ALTER TABLE grandchild COMMENT 'x'"])
        sleep_past_second()
        full = Snapshot.capture(dsn, database)
        for earlier in (None, bare):
            with show_creates_recorded(monkeypatch) as asked:
                captured = Snapshot.capture(dsn, database, known=earlier)
            assert_same(captured, full)
            assert len(asked) == object_count(full)
            assert not shared_objects(known, captured)
            assert captured.fingerprints == full.fingerprints


def test_a_stored_backup_keeps_the_fingerprints(mariadb: ThrowawayServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with schema_database(mariadb) as (connection, database):
        dsn = mariadb.dsn_for(database)
        sleep_past_second()
        captured = Snapshot.capture(dsn, database)
        store = BackupStore.open(str(tmp_path / "store"))
        info = store.save(captured)
        stored = store.snapshot(info.id)
        assert stored.fingerprints == captured.fingerprints
        assert "table parent" in stored.fingerprints
        assert undated(stored) == undated(captured)

        run(connection, ["ALTER TABLE child ADD COLUMN stored INT", "RENAME TABLE solo TO solo_b"])
        sleep_past_second()
        with show_creates_recorded(monkeypatch) as asked:
            incremental = Snapshot.capture(dsn, database, known=stored)
        assert_same(incremental, Snapshot.capture(dsn, database), "from a stored backup")
        # child (altered), grandchild (its foreign key names child), solo_b (renamed), and what no
        # fingerprint proves: aria_t, seq, the triggers and routines.
        programs = [trigger.name for trigger in captured.triggers] + [routine.name for routine in captured.routines]
        assert sorted(name for _, name in asked) == sorted(["aria_t", "child", "grandchild", "seq", "solo_b",
                                                             *programs])

        index = store.manifest(info.id).index_object
        assert index is not None
        index_path = Path(store.files.object_path(index))
        assert index_path.is_file()
        original = index_path.read_bytes()
        # A store keeps what it decoded (objects are immutable): each damage is read by a new one.
        assert store.snapshot(info.id) is store.snapshot(info.id)
        for damage in (b"", original[: len(original) // 2], original[:-1] + bytes([original[-1] ^ 0xFF]),
                       b"not an object at all"):
            index_path.write_bytes(damage)
            damaged = BackupStore.open(str(tmp_path / "store")).snapshot(info.id)
            assert damaged.fingerprints == {}
            assert undated(damaged) == undated(captured)
            assert_same(Snapshot.capture(dsn, database, known=damaged), Snapshot.capture(dsn, database), "damaged")
        index_path.unlink()
        gone = BackupStore.open(str(tmp_path / "store")).snapshot(info.id)
        assert gone.fingerprints == {}
        assert undated(gone) == undated(captured)


def test_json_and_equality_ignore_fingerprints(mariadb: ThrowawayServer) -> None:
    with schema_database(mariadb) as (_, database):
        sleep_past_second()
        captured = Snapshot.capture(mariadb.dsn_for(database), database)
        assert captured.fingerprints
        text = captured.to_json()
        assert "fingerprint" not in text
        assert not any(digest in text for digest in captured.fingerprints.values())
        loaded = Snapshot.from_json(text)
        assert loaded.fingerprints == {}
        assert loaded == captured
        assert loaded.schema_hash == captured.schema_hash
        other = attrs.evolve(captured, fingerprints=dict.fromkeys(captured.fingerprints, "0" * 64))
        assert other == captured
        assert other.schema_hash == captured.schema_hash
        assert attrs.evolve(captured, fingerprints={}).to_json() == text
        assert "fingerprints" not in repr(captured)


# --- triggers and routines have no fingerprint ---------------------------------------------------
# (Both found by this file when they had one: their times are the session's clock, and a RENAME
# TABLE rewrites a trigger's text but not its row.)


def test_a_session_timestamp_does_not_hide_a_recreated_trigger_and_routine(mariadb: ThrowawayServer) -> None:
    with scratch_database(mariadb) as database, contextlib.closing(connect(mariadb, database)) as connection:
        dsn = mariadb.dsn_for(database)
        # As a replica applies the primary's statements: each with the primary's timestamp.
        then = int(time.time()) - 60
        run(connection, ["CREATE TABLE t (id INT PRIMARY KEY, x INT)", f"SET timestamp = {then}",
                         "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.x = 1",
                         "CREATE PROCEDURE p(IN q INT) SELECT q", "SET timestamp = DEFAULT"])
        sleep_past_second()
        known = Snapshot.capture(dsn, database)
        assert not {"trigger tr", "routine PROCEDURE p"} & set(known.fingerprints)
        # The primary re-created both within that same second; the replica applies it now.
        run(connection, [f"SET timestamp = {then}", "DROP TRIGGER tr",
                         "CREATE TRIGGER tr  BEFORE INSERT ON t FOR EACH ROW SET NEW.x = 1",
                         "DROP PROCEDURE p", "CREATE PROCEDURE p(IN   q INT) SELECT q", "SET timestamp = DEFAULT"])
        full = Snapshot.capture(dsn, database)
        assert full.triggers[0].create_sql != known.triggers[0].create_sql
        assert full.routines[0].create_sql != known.routines[0].create_sql
        incremental = Snapshot.capture(dsn, database, known=known)
        texts = dict(keyed_texts(full))
        assert [key for key, text in keyed_texts(incremental) if text != texts[key]] == []
        assert_same(incremental, full, "re-created under SET timestamp")


def test_a_trigger_whose_table_is_renamed_back_is_read_again(mariadb: ThrowawayServer) -> None:
    with scratch_database(mariadb) as database, contextlib.closing(connect(mariadb, database)) as connection:
        dsn = mariadb.dsn_for(database)
        run(connection, ["CREATE TABLE t (id INT PRIMARY KEY)",
                         "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id"])
        sleep_past_second()
        known = Snapshot.capture(dsn, database)
        assert "trigger tr" not in known.fingerprints
        run(connection, ["RENAME TABLE t TO t2", "RENAME TABLE t2 TO t"])
        full = Snapshot.capture(dsn, database)
        assert known.triggers[0].create_sql.endswith(" ON t FOR EACH ROW SET NEW.id = NEW.id")
        assert full.triggers[0].create_sql.endswith(" ON `t` FOR EACH ROW SET NEW.id = NEW.id")
        assert_same(Snapshot.capture(dsn, database, known=known), full, "table renamed and back")
