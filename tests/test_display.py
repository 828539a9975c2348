"""How reports show themselves: ``str`` is a few lines, ``repr`` stays short, and the notebook's HTML
escapes every value (object names, messages and tags are input)."""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemasync_backup import BackupInfo, MigrationContext, RollbackPlan, RollbackStep, SchemaDiff, Snapshot, diff
from schemasync_backup.display import Card, Rows, human_size
from schemasync_backup.formats.data_index import DataSummary
from schemasync_backup.model.snapshot import Column, ServerInfo, Table
from schemasync_backup.rollback.data_check import DataCheck, TableCheck
from schemasync_backup.rollback.plan import Risk
from schemasync_backup.rollback.planner import ExecutionResult, RecoveryInfo, RollbackValidation
from schemasync_backup.store.maintenance import PruneResult
from schemasync_backup.store.retention import RetentionDecision, RetentionPolicy, RetentionReport
from schemasync_backup.validate.validator import Finding, RecoveryReport, RestoreTestResult, Severity, ValidationResult

#: Every tag (and attribute) the rendering writes; anything else in a page came from a value.
_TAGS = {"div", "strong", "table", "thead", "tbody", "tr", "th", "td", "details", "summary"}
_ATTRIBUTES = {("div", "class"), ("details", "open")}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            self.problems.append(f"tag {tag}")
        self.problems += [f"attribute {name} on {tag}" for name, _ in attrs if (tag, name) not in _ATTRIBUTES]
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.problems.append("declaration")

    def unknown_decl(self, data: str) -> None:
        self.problems.append("declaration")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instruction")


def _read(page: str) -> str:
    """The page's text, after checking it holds only our tags, balanced."""
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.open == [], (parser.problems, parser.open, page)
    return "".join(parser.text)


def _snapshot(database: str, names: list[str]) -> Snapshot:
    return Snapshot(database, "utf8mb4", "utf8mb4_general_ci", ServerInfo("mariadb", "10.11.19", "", 0),
                    tables=tuple(Table(name, (Column("id", "int", False),), create_sql=f"CREATE TABLE {name!r}")
                                 for name in names))


def _info(database: str = "shop", *, description: str = "", tags: dict[str, str] | None = None) -> BackupInfo:
    return BackupInfo(
        id="20260102T030405Z-0123456789ab", database=database, created_at="2026-01-02T03:04:05+00:00",
        created_by="ops@host", description=description, tags=tags or {}, status="COMPLETED", raw_size=3 * 1024**2,
        stored_size=700 * 1024, compression="lz4", encryption="aes-256-gcm", key_id="k1", schema_hash="ab" * 32,
        checksum="cd" * 32, tool_version="1.0", captured_at="2026-01-02T03:04:05+00:00",
        migration_context=MigrationContext(plan_hash="plan-1"), data=DataSummary("at-risk", 2, 1234, 4096),
    )


def _plan(names: list[str], database: str = "shop") -> RollbackPlan:
    steps = tuple(RollbackStep("drop table", "table", name, f"DROP TABLE `{name}`",
                               risks=(Risk(f"drops {name}", "SELECT 1", rows=3),)) for name in names)
    return RollbackPlan("20260102T030405Z-0123456789ab", database, "11" * 32, "22" * 32, steps,
                        notes=tuple(f"note on {name}" for name in names[:3]))


def _validation(messages: list[str]) -> ValidationResult:
    return ValidationResult("20260102T030405Z-0123456789ab", valid=not messages,
                            errors=tuple(Finding(Severity.ERROR, message, "objects/ab/x", (f"table {message}",))
                                         for message in messages),
                            warnings=(), checksum_valid=True, checked_at="2026-01-02T03:04:06+00:00",
                            objects_checked=2, bytes_checked=4096)


def _reports(name: str) -> list[object]:
    """One of each report, ``name`` in every place a name or a message goes."""
    snapshot = _snapshot(name, [name, f"{name}2"])
    difference = diff(snapshot, _snapshot(name, [f"{name}2", f"{name}3"]))
    data = DataCheck((TableCheck(name, "rows", 3, 4, 2, 1, problem=f"{name} changed"),))
    decision = RetentionDecision("20260102T030405Z-0123456789ab", name, "2026-01-02T03:04:05+00:00", "COMPLETED",
                                 keep=False, rule="max_backups", rules=(), reason=name)
    prune = PruneResult(False, 600.0, (f"objects/{name}",), 10, 3, (), (), (), (), ())
    return [
        _info(name, description=name, tags={name: name}),
        snapshot,
        difference,
        _plan([name]),
        _validation([name]),
        RestoreTestResult("20260102T030405Z-0123456789ab", True, "11", "11", name, 3),
        RecoveryReport("20260102T030405Z-0123456789ab", "20260102T030405Z-0123456789ac", (name,), (name,)),
        ExecutionResult("20260102T030405Z-0123456789ab", name, False, 3, None, "run-1", True, "11"),
        RollbackValidation("20260102T030405Z-0123456789ab", name, False, "11", "22", difference, data),
        RecoveryInfo("20260102T030405Z-0123456789ab", "run-1", "failed", None,
                     ({"number": 1, "status": "failed", "phase": "drop table", "object_kind": "table",
                       "object_name": name, "error": name, "sql": f"DROP TABLE `{name}`"},), error=name),
        RetentionReport(False, RetentionPolicy(max_backups=1), "2026-01-02T03:04:05+00:00", (decision,),
                        removed=(decision.backup_id,), prune=prune),
        prune,
        data,
    ]


#: Names rich in markup: what a page must never take for its own.
_NAMES = st.lists(st.one_of(st.sampled_from(["<", ">", "&", '"', "'", "/", "=", "script", "b", "&amp;", "<!--", "]]>"]),
                            st.text(max_size=3)), min_size=1, max_size=8).map("".join).filter(
    lambda name: name and name.strip() == name and name.isprintable())


@settings(max_examples=60, deadline=None)
@given(_NAMES)
def test_html_escapes_every_name(name: str) -> None:
    for report in _reports(name):
        page = report._repr_html_()  # type: ignore[attr-defined]
        text = _read(page)
        assert name in text, (type(report).__name__, name)
        assert name in str(report), type(report).__name__


def test_a_table_named_script_is_shown_as_text() -> None:
    name = "<script>alert(1)</script>"
    for report in _reports(name):
        page = report._repr_html_()  # type: ignore[attr-defined]
        assert "<script" not in page, type(report).__name__
        assert html.escape(name) in page


def test_backup_info_text_names_what_a_person_asks_first() -> None:
    info = _info(description="before the migration", tags={"ticket": "OPS-1"})
    text = str(info)
    lines = text.splitlines()
    assert lines[0] == "Backup 20260102T030405Z-0123456789ab of `shop`: COMPLETED"
    assert "  size: 3.0 MiB raw, 700.0 KiB stored (lz4)" in lines
    assert "  encryption: aes-256-gcm (key k1)" in lines
    assert "  data: at-risk data: 2 table(s), 1,234 rows, 4,096 bytes" in lines
    assert "  tags: ticket=OPS-1" in lines and "  migration: plan hash plan-1" in lines
    assert len(lines) < 12
    assert "COMPLETED" in _read(info._repr_html_())


def test_validation_text_gives_the_verdict_and_the_first_errors() -> None:
    result = _validation([f"object {n} damaged" for n in range(12)])
    lines = str(result).splitlines()
    assert lines[0] == "Validation of backup 20260102T030405Z-0123456789ab: INVALID"
    assert "  error: object 0 damaged (holds table object 0 damaged)" in lines
    assert "  ... and 7 more" in lines
    assert "object 11 damaged" in result._repr_html_()
    assert str(_validation([])).splitlines()[0].endswith(": valid")


def test_a_5000_table_diff_and_plan_stay_small() -> None:
    names = [f"table_{n:05d}_{'x' * 40}" for n in range(5000)]
    difference = diff(_snapshot("shop", names), _snapshot("shop", []))
    plan = _plan(names)
    for report in (difference, plan):
        assert len(repr(report)) < 300, repr(report)
        assert len(str(report)) < 2_000, str(report)
        assert len(str(report).splitlines()) < 25
        page = report._repr_html_()
        assert len(page) < 200_000
        assert "... and 4800 more" in page
    assert repr(difference) == "SchemaDiff(a='shop', b='shop', changes=5000, added=0, removed=5000, changed=0)"
    assert repr(plan).startswith("RollbackPlan(backup_id='20260102T030405Z-0123456789ab', database='shop', "
                                 "steps=5000, destructive=5000")
    assert str(difference).splitlines()[0] == "`shop` (a) to `shop` (b): 5000 object(s) differ, 0 added, " \
                                              "5000 removed, 0 changed"
    assert "... and 4995 more changes" in str(difference)
    assert "... and 4995 more steps" in str(plan)


def test_diff_listing_keeps_every_change() -> None:
    difference: SchemaDiff = diff(_snapshot("shop", ["a", "b"]), _snapshot("shop", ["c"]))
    assert difference.listing() == "- table `a`\n- table `b`\n+ table `c`"
    assert diff(_snapshot("shop", ["a"]), _snapshot("shop", ["a"])).listing() == "schemas are identical"


def test_text_tables_align_and_cut_long_cells() -> None:
    card = Card("title", (("size", human_size(1536)),),
                tables=(Rows("steps", ("#", "sql"), [(1, "x" * 200), (22, "short")]),))
    lines = card.text().splitlines()
    assert lines == ["title", "  size: 1.5 KiB", "  steps (2):", "    #   sql",
                     "    1   " + "x" * 71 + "…", "    22  short"]


@pytest.mark.parametrize("size, shown", [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                         (5 * 1024**4, "5.0 TiB")])
def test_human_size(size: int | None, shown: str) -> None:
    assert human_size(size) == shown
