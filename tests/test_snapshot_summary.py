"""str(snapshot) and snapshot._repr_html_(): counts and names, with names escaped in HTML."""

from __future__ import annotations

import html

import pytest
from test_snapshot_support import execute

from schemasync_backup import Snapshot
from schemasync_backup.model.snapshot import Column, Event, Index, IndexPart, Routine, ServerInfo, Table, Trigger, View
from schemasync_backup.testing.sandbox import ThrowawayServer

NASTY = "<b>&amp;</b>"


def _snapshot(table_count: int = 2) -> Snapshot:
    tables = tuple(
        Table(f"{NASTY}{n}", (Column("id", "int", False), Column("v", "text", True)),
              indexes=(Index("PRIMARY", "PRIMARY", (IndexPart("id"),)),), engine="InnoDB", comment="<i>c</i>")
        for n in range(table_count)
    )
    return Snapshot(
        database="shop<&>", charset="utf8mb4", collation="utf8mb4_general_ci",
        server=ServerInfo("mariadb", "10.11.19", "", 0), tables=tables,
        views=(View(f"v{NASTY}", "select 1"),),
        triggers=(Trigger(f"tr{NASTY}", tables[0].name, "BEFORE", "INSERT", 1, "SET @a = 1"),),
        routines=(Routine(f"p{NASTY}", "PROCEDURE"), Routine(f"f{NASTY}", "FUNCTION")),
        events=(Event(f"e{NASTY}", "EVERY 1 DAY", "DO 1"),),
        captured_at="2026-01-02T03:04:05+00:00",
    )


def test_text_summary_has_counts_and_names() -> None:
    snapshot = _snapshot()
    text = str(snapshot)
    assert "2 tables, 4 columns, 2 indexes, 0 foreign keys, 0 checks, 1 views, 1 triggers, 1 procedures, " \
           "1 functions, 1 events" in text
    assert snapshot.schema_hash in text
    assert "mariadb 10.11.19" in text
    for kind, name in snapshot.objects():
        assert name in text, kind


def test_html_summary_has_counts_and_escaped_names() -> None:
    snapshot = _snapshot()
    page = snapshot._repr_html_()
    assert "2 tables, 4 columns" in page
    assert "1 procedures, 1 functions, 1 events" in page
    for _, name in snapshot.objects():
        assert html.escape(name) in page
    assert NASTY not in page
    assert "<b>" not in page and "<i>" not in page
    assert "shop&lt;&amp;&gt;" in page
    # What is left is well-formed: every tag we opened is closed.
    for tag in ("div", "table", "tr", "td", "code"):
        assert page.count(f"<{tag}>") + page.count(f"<{tag} ") == page.count(f"</{tag}>"), tag


def test_long_summaries_are_cut_with_a_note() -> None:
    snapshot = _snapshot(table_count=210)
    assert "... and 160 more tables" in str(snapshot)
    assert "... and 10 more tables" in snapshot._repr_html_()
    assert "210 tables" in str(snapshot)


def test_repr_counts_objects_and_stays_short() -> None:
    large = _snapshot(table_count=2000)
    shown = repr(large)
    assert len(shown) < 200, shown
    assert "tables=2000" in shown and repr(large.database) in shown
    assert "Column(" not in shown  # no object's contents (a 2,000-table repr was 16.9 MB)


@pytest.mark.server
def test_summary_of_a_captured_schema(mariadb: ThrowawayServer, fresh_db: str) -> None:
    execute(
        mariadb, fresh_db,
        "CREATE TABLE `a<b>&c` (id int PRIMARY KEY, p int, FOREIGN KEY (p) REFERENCES `a<b>&c` (id), CHECK (p > 0))",
        "CREATE VIEW `v&` AS SELECT id FROM `a<b>&c`",
        "CREATE PROCEDURE `p<>`() SELECT 1",
    )
    snapshot = Snapshot.capture(mariadb.dsn, fresh_db)
    text, page = str(snapshot), snapshot._repr_html_()
    assert "1 tables, 2 columns, 2 indexes, 1 foreign keys, 1 checks, 1 views" in text
    assert "a<b>&c" in text and "v&" in text and "p<>" in text
    assert "a&lt;b&gt;&amp;c" in page and "v&amp;" in page and "p&lt;&gt;" in page
    assert "a<b>&c" not in page
