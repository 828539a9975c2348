"""Retention: the policy's semantics as properties over random timelines, then on real storage."""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemasync_backup.formats import journal, manifest
from schemasync_backup.formats.manifest import BackupInfo, Status, UnreadBackupInfo
from schemasync_backup.model.snapshot import ServerInfo, Snapshot
from schemasync_backup.store.retention import (
    PERIODS,
    RULES,
    UNLIMITED,
    RetentionDecision,
    RetentionPolicy,
    RetentionPolicyError,
    decide,
    format_duration,
    parse_duration,
)
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.validator import Validator

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata")
TAGS = ("keep", "env=prod", "env=dev")


def backup(when: datetime, database: str = "app", *, index: int = 0, status: str = Status.COMPLETED,
           pinned: bool = False, tags: dict[str, str] | None = None) -> BackupInfo:
    return BackupInfo(
        id=f"backup-{when.astimezone(UTC).strftime('%Y%m%d-%H%M%S')}-{index:08x}", database=database,
        created_at=when.astimezone(UTC).isoformat(timespec="microseconds"), created_by="test", description="",
        tags=dict(tags or {}), status=status, raw_size=1, stored_size=1, compression="none", encryption=None,
        key_id=None, schema_hash="0" * 64, checksum="", tool_version="0", captured_at="", pinned=pinned,
    )


# --- the properties ------------------------------------------------------------------------------


ENTRY = st.tuples(
    st.one_of(st.integers(0, 3 * 86400), st.integers(0, 400 * 86400)),  # age in seconds: dense recent, sparse old
    st.sampled_from(["app", "app", "crm"]),
    st.sampled_from([Status.COMPLETED] * 6 + [Status.CORRUPTED, Status.FAILED, Status.VALIDATING]),
    st.integers(0, 9).map(lambda n: n == 0),  # pinned, now and then
    st.sampled_from([{}, {}, {}, {"keep": "yes"}, {"env": "prod"}, {"env": "dev"},
                     journal.pre_rollback_tags("backup-20260101-000000-00000001")]),
)


def _timeline(entries: list[tuple[int, str, str, bool, dict[str, str]]]) -> list[BackupInfo]:
    return [backup(NOW - timedelta(seconds=age), database, index=index, status=status, pinned=pinned, tags=tags)
            for index, (age, database, status, pinned, tags) in enumerate(entries)]


def timelines() -> st.SearchStrategy[list[BackupInfo]]:
    return st.lists(ENTRY, max_size=40).map(_timeline)


COUNTS = st.sampled_from([0, 0, 1, 2, 3, 5, 7, UNLIMITED])
POLICIES = st.builds(
    RetentionPolicy,
    max_backups=COUNTS,
    max_age=st.one_of(st.none(), st.integers(0, 60 * 86400).map(lambda s: timedelta(seconds=s))),
    keep_daily=COUNTS,
    keep_weekly=COUNTS,
    keep_monthly=COUNTS,
    keep_tags=st.frozensets(st.sampled_from(TAGS), max_size=2),
    timezone=st.sampled_from(ZONES),
    pre_rollback_max_age=st.one_of(st.none(), st.integers(0, 60 * 86400).map(lambda s: timedelta(seconds=s))),
).filter(lambda policy: not policy.is_empty)


def _time(info: BackupInfo) -> datetime:
    return datetime.fromisoformat(info.created_at)


def _usable(infos: Sequence[BackupInfo]) -> list[BackupInfo]:
    return sorted((i for i in infos if i.status not in (Status.CORRUPTED, Status.FAILED)),
                  key=lambda i: (_time(i), i.id), reverse=True)


def _pre_rollback(info: BackupInfo) -> bool:
    return info.pinned and info.tags.get("pre_rollback") == "true"


def _expected(infos: Sequence[BackupInfo], policy: RetentionPolicy, needed: frozenset[str] = frozenset()
              ) -> dict[str, set[str]]:
    """Each rule's set of backup ids, computed a second way: from the rule's wording, not its algorithm."""
    usable = _usable(infos)
    wanted: dict[str, set[str]] = {rule: set() for rule in RULES}
    # A person's pin holds for ever; a pre-rollback backup's while it is younger than the limit, or the
    # newest usable one of its database, or one an unfinished rollback needs.
    newest_pre = [i.id for i in usable if _pre_rollback(i)][:1]
    limit = policy.pre_rollback_max_age
    wanted["pinned"] = {i.id for i in infos if i.pinned and (
        not _pre_rollback(i) or limit is None or i.id in needed or i.id in newest_pre or NOW - _time(i) <= limit)}
    wanted["keep_tags"] = {i.id for i in infos if any(
        key in i.tags and (not value or i.tags[key] == value)
        for key, _, value in (tag.partition("=") for tag in policy.keep_tags))}
    if policy.max_backups:
        wanted["max_backups"] = {i.id for i in (usable if policy.max_backups == UNLIMITED else
                                                usable[: policy.max_backups])}
    if policy.max_age is not None:
        wanted["max_age"] = {i.id for i in usable if NOW - _time(i) <= policy.max_age}
    zone = ZoneInfo(policy.timezone) if policy.timezone != "UTC" else UTC
    for rule, period_of, _ in PERIODS:
        count = getattr(policy, rule)
        by_period: dict[str, list[BackupInfo]] = {}
        for info in usable:
            by_period.setdefault(period_of(_time(info).astimezone(zone)), []).append(info)
        # "for each of the last N periods that have backups, the newest backup in it"
        periods = sorted(by_period, key=lambda p: max(_time(i) for i in by_period[p]), reverse=True)
        chosen = periods if count == UNLIMITED else periods[:count]
        wanted[rule] = {max(by_period[p], key=lambda i: (_time(i), i.id)).id for p in chosen}
    wanted["newest"] = {usable[0].id} if usable else set()
    return wanted


def check_decisions(infos: Sequence[BackupInfo], policy: RetentionPolicy, decisions: Sequence[RetentionDecision],
                    needed: frozenset[str] = frozenset()) -> None:
    assert sorted(d.backup_id for d in decisions) == sorted(i.id for i in infos if i.status != Status.CREATING)
    assert [(d.created_at, d.backup_id) for d in decisions] == sorted(
        ((d.created_at, d.backup_id) for d in decisions), reverse=True)
    by_id = {d.backup_id: d for d in decisions}
    for database in {i.database for i in infos}:
        group = [i for i in infos if i.database == database]
        wanted = _expected(group, policy.for_database(database), needed)
        for info in group:
            decision = by_id[info.id]
            got = set(decision.rules)
            # Every backup kept is kept by a named rule, and only by rules that truly select it ...
            assert decision.keep == bool(got), decision
            assert got == {rule for rule, ids in wanted.items() if info.id in ids}, (decision, info)
            assert decision.rule == (decision.rules[0] if decision.keep else decision.rule)
            assert list(decision.rules) == sorted(decision.rules, key=RULES.index)
            # ... a damaged backup counts toward no keep rule ...
            if not decision.keep and info.pinned:  # only an automatic pre-rollback backup's pin expires
                assert _pre_rollback(info) and info.id not in needed and decision.rule == "pre_rollback_max_age"
            elif info.status in (Status.CORRUPTED, Status.FAILED):
                assert got <= {"pinned", "keep_tags"}, decision
                assert decision.keep or decision.rule == "unusable"
        # ... no rule is violated (every backup a rule selects is kept) ...
        for rule, ids in wanted.items():
            assert all(by_id[backup_id].keep for backup_id in ids), rule
        # ... and the newest usable backup of every database is always kept.
        usable = _usable(group)
        if usable:
            assert by_id[usable[0].id].keep


@settings(max_examples=200, deadline=None)
@given(infos=timelines(), policy=POLICIES)
def test_every_decision_follows_the_rules(infos: list[BackupInfo], policy: RetentionPolicy) -> None:
    check_decisions(infos, policy, decide(infos, policy, now=NOW))


@settings(max_examples=200, deadline=None)
@given(infos=timelines(), policy=POLICIES, data=st.data())
def test_pre_rollback_backups_retire_but_never_the_way_back(infos: list[BackupInfo], policy: RetentionPolicy,
                                                           data: st.DataObject) -> None:
    pre = sorted(i.id for i in infos if _pre_rollback(i))
    needed = frozenset(data.draw(st.lists(st.sampled_from(pre), unique=True)) if pre else [])
    decisions = decide(infos, policy, now=NOW, needed=dict.fromkeys(needed, "run X failed"))
    check_decisions(infos, policy, decisions, needed)
    by_id = {d.backup_id: d for d in decisions}
    for info in infos:
        if info.pinned and not _pre_rollback(info):
            assert by_id[info.id].keep  # a person's pin is never retired
        if info.id in needed:
            assert by_id[info.id].keep and "run X failed" in by_id[info.id].reason
    for database in {i.database for i in infos}:
        newest = [i for i in _usable([i for i in infos if i.database == database]) if _pre_rollback(i)][:1]
        assert all(by_id[i.id].keep for i in newest)


@settings(max_examples=100, deadline=None)
@given(infos=timelines(), policy=POLICIES, crm=POLICIES)
def test_each_database_is_decided_by_its_own_policy(
    infos: list[BackupInfo], policy: RetentionPolicy, crm: RetentionPolicy
) -> None:
    combined = attrs.evolve(policy, databases={"crm": crm})
    decisions = decide(infos, combined, now=NOW)
    check_decisions(infos, combined, decisions)
    alone = {d.backup_id: d for d in decide([i for i in infos if i.database == "crm"], crm, now=NOW)}
    assert {d.backup_id: d for d in decisions if d.database == "crm"} == alone


@settings(max_examples=100, deadline=None)
@given(infos=timelines(), policy=POLICIES)
def test_a_looser_policy_keeps_a_superset(infos: list[BackupInfo], policy: RetentionPolicy) -> None:
    def bump(count: int) -> int:
        return count if count == UNLIMITED else count + 1

    looser = attrs.evolve(policy, max_backups=bump(policy.max_backups), keep_daily=bump(policy.keep_daily),
                          keep_weekly=bump(policy.keep_weekly), keep_monthly=bump(policy.keep_monthly))
    kept = {d.backup_id for d in decide(infos, policy, now=NOW) if d.keep}
    assert kept <= {d.backup_id for d in decide(infos, looser, now=NOW) if d.keep}


# --- worked examples (docs/retention.md) ----------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


DOCS_TIMELINE = [  # the example in docs/retention.md, newest first
    "2026-11-25 09:00", "2026-11-25 03:00", "2026-11-24 21:00", "2026-11-24 08:00", "2026-11-22 10:00",
    "2026-11-16 10:00", "2026-11-10 10:00", "2026-10-31 10:00", "2026-10-02 10:00", "2026-09-15 10:00",
]


def kept_times(decisions: Sequence[RetentionDecision], rule: str | None = None) -> list[str]:
    return [d.created_at[:16].replace("T", " ") for d in decisions if d.keep and (rule is None or rule in d.rules)]


def test_docs_example_daily_weekly_monthly() -> None:
    infos = [backup(at(text), index=n) for n, text in enumerate(DOCS_TIMELINE)]
    decisions = decide(infos, RetentionPolicy(keep_daily=3, keep_weekly=2, keep_monthly=3), now=at("2026-11-25 12:00"))
    assert kept_times(decisions, "keep_daily") == ["2026-11-25 09:00", "2026-11-24 21:00", "2026-11-22 10:00"]
    # ISO weeks: 2026-W48 (Nov 23-29) and 2026-W47 (Nov 16-22): the newest of each.
    assert kept_times(decisions, "keep_weekly") == ["2026-11-25 09:00", "2026-11-22 10:00"]
    assert kept_times(decisions, "keep_monthly") == ["2026-11-25 09:00", "2026-10-31 10:00", "2026-09-15 10:00"]
    assert kept_times(decisions) == ["2026-11-25 09:00", "2026-11-24 21:00", "2026-11-22 10:00", "2026-10-31 10:00",
                                     "2026-09-15 10:00"]
    removed = [d for d in decisions if not d.keep]
    assert {d.rule for d in removed} == {"none"} and {d.reason for d in removed} == {"no rule keeps it"}
    newest = decisions[0]
    assert newest.rule == "keep_daily" and newest.rules == ("keep_daily", "keep_weekly", "keep_monthly", "newest")
    assert "newest in day 2026-11-25 (1 of 3)" in newest.reason


def test_docs_example_corrupted_pinned_tags_and_age() -> None:
    infos = [backup(at(text), index=n) for n, text in enumerate(DOCS_TIMELINE)]
    infos[0] = attrs.evolve(infos[0], status=Status.CORRUPTED)
    infos[6] = attrs.evolve(infos[6], pinned=True)
    infos[9] = attrs.evolve(infos[9], tags={"release": "v1"})
    decisions = decide(infos, RetentionPolicy(keep_daily=2, max_age="36h", keep_tags=["release"]),
                       now=at("2026-11-25 12:00"))
    by_time = {d.created_at[:16].replace("T", " "): d for d in decisions}
    corrupted = by_time["2026-11-25 09:00"]
    assert not corrupted.keep and corrupted.rule == "unusable" and "CORRUPTED" in corrupted.reason
    # The corrupted backup does not fill the day: the next one in it does, and is the newest usable.
    assert by_time["2026-11-25 03:00"].rules == ("max_age", "keep_daily", "newest")
    assert by_time["2026-11-24 21:00"].rules == ("max_age", "keep_daily")
    assert by_time["2026-11-24 08:00"].rules == ("max_age",)
    assert by_time["2026-11-10 10:00"].rule == "pinned"
    assert by_time["2026-09-15 10:00"].rule == "keep_tags" and "release" in by_time["2026-09-15 10:00"].reason
    assert sum(d.keep for d in decisions) == 5


def test_days_are_counted_in_the_policy_time_zone() -> None:
    # 23:30 UTC on the 24th is already the 25th in Berlin: one day there, two in UTC.
    infos = [backup(at("2026-11-25 08:00"), index=1), backup(at("2026-11-24 23:30"), index=2)]
    utc = decide(infos, RetentionPolicy(keep_daily=2), now=NOW)
    berlin = decide(infos, RetentionPolicy(keep_daily=2, timezone="Europe/Berlin"), now=NOW)
    assert [d.keep for d in utc] == [True, True]
    assert [d.keep for d in berlin] == [True, False]


def test_newest_is_kept_even_when_max_age_has_passed() -> None:
    infos = [backup(NOW - timedelta(days=30), index=1), backup(NOW - timedelta(days=40), index=2)]
    decisions = decide(infos, RetentionPolicy(max_age="7d"), now=NOW)
    assert [(d.keep, d.rule) for d in decisions] == [(True, "newest"), (False, "none")]


def test_creating_and_unreadable_backups() -> None:
    infos = [
        backup(NOW, index=1),
        attrs.evolve(backup(NOW - timedelta(days=1), index=2), status=Status.CREATING),
        UnreadBackupInfo.of(backup(NOW - timedelta(days=2), index=3).id, Status.CORRUPTED),
    ]
    decisions = decide(infos, RetentionPolicy(max_backups=1), now=NOW)
    assert [(d.backup_id[-1], d.keep, d.rule) for d in decisions] == [("1", True, "max_backups"),
                                                                       ("3", True, "unreadable")]


def test_an_empty_policy_is_refused() -> None:
    infos = [backup(NOW, index=1), backup(NOW - timedelta(days=1), index=2)]
    with pytest.raises(RetentionPolicyError, match="has no rule"):
        decide(infos, RetentionPolicy(), now=NOW)
    assert decide([], RetentionPolicy(), now=NOW) == ()
    with pytest.raises(RetentionPolicyError, match="'crm' has no rule"):
        decide([backup(NOW, "crm")], RetentionPolicy(max_backups=1, databases={"crm": RetentionPolicy()}), now=NOW)


# --- durations and settings --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("168h", timedelta(days=7)), ("7d", timedelta(days=7)), ("2w", timedelta(days=14)), ("90m", timedelta(hours=1.5)),
    ("1d12h", timedelta(hours=36)), ("30s", timedelta(seconds=30)), ("3600", timedelta(hours=1)),
    ("500ms", timedelta(milliseconds=500)), (" 7D ", timedelta(days=7)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "7x", "-1d", "7 days", "d", "1.2.3h", "7d-"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(RetentionPolicyError, match="invalid duration"):
        parse_duration(text)


def test_policy_from_settings() -> None:
    policy = RetentionPolicy.from_dict({
        "max_backups": 10, "max_age": "168h", "keep_daily": 7, "keep_weekly": "unlimited", "keep_tags": "release",
        "databases": {"prod": {"max_backups": 30}},
    })
    assert policy.max_age == timedelta(days=7) and policy.keep_weekly == UNLIMITED
    assert policy.keep_tags == frozenset({"release"})
    prod = policy.for_database("prod")
    assert prod.max_backups == 30 and prod.keep_daily == 7 and prod.max_age == timedelta(days=7)  # inherited
    assert policy.for_database("other") == attrs.evolve(policy, databases={})
    assert RetentionPolicy.from_dict(policy.to_dict()) == policy
    assert RetentionPolicy.from_dict({}).is_empty


@pytest.mark.parametrize(("settings_", "subject", "message"), [
    ({"max_backups": -2}, "max_backups", "max_backups must be a whole number"),
    ({"keep_daily": "often"}, "keep_daily", "keep_daily must be a whole number"),
    ({"max_age": "a week"}, "max_age", "max_age: invalid duration"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"keep_tags": ["=v"]}, "keep_tags", "invalid keep_tags entry"),
    ({"keep_hourly": 3}, "keep_hourly", "unknown retention setting 'keep_hourly'"),
    ({"databases": ["prod"]}, "databases", "must map database names"),
])
def test_bad_settings_name_the_setting(settings_: dict[str, Any], subject: str, message: str) -> None:
    with pytest.raises(RetentionPolicyError, match=message) as caught:
        RetentionPolicy.from_dict(settings_)
    assert caught.value.subject == subject
    assert isinstance(caught.value, ValueError)


# --- on real storage ---------------------------------------------------------------------------


def snapshot(variant: int, database: str = "app") -> Snapshot:
    # A distinct collation makes a distinct snapshot object, so removed backups leave objects to prune.
    return Snapshot(database, "utf8mb4", f"utf8mb4_variant_{variant}", ServerInfo("mariadb", "11.4.0", "", 0))


def plant(store: BackupStore, when: datetime, variant: int, database: str = "app", **options: Any) -> BackupInfo:
    """A real backup on ``store`` as if created at ``when`` (ids and times are minted from the clock)."""
    info = store.save(snapshot(variant, database), **options)
    found = store.manifest(info.id)
    moved = manifest.seal(attrs.evolve(found, info=attrs.evolve(
        found.info, id=manifest.new_backup_id(when), created_at=when.isoformat(timespec="microseconds"))))
    committed = store.commit_manifest(moved)
    store.files.remove([store.files.manifest_path(info.id)])
    return committed


@pytest.mark.parametrize("storage_url", ["file", "memory", "gcs"], indirect=True)
def test_apply_retention_on_storage(storage_url: Any) -> None:
    store = BackupStore.open(storage_url.url, storage_options=storage_url.options)
    planted = [plant(store, NOW - timedelta(days=days), variant) for variant, days in enumerate([0, 1, 2, 9, 40])]
    pinned = plant(store, NOW - timedelta(days=60), 5, pinned=True)
    other = plant(store, NOW - timedelta(days=90), 6, "crm")
    policy = RetentionPolicy(max_backups=2, databases={"crm": RetentionPolicy(keep_monthly=1)})

    dry = store.apply_retention(policy, now=NOW)
    assert dry.dry_run and dry.removed == () and dry.prune is None
    assert {d.backup_id for d in dry.to_remove} == {planted[2].id, planted[3].id, planted[4].id}
    assert {d.backup_id: d.rule for d in dry.kept} == {planted[0].id: "max_backups", planted[1].id: "max_backups",
                                                       pinned.id: "pinned", other.id: "keep_monthly"}
    objects = set(store.object_paths())
    assert len(store.list()) == 7 and {store.files.object_path(r) for i in store.list()
                                       for r in store.manifest(i.id).objects} == objects  # a dry run changes nothing

    done = store.apply_retention(policy, dry_run=False, now=NOW, grace="0s")
    assert set(done.removed) == {planted[2].id, planted[3].id, planted[4].id}
    assert {info.id for info in store.list()} == {planted[0].id, planted[1].id, pinned.id, other.id}
    still = {store.files.object_path(r) for i in store.list() for r in store.manifest(i.id).objects}
    assert set(store.object_paths()) == still and len(still) < len(objects)
    assert done.prune is not None and done.prune.removed_bytes > 0
    assert {store.files.path(path) for path in done.prune.removed_objects} == objects - still
    validator = Validator(store)
    assert all(validator.validate(info.id).valid for info in store.list())
    report = done.to_dict()
    assert report["remove_count"] == 3 and report["prune"]["removed_bytes"] == done.prune.removed_bytes
    # Applying it again decides the same way and removes nothing more.
    again = store.apply_retention(policy, dry_run=False, now=NOW, grace="0s")
    assert again.removed == () and again.prune is not None and again.prune.removed_objects == ()


def test_apply_retention_for_one_database_and_grace(tmp_path: Any) -> None:
    store = BackupStore.open(str(tmp_path))
    app = [plant(store, NOW - timedelta(days=d), d) for d in (0, 1)]
    crm = [plant(store, NOW - timedelta(days=d), 10 + d, "crm") for d in (0, 1)]
    report = store.apply_retention(RetentionPolicy(max_backups=1), dry_run=False, database="crm", now=NOW)
    assert report.removed == (crm[1].id,)
    assert {info.id for info in store.list()} == {app[0].id, app[1].id, crm[0].id}
    # The default grace period (1 h) keeps the objects the removed backup left, written seconds ago.
    assert report.prune is not None and report.prune.removed_objects == ()
    still = {store.files.object_path(r) for i in store.list() for r in store.manifest(i.id).objects}
    left = set(store.object_paths()) - still
    assert left and {store.files.path(path) for path in report.prune.kept_recent} == left


def test_apply_retention_reports_a_prune_it_could_not_run(tmp_path: Any) -> None:
    store = BackupStore.open(str(tmp_path))
    plant(store, NOW, 1)
    old = plant(store, NOW - timedelta(days=3), 2)
    marker = tmp_path / "pending" / "backup-20261125-115959-0000beef.json"
    marker.write_text(json.dumps({"id": marker.stem, "pid": os.getpid(), "host": socket.gethostname(),
                                  "started_at": datetime.now(UTC).isoformat()}))
    report = store.apply_retention(RetentionPolicy(max_backups=1), dry_run=False, now=NOW, grace="0s")
    assert report.removed == (old.id,) and report.prune is None
    assert "being created" in report.prune_skipped and marker.stem in report.prune_skipped
    marker.unlink()
    assert store.prune(grace="0s").removed_objects != ()


_SPELLINGS = ["90s", "15m", "1h", "36h", "7d", "2w", "500ms", "1d12h", "1h 30m", " 7D ", "3600", "1.5h", "0s"]
_REFUSED = ["", "7x", "-1d", "7 days", "d", "1.2.3h", "7d-", "P1D", "PT1H", "-5", "nan", "1h-"]


@pytest.mark.parametrize("text", _SPELLINGS)
def test_every_duration_user_reads_the_same_grammar(tmp_path: Path, text: str) -> None:
    """Config settings and CLI arguments (config.parse_duration) once had a grammar of their own
    beside retention's and prune's (retention.parse_duration); one grammar now, one answer."""
    from schemasync_backup.cli import config
    from schemasync_backup.model import durations

    expected = durations.parse_duration(text)
    assert config.parse_duration(text) == expected.total_seconds()
    assert parse_duration(text) == expected == RetentionPolicy(max_age=text).max_age
    assert parse_duration(format_duration(expected)) == expected
    assert config.parse_duration(config.durations.format_duration(expected.total_seconds())) == expected.total_seconds()
    assert BackupStore.open(str(tmp_path)).prune(grace=text, dry_run=True).grace_seconds == expected.total_seconds()


@pytest.mark.parametrize("text", _REFUSED)
def test_every_duration_user_refuses_the_same_spellings(text: str) -> None:
    from schemasync_backup.cli import config

    with pytest.raises(RetentionPolicyError, match="invalid duration"):
        parse_duration(text)
    with pytest.raises(ValueError, match=r"expected a duration|must not be negative"):
        config.parse_duration(text)
    for value in (-5, float("nan"), True):
        with pytest.raises(ValueError):
            config.parse_duration(value)
        with pytest.raises(RetentionPolicyError):
            parse_duration(value)


# --- automatic pre-rollback backups ------------------------------------------------------------


TARGET = "backup-20261001-100000-0000abcd"


def test_docs_example_pre_rollback_backups_retire() -> None:
    """docs/retention.md: four pre-rollback backups of app, one a person pinned, 30 days (the default)."""
    pre = journal.pre_rollback_tags(TARGET)
    infos = [backup(NOW - timedelta(days=1), index=1),                              # an ordinary backup
             backup(NOW - timedelta(days=40), index=2, pinned=True, tags=pre),     # the newest pre-rollback
             backup(NOW - timedelta(days=50), index=3, pinned=True, tags=pre),     # its failed run's way back
             backup(NOW - timedelta(days=60), index=4, pinned=True, tags=pre),     # retired
             backup(NOW - timedelta(days=90), index=5, pinned=True),               # pinned by a person
             backup(NOW - timedelta(days=10), "crm", index=6, pinned=True, tags=pre)]
    decisions = {d.backup_id[-1]: d for d in decide(infos, RetentionPolicy(max_backups=1), now=NOW,
                                                   needed={infos[2].id: "the latest rollback is failed"})}
    assert {name: (d.action, d.rule) for name, d in decisions.items()} == {
        "1": ("keep", "max_backups"), "2": ("keep", "pinned"), "3": ("keep", "pinned"),
        "4": ("remove", "pre_rollback_max_age"), "5": ("keep", "pinned"), "6": ("keep", "pinned")}
    assert "the newest usable one of its database" in decisions["2"].reason
    assert "the way back while the latest rollback is failed" in decisions["3"].reason
    assert decisions["4"].reason.startswith("pre_rollback_max_age: an automatic pre-rollback backup older than 30d")
    assert "never retired automatically" in decisions["5"].reason
    # Off, every pin holds; and other rules still keep a retired one.
    never = RetentionPolicy.from_dict({"max_backups": 1, "pre_rollback_max_age": "unlimited"})
    assert never.pre_rollback_max_age is None and all(d.keep for d in decide(infos, never, now=NOW))
    assert all(d.keep for d in decide(infos, RetentionPolicy(max_backups=5), now=NOW))
    assert RetentionPolicy.from_dict(RetentionPolicy(max_backups=1, pre_rollback_max_age="7d").to_dict()) == \
        RetentionPolicy(max_backups=1, pre_rollback_max_age="7d")
    with pytest.raises(RetentionPolicyError, match="pre_rollback_max_age: invalid duration") as caught:
        RetentionPolicy.from_dict({"max_backups": 1, "pre_rollback_max_age": "a month"})
    assert caught.value.subject == "pre_rollback_max_age"


def _journal(store: BackupStore, target: str, run: str, status: str, pre: str) -> None:
    store.put_document(journal.path(target, f"{run}.json"), json.dumps(
        {"run_id": run, "backup_id": target, "status": status, "pre_rollback_backup_id": pre, "steps": []}).encode())


def test_apply_retention_keeps_what_an_unfinished_rollback_needs(tmp_path: Path) -> None:
    from schemasync_backup.cli import main as cli

    store = BackupStore.open(str(tmp_path / "store"))
    other = "backup-20261002-100000-0000abce"
    newest = plant(store, NOW - timedelta(days=35), 1, pinned=True, tags=journal.pre_rollback_tags(TARGET))
    failed = plant(store, NOW - timedelta(days=45), 2, pinned=True, tags=journal.pre_rollback_tags(TARGET))
    done = plant(store, NOW - timedelta(days=55), 3, pinned=True, tags=journal.pre_rollback_tags(other))
    unparsed = plant(store, NOW - timedelta(days=65), 4, pinned=True, tags=journal.pre_rollback_tags(other))
    by_hand = plant(store, NOW - timedelta(days=400), 5, pinned=True)
    # The rollback to TARGET failed (its latest run); the one to `other` failed once, then completed.
    _journal(store, TARGET, "run-20261010-100000-000000-aaaaaa", "failed", failed.id)
    _journal(store, other, "run-20261001-100000-000000-bbbbbb", "failed", done.id)
    _journal(store, other, "run-20261002-100000-000000-cccccc", "completed", done.id)
    report = store.apply_retention(RetentionPolicy(max_backups=1), now=NOW)
    actions = {d.backup_id: (d.action, d.rule) for d in report.decisions}
    assert actions == {newest.id: ("keep", "pinned"), failed.id: ("keep", "pinned"),
                       done.id: ("remove", "pre_rollback_max_age"), unparsed.id: ("remove", "pre_rollback_max_age"),
                       by_hand.id: ("keep", "pinned")}
    reasons = {d.backup_id: d.reason for d in report.decisions}
    assert "run-20261010-100000-000000-aaaaaa) is failed" in reasons[failed.id]

    # A latest journal that cannot be parsed keeps every pre-rollback backup of a rollback to its backup.
    store.put_document(journal.path(other, "run-20261003-100000-000000-dddddd.json"), b"{not json")
    kept = {d.backup_id for d in store.apply_retention(RetentionPolicy(max_backups=1), now=NOW).kept}
    assert {done.id, unparsed.id} <= kept
    store.remove_document(journal.path(other, "run-20261003-100000-000000-dddddd.json"))

    # The CLI's dry run names the rule that retires each; the cleanup then removes exactly those.
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  local:\n    base_path: {tmp_path / 'store'}\n"
                      "retention:\n  max_backups: 1\n  pre_rollback_max_age: 30d\n")
    out = io.StringIO()
    assert cli.main(["backup", "cleanup", "--dry-run", "--config", str(config)], stdout=out, stderr=io.StringIO()) == 0
    rows = {line.split()[0]: line.split() for line in out.getvalue().splitlines() if line.startswith("backup-")}
    assert rows[done.id][-2:] == ["remove", "pre_rollback_max_age"] and rows[failed.id][-2:] == ["keep", "pinned"]
    assert cli.main(["backup", "cleanup", "--force", "--config", str(config)], stdout=io.StringIO(),
                    stderr=io.StringIO()) == 0
    assert {info.id for info in store.list()} == {newest.id, failed.id, by_hand.id}
