"""Saved rollback plans: the file's round trip and its refusals, and executing one on the real MariaDB."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pymysql
import pytest
from conftest import run_sql
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan_pure import snapshots

from schemasync_backup import PlanFileError, RollbackRefusedError, SavedPlan, Snapshot, StalePlanError
from schemasync_backup.formats import manifest
from schemasync_backup.formats.data_index import ChunkRecord, TableData
from schemasync_backup.rollback import plan_file
from schemasync_backup.rollback.plan import PlanOptions, Rehearsal, RollbackPlan, RollbackStep, build_steps
from schemasync_backup.rollback.plan_file import differences
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer

# --- the document, pure ------------------------------------------------------------------------------------

DATA_STEP = RollbackStep("restore rows", "table", "t", "LOAD DATA ...", data=TableData(
    "t", "rows", ("id", "v"), ("id",), 3, 40, (ChunkRecord("a" * 64, 3, 40, ("1",), ("3",)),)))


@st.composite
def plans(draw: st.DrawFn) -> RollbackPlan:
    steps, notes = build_steps(draw(snapshots()), draw(snapshots()), None)
    # Rows at risk as planning measures them (None: the count failed).
    steps = [attrs.evolve(step, risks=tuple(attrs.evolve(risk, rows=draw(st.none() | st.integers(0, 10**9)))
                                            for risk in step.risks)) for step in steps]
    if draw(st.booleans()):
        steps.append(DATA_STEP)
    rehearsal = draw(st.sampled_from([Rehearsal("passed", objects_built=3, seconds=0.25),
                                      Rehearsal("failed", failed_step=1, error="boom \u00e9"),
                                      Rehearsal("skipped", reason="not asked for")]))
    options = PlanOptions.of(draw(st.dictionaries(st.sampled_from(["view", "trigger"]),
                                                  st.sampled_from(["keep", "strip", "rewrite"]))),
                             force=draw(st.booleans()), resume=draw(st.booleans()))
    preflight = ("a preflight problem",)[:draw(st.integers(0, 1))]
    return RollbackPlan("backup-20260101-000000-0000abcd", draw(st.sampled_from(["app", "db `x` \u00fc"])),
                        "a" * 64, "b" * 64, tuple(steps), tuple(notes), preflight, "2026-01-02T00:00:00+00:00",
                        rehearsal, options)


def saved_of(plan: RollbackPlan, *, disable_fk_checks: bool = False) -> SavedPlan:
    return SavedPlan(plan, "c" * 64, "d" * 64, disable_fk_checks, "2026-01-02T00:00:00+00:00")


@settings(max_examples=100, deadline=None)
@given(plans(), st.booleans())
def test_a_saved_plan_reads_back_as_itself(plan: RollbackPlan, disable_fk_checks: bool) -> None:
    saved = saved_of(plan, disable_fk_checks=disable_fk_checks)
    loaded = SavedPlan.from_json(saved.to_json(), source="plan.json")
    assert loaded == saved and loaded.plan == plan and loaded.source == "plan.json"
    assert differences(plan, loaded.plan) == []
    assert loaded.to_json() == saved.to_json()


@settings(max_examples=50, deadline=None)
@given(plans(), st.data())
def test_any_edit_of_a_step_is_refused_naming_the_file(plan: RollbackPlan, data: st.DataObject) -> None:
    document = saved_of(attrs.evolve(plan, steps=(*plan.steps, DATA_STEP))).to_document()
    steps = document["plan"]["steps"]
    step = steps[data.draw(st.integers(0, len(steps) - 1))]
    step["sql"] += data.draw(st.sampled_from([" ", "; DROP DATABASE mysql", "\n"]))
    with pytest.raises(PlanFileError, match=r"plan file plan\.json was changed after it was saved") as refused:
        SavedPlan.from_json(json.dumps(document), source="plan.json")
    assert refused.value.subject == "plan.json"
    assert "rollback plan --backup-id ID --output plan.json" in refused.value.message


def test_edited_damaged_and_foreign_files_are_refused() -> None:
    document = saved_of(RollbackPlan("backup-20260101-000000-0000abcd", "app", "a" * 64, "b" * 64,
                                     (DATA_STEP,))).to_document()

    def refused(changed: object) -> str:
        text = changed if isinstance(changed, str) else json.dumps(changed)
        with pytest.raises(PlanFileError) as caught:
            SavedPlan.from_json(text, source="f.json")
        return caught.value.message

    added = json.loads(json.dumps(document))
    added["plan"]["steps"].append(added["plan"]["steps"][0])
    assert "changed after it was saved" in refused(added)
    assert "changed after it was saved" in refused({**document, "digest": "0" * 64})
    assert "changed after it was saved" in refused({**document, "disable_fk_checks": True})
    assert "version 2" in refused({**document, "version": 2})
    assert "not a saved rollback plan" in refused({**document, "format": "schemasync-snapshot"})
    assert "not valid JSON" in refused("{")
    assert "keys are not those" in refused({**document, "steer": "x"})
    # A consistent digest over a broken body: refused as damaged, not taken in.
    body = {key: value for key, value in document.items() if key != "digest"}
    body["plan"] = {**body["plan"], "steps": [{**body["plan"]["steps"][0], "phase": "run anything"}]}
    assert "is damaged" in refused({**body, "digest": plan_file._digest(body)})


def test_the_plan_made_now_is_compared_on_what_runs_not_on_live_counts() -> None:
    step = RollbackStep("drop table", "table", "t", "DROP TABLE `t`")
    plan = RollbackPlan("b", "app", "a" * 64, "b" * 64, (step,))
    recounted = attrs.evolve(plan, notes=("12 rows get the default",), preflight=("x",), created_at="later")
    assert differences(plan, recounted) == []
    assert differences(plan, attrs.evolve(plan, steps=(attrs.evolve(step, sql="DROP TABLE `u`"),))) == [
        "step 1: saved drop table 't' ('DROP TABLE `t`'), now drop table 't' ('DROP TABLE `u`')"]
    assert differences(plan, attrs.evolve(plan, steps=(step, step)))[0] == "1 step(s) saved, 2 planned now"
    assert differences(plan, attrs.evolve(plan, live_hash="c" * 64))[0].startswith("live schema hash: saved")


# --- executing a saved plan on the real server -------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    return BackupStore.open(str(tmp_path / "backups"))


@pytest.fixture
def shop(mariadb: ThrowawayServer, root: pymysql.connections.Connection, fresh_db: str) -> str:
    run_sql(root, "mysql", f"DROP DATABASE {q(fresh_db)}")
    load_sample(mariadb.dsn, fresh_db)
    return fresh_db


def migrated_plan(mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str,
                  path: Path) -> tuple[RollbackPlanner, SavedPlan]:
    """A backup, a migration after it, and its rollback plan saved to ``path`` and read back."""
    info = store.create(mariadb.dsn, shop)
    run_sql(root, shop, "ALTER TABLE customer ADD COLUMN nickname VARCHAR(20)",
            "CREATE TABLE scratch (id INT PRIMARY KEY)", "INSERT INTO scratch VALUES (1), (2)")
    planner = RollbackPlanner(store)
    planner.save_plan(planner.plan(mariadb.dsn, info.id), disable_fk_checks=True).write(path)
    return planner, SavedPlan.read(path)


def journals(store: BackupStore, backup_id: str) -> list[str]:
    return store.list_documents(f"journals/{backup_id}")


@pytest.mark.server
def test_a_saved_plan_runs_and_the_schema_equals_the_backup(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str, tmp_path: Path
) -> None:
    _, saved = migrated_plan(mariadb, root, store, shop, tmp_path / "plan.json")
    assert saved.disable_fk_checks and saved.source == str(tmp_path / "plan.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["backups", "plan.json"]  # no temporary file left
    # A fresh planner: nothing of the planning process is remembered, the file is all there is.
    fresh = RollbackPlanner(BackupStore.open(str(store.url)))
    dry = fresh.execute_saved(mariadb.dsn, saved, dry_run=True)
    assert dry.dry_run and not journals(store, saved.backup_id)
    with pytest.raises(RollbackRefusedError, match="destructive step"):
        fresh.execute_saved(mariadb.dsn, saved, rehearse=False)
    result = fresh.execute_saved(mariadb.dsn, saved, destructive_confirmed=True)
    assert result.verified and result.steps_run == len(saved.plan.steps)
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash == store.get(saved.backup_id).schema_hash


@pytest.mark.server
def test_a_saved_plan_is_refused_once_the_live_schema_changed(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str, tmp_path: Path
) -> None:
    planner, saved = migrated_plan(mariadb, root, store, shop, tmp_path / "plan.json")
    run_sql(root, shop, "ALTER TABLE product ADD COLUMN extra INT")
    before = Snapshot.capture(mariadb.dsn, shop).schema_hash
    backups = len(store.list())
    with pytest.raises(StalePlanError, match=r"changed since it was made.*plan file .*plan\.json no longer applies"):
        planner.execute_saved(mariadb.dsn, saved, force=True)
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash == before
    assert len(store.list()) == backups and not journals(store, saved.backup_id)


@pytest.mark.server
def test_a_saved_plan_is_refused_when_its_backup_is_not_the_one_it_was_made_from(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str, tmp_path: Path
) -> None:
    _, saved = migrated_plan(mariadb, root, store, shop, tmp_path / "plan.json")
    # The manifest rewritten under the same id, with a checksum that matches its new content.
    where = Path(str(store.url).removeprefix("file://")) / "manifests" / f"{saved.backup_id}.json"
    stored = manifest.load(where.read_bytes(), str(where))
    where.write_bytes(manifest.dump(manifest.seal(attrs.evolve(
        stored, info=attrs.evolve(stored.info, description="replaced")))))
    replaced = RollbackPlanner(BackupStore.open(str(store.url)))
    assert replaced.store.get(saved.backup_id).description == "replaced"
    before = Snapshot.capture(mariadb.dsn, saved.plan.database).schema_hash
    with pytest.raises(StalePlanError, match=f"made from another state of backup {saved.backup_id}") as refused:
        replaced.execute_saved(mariadb.dsn, saved, force=True)
    assert "--output" in refused.value.message and str(tmp_path / "plan.json") in refused.value.message
    assert Snapshot.capture(mariadb.dsn, saved.plan.database).schema_hash == before


@pytest.mark.server
def test_a_saved_plan_whose_sql_was_edited_and_digest_recomputed_is_refused(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, store: BackupStore, shop: str, tmp_path: Path
) -> None:
    """The digest holds no key: the steps run are those planned again, so an edit still cannot steer them."""
    planner, saved = migrated_plan(mariadb, root, store, shop, tmp_path / "plan.json")
    first, *rest = saved.plan.steps
    forged = attrs.evolve(saved, plan=attrs.evolve(saved.plan, steps=(
        attrs.evolve(first, sql=first.sql + "; DROP TABLE customer", sent=()), *rest)))
    (tmp_path / "forged.json").write_text(forged.to_json())
    before = Snapshot.capture(mariadb.dsn, shop).schema_hash
    with pytest.raises(StalePlanError, match=r"forged\.json is not the plan made now.*step 1: saved"):
        planner.execute_saved(mariadb.dsn, SavedPlan.read(tmp_path / "forged.json"), force=True)
    extra = attrs.evolve(saved, plan=attrs.evolve(saved.plan, steps=(*saved.plan.steps, first)))
    with pytest.raises(StalePlanError, match=r"step\(s\) saved, .* planned now"):
        planner.execute_saved(mariadb.dsn, SavedPlan.from_json(extra.to_json(), source="extra.json"), force=True)
    assert Snapshot.capture(mariadb.dsn, shop).schema_hash == before
    assert not journals(store, saved.backup_id)
