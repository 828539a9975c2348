"""Preflight: find what would make a rollback fail halfway, before any statement runs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from schemasync_backup.capture.connection import Connection, query
from schemasync_backup.capture.privileges import (
    ALL_PRIVILEGES,
    Grants,
    Shortfall,
    current_user,
    database_shortfall,
    session_grants,
)
from schemasync_backup.errors import DatabaseError
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.rollback.plan import RollbackStep, StepPhase
from schemasync_backup.rollback.rehearsal import SCRATCH_PATTERN, SCRATCH_PREFIX
from schemasync_backup.sql.quoting import definer_of, quote_identifier

_SECURITY_DEFINER = re.compile(r"\bSQL SECURITY DEFINER\b")
_NEEDS: dict[StepPhase, set[str]] = {
    StepPhase.DROP_TABLE: {"DROP"},
    StepPhase.CREATE_TABLE: {"CREATE"},
    StepPhase.ALTER_TABLE: {"ALTER", "INDEX"},
    StepPhase.ALTER_TABLE_OPTIONS: {"ALTER"},
    StepPhase.ALTER_TABLE_PARTITIONING: {"ALTER"},
    StepPhase.ALTER_SEQUENCE: {"ALTER", "CREATE", "DROP"},
    StepPhase.RELOAD_TABLE: {"INSERT"},
    StepPhase.RESTORE_ROWS: {"INSERT", "CREATE TEMPORARY TABLES"},
    StepPhase.REFILL_COLUMNS: {"UPDATE", "CREATE TEMPORARY TABLES"},
    StepPhase.DROP_FOREIGN_KEY: {"ALTER"},
    StepPhase.ADD_FOREIGN_KEY: {"ALTER", "REFERENCES"},
    StepPhase.DROP_VIEW: {"DROP"},
    StepPhase.CREATE_VIEW: {"CREATE VIEW"},
    StepPhase.DROP_ROUTINE: {"ALTER ROUTINE"},
    StepPhase.CREATE_ROUTINE: {"CREATE ROUTINE"},
    StepPhase.DROP_TRIGGER: {"TRIGGER"},
    StepPhase.CREATE_TRIGGER: {"TRIGGER"},
    StepPhase.DROP_EVENT: {"EVENT"},
    StepPhase.CREATE_EVENT: {"EVENT"},
    StepPhase.ALTER_DATABASE: {"ALTER"},
    StepPhase.CREATE_DATABASE: {"CREATE"},
}
#: Every privilege on the database that some rollback step needs.
STEP_PRIVILEGES = tuple(sorted(set().union(*_NEEDS.values())))


def check(
    connection: Connection, live_flavor: str, live_version: str, target: Snapshot, steps: Iterable[RollbackStep],
    database: str,
) -> tuple[list[str], list[str]]:
    """(problems that must stop the rollback, warnings) for running ``steps`` on this server."""
    steps = list(steps)
    problems: list[str] = []
    warnings: list[str] = []
    problems += _missing_privileges(connection, live_flavor, database, steps)
    missing, unverifiable = _missing_definers(connection, steps)
    problems += missing
    warnings += unverifiable
    warnings += [
        f"{step.object_kind} {quote_identifier(step.object_name)}: definer rewritten or stripped; SQL SECURITY "
        "DEFINER now runs with the privileges of the account that creates it"
        for step in steps
        if step.phase.startswith("create ") and definer_of(step.sql) in (None, "CURRENT_USER")
        and _SECURITY_DEFINER.search(step.sql) and step.object_kind in ("view", "routine")
    ]
    problems += _missing_collations(connection, target)
    problems += [f"step {number} ({step.phase} {quote_identifier(step.object_name)}) would fail on the live data: "
                 f"{risk}; fix those rows first, then plan again"
                 for number, step in enumerate(steps, start=1) for risk in step.risks if risk.blocking]
    if target.server.flavor != live_flavor:
        warnings.append(f"the backup comes from {target.server.flavor} {target.server.version} and the target is "
                        f"{live_flavor} {live_version}: some definitions may not carry over")
    elif _version(live_version) < _version(target.server.version):
        warnings.append(f"the target runs {live_version}, older than the backup's server "
                        f"{target.server.version}: newer features may be refused")
    return problems, warnings


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _missing_privileges(connection: Connection, flavor: str, database: str, steps: list[RollbackStep]) -> list[str]:
    needed: set[str] = set()
    for step in steps:
        needed |= _NEEDS.get(step.phase, set())
    shortfall = database_shortfall(session_grants(connection, flavor), database, sorted(needed),
                                   current_user(connection), "which the plan's steps need")
    return [shortfall.message] if shortfall else []


def rollback_shortfalls(connection: Connection, flavor: str, database: str) -> list[Shortfall]:
    """What the session lacks to run any plan's steps on ``database``, and to rehearse plans first.

    A rollback also takes a backup first: that needs what
    :func:`~schemasync_backup.capture.privileges.backup_shortfalls` checks.
    """
    grants = session_grants(connection, flavor)
    account = current_user(connection)
    steps = database_shortfall(grants, database, STEP_PRIVILEGES, account, "which rollback steps need")
    return [shortfall for shortfall in (steps, _scratch_shortfall(grants, account)) if shortfall is not None]


def _scratch_shortfall(grants: Grants, account: str) -> Shortfall | None:
    # A rehearsal creates a scratch database, builds live definitions there, runs any step and
    # captures the result: all of a database's privileges, on databases that are the tool's own.
    if grants.privileges_on(SCRATCH_PREFIX + "0" * 16) >= ALL_PRIVILEGES:
        return None
    return Shortfall(("ALL PRIVILEGES",), quote_identifier(SCRATCH_PATTERN), f"{quote_identifier(SCRATCH_PATTERN)}.*",
                     account, "so plans cannot be rehearsed in a scratch database before they run", SCRATCH_PATTERN)


def _missing_definers(connection: Connection, steps: list[RollbackStep]) -> tuple[list[str], list[str]]:
    wanted = {(definer, step.object_kind, step.object_name) for step in steps if step.phase.startswith("create ")
              for definer in [definer_of(step.sql)] if definer and definer != "CURRENT_USER"}
    if not wanted:
        return [], []
    try:
        rows = query(connection, "SELECT CONCAT('`', REPLACE(User, '`', '``'), '`@`', REPLACE(Host, '`', '``'), '`') "
                                 "AS account FROM mysql.user")
    except DatabaseError:
        return [], ["cannot read mysql.user to check that definers exist: grant SELECT ON mysql.user to check"]
    accounts = {str(row["account"]) for row in rows}
    # A MariaDB role is a mysql.user row with an empty host; SHOW CREATE names it without one.
    accounts |= {account.removesuffix("@``") for account in accounts if account.endswith("@``")}
    return [
        f"definer {definer} of {kind} {quote_identifier(name)} does not exist on the target: create the account, "
        f"or plan with definer_policy={{'{kind}': 'rewrite'}} (or 'strip')"
        for definer, kind, name in sorted(wanted) if definer not in accounts
    ], []


def _missing_collations(connection: Connection, target: Snapshot) -> list[str]:
    used = {target.collation}
    for table in target.tables:
        used |= {table.collation} if table.collation else set()
        used |= {column.collation for column in table.columns if column.collation}
    known = {str(row["COLLATION_NAME"]) for row in query(connection,
                                                         "SELECT COLLATION_NAME FROM information_schema.COLLATIONS")}
    return [f"collation {name} does not exist on the target server" for name in sorted(used - known)]
