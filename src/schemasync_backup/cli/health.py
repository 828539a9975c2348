"""Health checks: database, storage, keys, the last backup; one report a cron job can act on.

Each check returns a :class:`Check` (ok, warning or error) instead of raising, so one failing
part never hides the state of the others. ``HealthReport.healthy`` is false when any check is
an error; warnings (no backups yet, a key due for rotation) do not make it unhealthy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from schemasync_backup.capture import connection
from schemasync_backup.capture.privileges import Shortfall, backup_shortfalls, current_user
from schemasync_backup.capture.reader import server_info
from schemasync_backup.cli.config import Config, encryption_keys, open_store
from schemasync_backup.converter import report, unstructure
from schemasync_backup.errors import SchemaSyncBackupError
from schemasync_backup.formats.manifest import Status
from schemasync_backup.rollback.preflight import rollback_shortfalls
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.store import locks, maintenance
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.validator import Validator

OK, WARNING, ERROR = "ok", "warning", "error"
#: A pending marker not refreshed for this long belongs to a create that crashed: maintenance's one threshold.
STALE_CREATE = locks.STALE_AFTER


@attrs.frozen
class Check:
    name: str
    status: str
    message: str
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


@report("status", "healthy", "checked_at", "checks")
@attrs.frozen
class HealthReport:
    checks: tuple[Check, ...]
    checked_at: str

    @property
    def healthy(self) -> bool:
        return all(check.status != ERROR for check in self.checks)

    @property
    def status(self) -> str:
        statuses = {check.status for check in self.checks}
        return ERROR if ERROR in statuses else WARNING if WARNING in statuses else OK

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


def _now() -> datetime:
    return datetime.now(UTC)


def _age(created_at: str, now: datetime) -> timedelta | None:
    try:
        created = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    return now - (created if created.tzinfo else created.replace(tzinfo=UTC))


def _guard(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except SchemaSyncBackupError as exc:
        return Check(name, ERROR, exc.message)


# --- single checks ------------------------------------------------------------------------------------


def check_database(dsn: str) -> Check:
    """Connect, and report the server's version and the user we are."""

    def run() -> Check:
        with connection.open_source(dsn) as link:
            row = connection.query(link, "SELECT VERSION() AS version, CURRENT_USER() AS user, DATABASE() AS db")[0]
        where = connection.ConnectionSpec.parse(dsn).redacted()
        details = {"server": where, "version": str(row["version"]), "user": str(row["user"]),
                   "database": row["db"]}
        database = f", database {row['db']}" if row["db"] else ""
        return Check("database", OK, f"connected to {where} as {row['user']} (server {row['version']}{database})",
                     details)

    return _guard("database", run)


def check_privileges(config: Config, database: str | None, *, require_rollback: bool = False) -> list[Check]:
    """Whether the configured user may back ``database`` up as the config says, and roll it back.

    The rules are the library's (:func:`~schemasync_backup.capture.privileges.backup_shortfalls`,
    which capture refuses by, and :func:`~schemasync_backup.rollback.preflight.rollback_shortfalls`),
    applied to the configured ``backup.data`` and ``backup.max_workers``. Each missing privilege
    comes with the GRANT to run. What a rollback lacks is a warning, an error with
    ``require_rollback``: a backup account is often kept read-only on purpose.
    """
    if not database:
        return [Check("backup privileges", WARNING, "no database configured, so the privileges a backup needs were "
                      "not checked: set database.database or pass --database")]

    def run() -> list[Check]:
        data = config.backup.data != "none"
        workers = config.backup.workers
        with connection.open_source(config.database.to_dsn(database)) as link:
            flavor = server_info(link).flavor
            account = current_user(link)
            backup = backup_shortfalls(link, flavor, database, data=data, workers=workers)
            rollback = rollback_shortfalls(link, flavor, database)
        what = f"{quote_identifier(database)} ({'schema and data' if data else 'schema only'}, on {workers} " \
               f"connection{'s' if workers > 1 else ''})"
        details: dict[str, Any] = {"account": account, "database": database, "data": data, "workers": workers}
        checks = [Check("backup privileges", ERROR, f"user {account} cannot back up {what}: {_lacks(backup)}",
                        {**details, **_missing(backup)}) if backup
                  else Check("backup privileges", OK, f"user {account} may back up {what}", details)]
        if not rollback:
            checks.append(Check("rollback privileges", OK, f"user {account} may roll back "
                                f"{quote_identifier(database)} and rehearse plans", details))
            return checks
        able = "cannot back up" if backup else "can back up"
        steps_lacking = any(shortfall.subject == database for shortfall in rollback)
        verdict = "cannot roll back" if steps_lacking else "can roll back, but plans are not rehearsed"
        checks.append(Check("rollback privileges", ERROR if require_rollback else WARNING,
                            f"user {account} {able}; {verdict}: {_lacks(rollback)}", {**details, **_missing(rollback)}))
        return checks

    try:
        return run()
    except SchemaSyncBackupError as exc:
        return [Check("backup privileges", ERROR, f"could not check the privileges: {exc.message}")]


def _lacks(shortfalls: Sequence[Shortfall]) -> str:
    # Each GRANT ends in its own semicolon, which separates it from the next.
    return " ".join(f"{shortfall.lack} — {shortfall.grant}" for shortfall in shortfalls)


def _missing(shortfalls: Sequence[Shortfall]) -> dict[str, Any]:
    return {"missing": [{"privileges": list(shortfall.privileges), "on": shortfall.target, "why": shortfall.consequence,
                         "repeats": list(shortfall.keeps), "grant": shortfall.grant} for shortfall in shortfalls],
            "grants": [shortfall.grant for shortfall in shortfalls]}


def check_storage(store: BackupStore) -> Check:
    """The storage part of :func:`schemasync_backup.maintenance.health` (``store.health()``) as one check.

    One verdict and one probe (written, read back and deleted under tmp/) for ``health-check``,
    ``test-connection`` and ``storage-health``. Its warnings (abandoned locks, incomplete or
    corrupted backups) are in the details; ``check_pending`` and ``check_last_backup`` report them.
    """

    def run() -> Check:
        report = maintenance.health(store)
        details = {"url": store.url, "backups": report.backup_count, "warnings": list(report.warnings),
                   "probe": report.probe.to_dict() if report.probe else None}
        if not report.healthy:
            return Check("storage", ERROR, f"storage {store.url}: {report.errors[0]}", details)
        return Check("storage", OK, f"storage {store.url} is reachable: listed {report.backup_count} backups, "
                     "wrote, read and deleted a probe", details)

    return _guard("storage", run)


def check_keys(config: Config, store: BackupStore | None, now: datetime | None = None) -> list[Check]:
    """The configured keys load, open the newest encrypted backup, and are not overdue for rotation."""
    encryption = config.backup.encryption
    try:
        keys = encryption_keys(encryption)
    except SchemaSyncBackupError as exc:
        return [Check("encryption key", ERROR, exc.message)]
    if not keys:
        return [Check("encryption key", OK, "encryption is off; no key configured")]
    checks = [Check("encryption key", OK, f"{len(keys)} key(s) loaded; new backups are written with {keys[0].key_id}"
                    if encryption.enabled else f"{len(keys)} older key(s) loaded for reading",
                    {"writer": keys[0].key_id if encryption.enabled else None, "keys": [k.key_id for k in keys]})]
    if store is None:
        return checks
    keyed = store.with_keys(keys)
    try:
        backups = [info for info in keyed.list() if info.status != Status.CREATING]
    except SchemaSyncBackupError as exc:
        return [*checks, Check("encryption key", ERROR, exc.message)]
    newest = next((info for info in backups if info.encryption), None)
    if newest is not None:
        result = Validator(keyed).test_encryption(newest.id)
        if not result.opens:
            checks.append(Check("encryption key", ERROR, f"the newest encrypted backup {newest.id} does not open: "
                                f"{result.message}", {"backup_id": newest.id, "key_id": result.key_id}))
    if encryption.enabled and encryption.rotation_enabled:
        now = now or _now()
        writer = keys[0].key_id
        ages = [age for info in backups if info.key_id == writer and (age := _age(info.created_at, now)) is not None]
        if ages and max(ages) > timedelta(days=encryption.rotation_days):
            checks.append(Check("key rotation", WARNING, f"key {writer} has written backups for {max(ages).days} days, "
                                f"more than rotation_days ({encryption.rotation_days}); rotate it",
                                {"key_id": writer, "days": max(ages).days}))
        else:
            checks.append(Check("key rotation", OK,
                                f"key {writer} is within rotation_days ({encryption.rotation_days})"))
    return checks


def check_last_backup(store: BackupStore, database: str | None, max_age: timedelta,
                      now: datetime | None = None) -> Check:
    """The newest backup of ``database`` exists, is not damaged, and is younger than ``max_age``."""

    def run() -> Check:
        moment = now or _now()
        backups = [info for info in store.list(database=database) if info.status != Status.CREATING]
        label = f"of {database} " if database else ""
        if not backups:
            return Check("last backup", WARNING, f"no backups {label}yet")
        newest = backups[0]
        age = _age(newest.created_at, moment)
        details = {"backup_id": newest.id, "status": newest.status, "created_at": newest.created_at,
                   "age_seconds": int(age.total_seconds()) if age else None}
        if newest.status in (Status.CORRUPTED, Status.FAILED):
            return Check("last backup", ERROR, f"the newest backup {label}{newest.id} is {newest.status}", details)
        if age is not None and age > max_age:
            return Check("last backup", ERROR, f"the newest backup {label}{newest.id} is {_days(age)} old, older "
                         f"than {_days(max_age)}", details)
        return Check("last backup", OK, f"the newest backup {label}{newest.id} is {_days(age)} old "
                     f"({newest.status})", details)

    return _guard("last backup", run)


def _days(age: timedelta | None) -> str:
    if age is None:
        return "of unknown age"
    hours = age.total_seconds() / 3600
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


@attrs.frozen
class PendingCreate:
    backup_id: str
    database: str
    started_at: str
    age_seconds: float
    stale: bool


def pending_creates(store: BackupStore, now: datetime | None = None,
                    stale_after: timedelta = STALE_CREATE) -> list[PendingCreate]:
    """Creates running now (or crashed): their pending markers, with the database each one captures.

    Live or stale by the one rule of :func:`schemasync_backup.maintenance.pending_creates`
    (process gone on this host, or no heartbeat for ``stale_after``).
    """
    moment = now or _now()
    return [PendingCreate(holder.name, holder.database, holder.started_at,
                          (holder.age(moment) or timedelta(0)).total_seconds(), holder.stale)
            for holder in locks.pending_creates(store, now=moment, stale_after=stale_after)]


def check_pending(store: BackupStore, now: datetime | None = None) -> Check:
    def run() -> Check:
        pending = pending_creates(store, now)
        stale = [item for item in pending if item.stale]
        if stale:
            names = ", ".join(f"{item.backup_id} ({item.database})" for item in stale)
            return Check("incomplete backups", WARNING, f"{len(stale)} backup(s) never finished (process gone, or "
                         "no heartbeat for an hour): "
                         f"{names}; `backup recovery-scan` lists them", {"backup_ids": [i.backup_id for i in stale]})
        running = f"; {len(pending)} running now" if pending else ""
        return Check("incomplete backups", OK, f"no abandoned backups{running}")

    return _guard("incomplete backups", run)


def check_config(config: Config) -> Check:
    details = {"source": config.source, "provider": config.backup.storage.provider}
    storage = config.backup.storage
    if storage.provider == "local" and storage.local.permissions & 0o007:
        return Check("config", WARNING, f"{config.source} is valid, but backup.storage.local.permissions "
                     f"0{storage.local.permissions:o} lets every user read the backups", details)
    return Check("config", OK, f"{config.source} is valid", details)


# --- everything at once -------------------------------------------------------------------------------


def health_check(config: Config, *, database: str | None = None, max_age: timedelta = timedelta(hours=26),
                 now: datetime | None = None, store_factory: Callable[..., BackupStore] = open_store,
                 require_rollback: bool = False) -> HealthReport:
    """Config, database, privileges, storage, keys, incomplete creates and the last backup, in one report.

    Privileges are checked only once the database answers: an unreachable one is its own error.
    """
    moment = now or _now()
    name = config.database.database_name(database)
    reached = check_database(config.database.to_dsn(name))
    checks: list[Check] = [check_config(config), reached]
    if reached.status == OK:
        checks.extend(check_privileges(config, name, require_rollback=require_rollback))
    store: BackupStore | None
    try:
        store = store_factory(config, keys=False)
    except SchemaSyncBackupError as exc:
        store = None
        checks.append(Check("storage", ERROR, exc.message))
    if store is not None:
        checks.append(check_storage(store))
    checks.extend(check_keys(config, store, moment))
    if store is not None:
        checks.append(check_pending(store, moment))
        checks.append(check_last_backup(store, name, max_age, moment))
    return HealthReport(tuple(checks), moment.isoformat(timespec="seconds"))


def summarize(checks: Sequence[Check]) -> str:
    return "; ".join(f"{check.name}: {check.message}" for check in checks if check.status != OK)
