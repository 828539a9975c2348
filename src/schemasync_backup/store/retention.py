"""Retention policies: which backups to keep, which to remove, and the rule that decided.

:func:`decide` is pure (plain values in, decisions out) so the policy's semantics can be
tested with hypothesis; :func:`apply_retention` is the I/O edge that removes the manifests of
the backups no rule keeps and then prunes (maintenance.py). docs/retention.md explains the
rules with worked examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from schemasync_backup.converter import report, unstructure
from schemasync_backup.display import Card, Rows, Shown, brief_repr, headline
from schemasync_backup.errors import RetentionPolicyError as RetentionPolicyError  # noqa: PLC0414 - re-export
from schemasync_backup.formats.journal import is_pre_rollback
from schemasync_backup.formats.manifest import BackupInfo, Status, UnreadBackupInfo
from schemasync_backup.model import durations
from schemasync_backup.model.durations import format_duration

if TYPE_CHECKING:
    from schemasync_backup.store.maintenance import PruneResult

#: Every rule that can keep a backup, in the order that names "the rule that decided".
RULES = ("pinned", "keep_tags", "max_backups", "max_age", "keep_daily", "keep_weekly", "keep_monthly", "newest",
         "unreadable")
#: A count of -1 means "every period" (restic's ``unlimited``).
UNLIMITED = -1
#: Statuses that count toward no keep rule: such a backup cannot be restored as it is.
UNUSABLE = frozenset({Status.CORRUPTED, Status.FAILED})



# --- durations ----------------------------------------------------------------------------


def parse_duration(value: str | timedelta | float) -> timedelta:
    """``"168h"``, ``"7d"``, ``"2w"``, ``"90m"`` (minutes), ``"1d12h"``, a timedelta, or seconds (a number).

    The grammar of :mod:`schemasync_backup.durations`; a refusal is a :class:`RetentionPolicyError`.
    """
    try:
        return durations.parse_duration(value)
    except ValueError as exc:
        raise RetentionPolicyError(f"invalid duration {value!r}: {exc}", subject=value) from None


# --- the policy -----------------------------------------------------------------------------


def _optional_duration(value: str | timedelta | float | None) -> timedelta | None:
    return None if value is None else parse_duration(value)


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
        raise RetentionPolicyError(
            f"{attribute.name} must be a whole number >= 0 (or -1 / 'unlimited' for every period), got {value!r}",
            subject=attribute.name,
        )


def _tags(value: Iterable[str] | str) -> frozenset[str]:
    tags = frozenset([value] if isinstance(value, str) else value)
    for tag in tags:
        if not isinstance(tag, str) or not tag.partition("=")[0]:
            raise RetentionPolicyError(f"invalid keep_tags entry {tag!r}: use 'key' or 'key=value'", subject=tag)
    return tags


def _zone(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _tz(value)


def _tz(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RetentionPolicyError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin", subject=name
        ) from None


def _overrides(value: Mapping[str, RetentionPolicy]) -> dict[str, RetentionPolicy]:
    for name, policy in value.items():
        if not isinstance(policy, RetentionPolicy):
            raise RetentionPolicyError(
                f"the retention policy for database {name!r} must be a RetentionPolicy; use RetentionPolicy.from_dict "
                "for mappings", subject=name,
            )
    return dict(value)


_FIELDS = ("max_backups", "max_age", "keep_daily", "keep_weekly", "keep_monthly", "keep_tags", "timezone",
           "pre_rollback_max_age")
#: How long an automatic pre-rollback backup stays pinned (docs/retention.md).
DEFAULT_PRE_ROLLBACK_MAX_AGE = timedelta(days=30)
#: The rule that retires an automatic pre-rollback backup: the decision's rule when nothing else keeps it.
RETIRED = "pre_rollback_max_age"


def _optional_age(policy: RetentionPolicy, name: str) -> str | None:
    value: timedelta | None = getattr(policy, name)
    return None if value is None else format_duration(value)


@report(max_age=lambda policy: _optional_age(policy, "max_age"),
        pre_rollback_max_age=lambda policy: _optional_age(policy, "pre_rollback_max_age"),
        keep_tags=lambda policy: sorted(policy.keep_tags),
        databases=lambda policy: dict(sorted(policy.databases.items())))
@attrs.frozen
class RetentionPolicy:
    """What to keep. A backup kept by any rule is kept; every count of 0 switches its rule off.

    ``max_backups``: the newest N. ``max_age``: every backup younger than this (relative to now).
    ``keep_daily`` / ``keep_weekly`` / ``keep_monthly``: for each of the last N days / ISO weeks /
    months that have backups, the newest backup in it (restic's ``forget --keep-*``; -1 = every
    period). ``keep_tags``: ``"key"`` or ``"key=value"``; matching backups are never removed, nor
    are backups a person pinned. Days, weeks and months are counted in ``timezone``. ``databases``
    gives a database its own policy; every database's backups are decided on their own.

    ``pre_rollback_max_age``: how long an automatic pre-rollback backup stays pinned (None: for
    ever). Past it, only the other rules keep it, except the newest usable pre-rollback backup of
    each database and any an unfinished rollback still needs, which stay pinned.
    """

    max_backups: int = attrs.field(default=0, validator=_count)
    max_age: timedelta | None = attrs.field(default=None, converter=_optional_duration)
    keep_daily: int = attrs.field(default=0, validator=_count)
    keep_weekly: int = attrs.field(default=0, validator=_count)
    keep_monthly: int = attrs.field(default=0, validator=_count)
    keep_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tags)
    timezone: str = attrs.field(default="UTC", validator=_zone)
    pre_rollback_max_age: timedelta | None = attrs.field(default=DEFAULT_PRE_ROLLBACK_MAX_AGE,
                                                         converter=_optional_duration)
    databases: dict[str, RetentionPolicy] = attrs.field(factory=dict, converter=_overrides, hash=False)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> RetentionPolicy:
        """Build a policy from configuration. ``databases: {name: {...}}`` entries override the
        top-level settings for that database (unset keys are inherited). ``"unlimited"`` is -1, and
        for ``pre_rollback_max_age`` (as null is) "never retire"."""
        unknown = sorted(set(settings) - {*_FIELDS, "databases"})
        if unknown:
            raise RetentionPolicyError(
                f"unknown retention setting {unknown[0]!r}; known: {', '.join((*_FIELDS, 'databases'))}",
                subject=unknown[0],
            )
        base = {key: _setting(key, value) for key, value in settings.items() if key != "databases"}
        for key, value in base.items():  # one at a time, so that an error names its setting
            try:
                cls(**{key: value})
            except RetentionPolicyError as exc:
                message = exc.message if key in exc.message else f"{key}: {exc.message}"
                raise RetentionPolicyError(message, subject=key) from None
        databases = settings.get("databases") or {}
        if not isinstance(databases, Mapping):
            raise RetentionPolicyError("retention 'databases' must map database names to settings",
                                       subject="databases")
        overrides = {}
        for name, override in databases.items():
            if not isinstance(override, Mapping) or override.get("databases"):
                raise RetentionPolicyError(
                    f"retention settings for database {name!r} must be a mapping without 'databases'", subject=name
                )
            overrides[str(name)] = cls.from_dict({**base, **{k: v for k, v in override.items() if k != "databases"}})
        return cls(**base, databases=overrides)

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def for_database(self, database: str) -> RetentionPolicy:
        """The policy that applies to ``database``."""
        return self.databases.get(database, attrs.evolve(self, databases={}))

    @property
    def is_empty(self) -> bool:
        """No rule at all: applying it would remove every backup but the newest of each database."""
        return not (self.max_backups or self.max_age is not None or self.keep_daily or self.keep_weekly
                    or self.keep_monthly or self.keep_tags)


def _setting(key: str, value: Any) -> Any:
    if key in ("max_backups", "keep_daily", "keep_weekly", "keep_monthly"):
        if value is None:
            return 0
        if isinstance(value, str) and value.strip().lower() == "unlimited":
            return UNLIMITED
    if key == "keep_tags" and value is None:
        return frozenset()
    if key == "pre_rollback_max_age" and isinstance(value, str) and value.strip().lower() == "unlimited":
        return None
    return value


# --- deciding (pure) ---------------------------------------------------------------------------


@report("backup_id", "database", "created_at", "status", "action", ..., omit=("keep",))
@attrs.frozen
class RetentionDecision:
    """Keep or remove one backup, and why. ``rule`` decided; ``rules`` lists every rule that keeps it."""

    backup_id: str
    database: str
    created_at: str
    status: str
    keep: bool
    rule: str
    rules: tuple[str, ...]
    reason: str
    pinned: bool = False

    @property
    def action(self) -> str:
        return "keep" if self.keep else "remove"

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


def _time(info: BackupInfo) -> datetime:
    created = datetime.fromisoformat(info.created_at)
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _tag_match(tags: Mapping[str, str], wanted: str) -> bool:
    key, has_value, value = wanted.partition("=")
    return key in tags and (not has_value or tags[key] == value)


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


#: The period rules: name, how a backup's local time maps to its period, what the period is called.
PERIODS: tuple[tuple[str, Callable[[datetime], str], str], ...] = (
    ("keep_daily", _day, "day"),
    ("keep_weekly", _week, "ISO week"),
    ("keep_monthly", _month, "month"),
)


def decide(
    backups: Iterable[BackupInfo], policy: RetentionPolicy, *, now: datetime | None = None,
    needed: Mapping[str, str] | None = None,
) -> tuple[RetentionDecision, ...]:
    """Keep or remove every backup by ``policy``, each database on its own; newest first.

    ``needed``: pre-rollback backups an unfinished rollback still needs, each with why (see
    :func:`~schemasync_backup.store.maintenance.needed_by_rollbacks`); they stay pinned.

    Backups still being written (CREATING) are not backups yet and get no decision. A backup
    whose manifest cannot be read at all is kept (its database and pinned flag are unknown).
    Raises :class:`RetentionPolicyError` when a database's policy has no rule.
    """
    moment = now if now is not None else datetime.now(UTC)
    groups: dict[str, list[BackupInfo]] = {}
    decisions: list[RetentionDecision] = []
    for info in backups:
        if info.status == Status.CREATING:
            continue
        if isinstance(info, UnreadBackupInfo):
            decisions.append(RetentionDecision(
                info.id, info.database, info.created_at, info.status, True, "unreadable", ("unreadable",),
                "unreadable: the manifest cannot be read, so its database and pinned flag are unknown; "
                "kept until someone looks (Validator.recovery_scan)", info.pinned,
            ))
            continue
        groups.setdefault(info.database, []).append(info)
    for database, group in groups.items():
        decisions.extend(_decide_database(database, group, policy.for_database(database), moment, needed or {}))
    decisions.sort(key=lambda decision: (decision.created_at, decision.backup_id), reverse=True)
    return tuple(decisions)


def _decide_database(
    database: str, group: Sequence[BackupInfo], policy: RetentionPolicy, now: datetime, needed: Mapping[str, str]
) -> list[RetentionDecision]:
    if policy.is_empty:
        raise RetentionPolicyError(
            f"the retention policy for database {database!r} has no rule, so it would remove every backup but "
            "the newest; set max_backups, max_age, keep_daily, keep_weekly, keep_monthly or keep_tags",
            subject=database,
        )
    ordered = sorted(group, key=lambda info: (_time(info), info.id), reverse=True)
    usable = [info for info in ordered if info.status not in UNUSABLE]
    reasons: dict[str, list[tuple[str, str]]] = {info.id: [] for info in ordered}
    for rule, backup_id, reason in _kept(ordered, usable, policy, now, needed):
        reasons[backup_id].append((rule, reason))
    decisions = []
    for info in ordered:
        found = sorted(reasons[info.id], key=lambda pair: RULES.index(pair[0]))
        if found:
            rule, rules, reason = found[0][0], tuple(rule for rule, _ in found), "; ".join(text for _, text in found)
        elif info.pinned and policy.pre_rollback_max_age is not None:  # only a pre-rollback backup's pin expires
            limit = format_duration(policy.pre_rollback_max_age)
            rule, rules, reason = RETIRED, (), (
                f"{RETIRED}: an automatic pre-rollback backup older than {limit}, not the newest usable one of its "
                "database, and no unfinished rollback needs it; no other rule keeps it")
        elif info.status in UNUSABLE:
            rule, rules, reason = "unusable", (), (
                f"{info.status} backups count toward no keep rule (Validator.partial_recovery salvages what is "
                "left; pin or tag a backup to keep it)")
        else:
            rule, rules, reason = "none", (), "no rule keeps it"
        decisions.append(RetentionDecision(info.id, info.database, info.created_at, info.status, bool(found), rule,
                                           rules, reason, info.pinned))
    return decisions


def _pins(
    ordered: Sequence[BackupInfo], usable: Sequence[BackupInfo], policy: RetentionPolicy, now: datetime,
    needed: Mapping[str, str],
) -> Iterator[tuple[str, str]]:
    """(backup id, reason) for every pinned backup whose pin holds: a person's for ever, an automatic
    pre-rollback backup's until ``pre_rollback_max_age`` unless it is the way back (see RetentionPolicy)."""
    newest = next((info.id for info in usable if is_pre_rollback(info)), None)
    limit = policy.pre_rollback_max_age
    for info in ordered:
        if not info.pinned:
            continue
        if not is_pre_rollback(info):
            yield info.id, "pinned by a person: never retired automatically (unpin it to let the rules decide)"
        elif info.id in needed:
            yield info.id, f"pinned pre-rollback backup, the way back while {needed[info.id]}"
        elif limit is None:
            yield info.id, f"pinned pre-rollback backup ({RETIRED} is off)"
        elif info.id == newest:
            yield info.id, "pinned pre-rollback backup, the newest usable one of its database"
        elif _time(info) >= now - limit:
            yield info.id, f"pinned pre-rollback backup, younger than {format_duration(limit)} ({RETIRED})"


def _kept(
    ordered: Sequence[BackupInfo], usable: Sequence[BackupInfo], policy: RetentionPolicy, now: datetime,
    needed: Mapping[str, str],
) -> Iterator[tuple[str, str, str]]:
    """(rule, backup id, reason) for every backup each rule keeps; ``ordered`` and ``usable`` newest first."""
    for backup_id, reason in _pins(ordered, usable, policy, now, needed):
        yield "pinned", backup_id, reason
    for info in ordered:
        matched = sorted(tag for tag in policy.keep_tags if _tag_match(info.tags, tag))
        if matched:
            yield "keep_tags", info.id, f"keep_tags: has tag {', '.join(matched)}"
    if policy.max_backups:
        newest = usable if policy.max_backups == UNLIMITED else usable[: policy.max_backups]
        for rank, info in enumerate(newest, 1):
            yield "max_backups", info.id, f"max_backups: newest {rank} of {_limit(policy.max_backups)}"
    if policy.max_age is not None:
        cutoff = now - policy.max_age
        for info in usable:
            if _time(info) >= cutoff:
                yield "max_age", info.id, f"max_age: younger than {format_duration(policy.max_age)}"
    zone = _tz(policy.timezone)
    for rule, period_of, noun in PERIODS:
        count: int = getattr(policy, rule)
        last: str | None = None
        kept = 0
        for info in usable if count else ():  # newest first: the first backup seen in a period is its newest
            period = period_of(_time(info).astimezone(zone))
            if period != last and (count == UNLIMITED or kept < count):
                kept += 1
                last = period
                yield rule, info.id, f"{rule}: newest in {noun} {period} ({kept} of {_limit(count)})"
    if usable:
        yield "newest", usable[0].id, "newest: the newest usable backup of a database is always kept"


def _limit(count: int) -> str:
    return "unlimited" if count == UNLIMITED else str(count)


# --- applying (I/O) --------------------------------------------------------------------------


@report("dry_run", "policy", "decided_at", "keep_count", "remove_count", ...,
        keep_count=lambda report: len(report.kept), remove_count=lambda report: len(report.to_remove))
@attrs.frozen(repr=False)
class RetentionReport(Shown):
    """What :func:`apply_retention` decided and, unless ``dry_run``, did."""

    dry_run: bool
    policy: RetentionPolicy
    decided_at: str
    decisions: tuple[RetentionDecision, ...]
    #: Backups whose manifests were removed (empty on a dry run).
    removed: tuple[str, ...] = ()
    #: The prune that followed the removal; None on a dry run or when it could not run.
    prune: PruneResult | None = None
    #: Why the prune did not run (creates were running, another prune held the lock), else "".
    prune_skipped: str = ""

    @property
    def kept(self) -> tuple[RetentionDecision, ...]:
        return tuple(decision for decision in self.decisions if decision.keep)

    @property
    def to_remove(self) -> tuple[RetentionDecision, ...]:
        return tuple(decision for decision in self.decisions if not decision.keep)

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, dry_run=self.dry_run, decisions=len(self.decisions), keep=len(self.kept),
                          remove=len(self.to_remove), removed=len(self.removed))

    def _card(self) -> Card:
        rules = {key: value for key, value in unstructure(self.policy).items() if value and key != "databases"}
        facts: list[tuple[str, object]] = [
            ("policy", ", ".join(f"{key} {value}" for key, value in rules.items()) or "keeps everything"),
            ("decided", self.decided_at)]
        if self.prune is not None:
            facts.append(("prune", headline(self.prune)))
        if self.prune_skipped:
            facts.append(("prune skipped", self.prune_skipped))
        removal = f"would remove {len(self.to_remove)}" if self.dry_run else f"removed {len(self.removed)}"
        return Card(f"Retention{' (dry run)' if self.dry_run else ''}: keep {len(self.kept)}, {removal}", tuple(facts),
                    tables=(Rows("decisions", ("backup", "database", "created", "action", "rule", "reason"),
                                 [(decision.backup_id, decision.database, decision.created_at, decision.action,
                                   decision.rule, decision.reason) for decision in self.decisions]),),
                    kind="retention")
