"""The JSON form: round trips of generated snapshots, and refusals of bad documents (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemasync_backup import SchemaSyncBackupError, Snapshot, SnapshotFormatError
from schemasync_backup.model.snapshot import (
    CheckConstraint,
    Column,
    Event,
    ForeignKey,
    Index,
    IndexPart,
    Parameter,
    Routine,
    ServerInfo,
    Table,
    Trigger,
    View,
)

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
MAYBE_TEXT = st.none() | TEXT
NAMES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)

columns = st.builds(
    Column, name=NAMES, type=TEXT, nullable=st.booleans(), default=MAYBE_TEXT, auto_increment=st.booleans(),
    on_update=MAYBE_TEXT, generated=MAYBE_TEXT, stored=st.booleans(), charset=MAYBE_TEXT, collation=MAYBE_TEXT,
    comment=TEXT, invisible=st.booleans(),
)
indexes = st.builds(
    Index, name=NAMES, kind=st.sampled_from(("PRIMARY", "UNIQUE", "INDEX", "FULLTEXT", "SPATIAL")),
    parts=st.lists(st.builds(IndexPart, column=MAYBE_TEXT, expression=MAYBE_TEXT,
                             prefix_length=st.none() | st.integers(1, 3072), descending=st.booleans()),
                   min_size=1, max_size=3).map(tuple),
    algorithm=MAYBE_TEXT, comment=TEXT, visible=st.booleans(),
)
tables = st.builds(
    Table, name=NAMES, columns=st.lists(columns, max_size=4).map(tuple),
    indexes=st.lists(indexes, max_size=3).map(tuple),
    foreign_keys=st.lists(st.builds(
        ForeignKey, name=NAMES, columns=st.lists(NAMES, min_size=1, max_size=2).map(tuple), referenced_table=NAMES,
        referenced_columns=st.lists(NAMES, min_size=1, max_size=2).map(tuple), referenced_schema=MAYBE_TEXT,
        on_update=TEXT, on_delete=TEXT,
    ), max_size=2).map(tuple),
    checks=st.lists(st.builds(CheckConstraint, name=NAMES, clause=TEXT, column=MAYBE_TEXT), max_size=2).map(tuple),
    kind=st.sampled_from(("BASE TABLE", "SYSTEM VERSIONED", "SEQUENCE")), engine=MAYBE_TEXT, charset=MAYBE_TEXT,
    collation=MAYBE_TEXT, row_format=MAYBE_TEXT, comment=TEXT, create_options=TEXT, partitioning=MAYBE_TEXT,
    auto_increment=st.none() | st.integers(0, 2**64 - 1), create_sql=TEXT,
)
snapshots = st.builds(
    Snapshot,
    database=NAMES, charset=TEXT, collation=TEXT,
    server=st.builds(ServerInfo, flavor=st.sampled_from(("mariadb", "mysql")), version=TEXT, sql_mode=TEXT,
                     lower_case_table_names=st.integers(0, 2)),
    tables=st.lists(tables, max_size=3).map(tuple),
    views=st.lists(st.builds(View, name=NAMES, definition=TEXT, algorithm=TEXT, security=TEXT, check_option=TEXT,
                             definer=TEXT, create_sql=TEXT), max_size=2).map(tuple),
    triggers=st.lists(st.builds(Trigger, name=NAMES, table=NAMES, timing=TEXT, event=TEXT, order=st.integers(1, 9),
                                body=TEXT, sql_mode=TEXT, create_sql=TEXT), max_size=2).map(tuple),
    routines=st.lists(st.builds(
        Routine, name=NAMES, kind=st.sampled_from(("PROCEDURE", "FUNCTION")),
        parameters=st.lists(st.builds(Parameter, name=NAMES, type=TEXT, mode=MAYBE_TEXT, collation=MAYBE_TEXT),
                            max_size=2).map(tuple),
        returns=MAYBE_TEXT, returns_collation=MAYBE_TEXT, body=TEXT, deterministic=st.booleans(), comment=TEXT,
    ), max_size=2).map(tuple),
    events=st.lists(st.builds(Event, name=NAMES, schedule=TEXT, body=TEXT, comment=TEXT, time_zone=TEXT),
                    max_size=2).map(tuple),
    captured_at=TEXT,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots)
def test_json_round_trip_keeps_everything(snapshot: Snapshot) -> None:
    text = snapshot.to_json()
    loaded = Snapshot.from_json(text)
    assert loaded == snapshot
    assert loaded.schema_hash == snapshot.schema_hash
    assert Snapshot.from_json(text.encode("utf-8")) == snapshot
    assert Snapshot.from_json(snapshot.to_json(indent=2)) == snapshot
    # The form is stable: writing what was read gives the same bytes.
    assert loaded.to_json() == text


def _document() -> dict[str, Any]:
    snapshot = Snapshot(
        database="d", charset="utf8mb4", collation="utf8mb4_general_ci",
        server=ServerInfo("mariadb", "10.11.19", "", 0),
        tables=(Table("t", (Column("id", "int(11)", False),)),),
    )
    document: dict[str, Any] = json.loads(snapshot.to_json())
    return document


def _refusal(document: object) -> SnapshotFormatError:
    text = document if isinstance(document, str | bytes) else json.dumps(document)
    with pytest.raises(SnapshotFormatError) as caught:
        Snapshot.from_json(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert isinstance(error, SchemaSyncBackupError)
    # Our message, not a cattrs traceback or a bare KeyError.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def test_unknown_future_version_says_to_upgrade() -> None:
    error = _refusal({**_document(), "version": 2})
    assert "unsupported snapshot format version 2" in str(error)
    assert "upgrade schemasync_backup" in str(error)


@pytest.mark.parametrize("version", [0, -1, "1", None, True, 1.0])
def test_nonsense_versions_are_damage_not_a_call_to_upgrade(version: object) -> None:
    error = _refusal({**_document(), "version": version})
    assert "damaged snapshot document" in str(error)


def _without(path: list[str | int]) -> dict[str, Any]:
    document = _document()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return document


def _with(path: list[str | int], value: object) -> dict[str, Any]:
    document = _document()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[]", "not a snapshot document"),
        ('"text"', "not a snapshot document"),
        ({"format": "something-else", "version": 1, "snapshot": {}}, "not a snapshot document"),
        (_without(["format"]), "not a snapshot document"),
        (_without(["snapshot"]), 'no "snapshot"'),
        (_with(["snapshot"], []), 'no "snapshot"'),
        (_without(["snapshot", "database"]), "$.database"),
        (_without(["snapshot", "server"]), "$.server"),
        (_without(["snapshot", "tables", 0, "name"]), "$.tables[0].name"),
        (_without(["snapshot", "tables", 0, "columns", 0, "nullable"]), "$.tables[0].columns[0].nullable"),
        (_with(["snapshot", "tables"], 5), "$.tables"),
        (_with(["snapshot", "tables", 0, "columns"], None), "$.tables[0].columns"),
        (_with(["snapshot", "tables", 0, "columns", 0, "nullable"], "no"), "$.tables[0].columns[0].nullable"),
        (_with(["snapshot", "tables", 0, "name"], 5), "$.tables[0].name"),
        (_with(["snapshot", "tables", 0, "auto_increment"], "12"), "$.tables[0].auto_increment"),
        (_with(["snapshot", "unknown_member"], 1), "extra fields"),
        (_with(["snapshot", "tables", 0, "columns", 0, "unknown_member"], 1), "extra fields"),
    ],
    ids=lambda value: None if isinstance(value, str) and len(value) < 40 else "",
)
def test_damaged_documents_are_refused_with_a_readable_message(document: object, says: str) -> None:
    error = _refusal(document)
    assert "snapshot document" in str(error)
    assert says in str(error)
