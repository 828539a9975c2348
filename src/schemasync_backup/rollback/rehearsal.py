"""Rehearse a plan in a scratch database before it may touch the live one.

The scratch database holds the live definitions (no data) of the objects the plan touches, and
of what they need to exist: the tables their foreign keys and triggers name, the tables, views
and functions a view reads. The steps run there exactly as ``execute`` sends them; the result
is captured and compared, text for text, with the backup's definitions. So a plan costs what its
change costs, and a step the server refuses fails here, with the live database untouched.

Events are not rehearsed: an enabled event in the scratch database would run on its schedule.
The scratch database has a recognisable name and is held by a server lock while in use; the
next rehearsal on the server drops any whose lock is free (left by a crash).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping, Sequence

import attrs

from schemasync_backup.capture.connection import Connection, describe, query, translate_errors
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.ddl.render import Program, apply_definer_policy
from schemasync_backup.errors import PrivilegeError, QueryError
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.rollback.plan import Rehearsal, RehearsalStatus, RollbackStep, StepPhase
from schemasync_backup.sql.create_table import without_auto_increment
from schemasync_backup.sql.quoting import quote_identifier, quote_string

#: Every scratch database's name starts so (a LIKE pattern needs its underscores escaped).
SCRATCH_PREFIX = "_schemasync_rehearsal_"
#: Every scratch database, as a LIKE pattern (and so as the database of a GRANT).
SCRATCH_PATTERN = SCRATCH_PREFIX.replace("_", "\\_") + "%"
#: Events would run on their schedule; data steps have no rows to load into a schema without data.
_NOT_REHEARSED = (StepPhase.CREATE_DATABASE, StepPhase.DROP_EVENT, StepPhase.CREATE_EVENT, StepPhase.RELOAD_TABLE,
                  StepPhase.RESTORE_ROWS, StepPhase.REFILL_COLUMNS)
_SESSION = ("sql_mode", "foreign_key_checks", "time_zone", "system_versioning_alter_history")


def rehearse(connection: Connection, live: Snapshot, goal: Snapshot, steps: Sequence[RollbackStep],
             definer_policy: Mapping[str, str] | None = None) -> Rehearsal:
    """Run ``steps`` on the live definitions of what they touch, in a scratch database; compare with ``goal``.

    Objects of a kind whose definer the plan rewrites or strips are compared without their definers.
    """
    started = time.monotonic()
    touched = _touched(steps)
    if not touched:
        return Rehearsal(RehearsalStatus.PASSED, reason="no step to rehearse", seconds=time.monotonic() - started)
    saved = _save_session(connection, live.server.flavor)
    try:
        drop_abandoned(connection)
        scratch = SCRATCH_PREFIX + secrets.token_hex(8)
        if query(connection, "SELECT GET_LOCK(%s, 0) AS got", (scratch,))[0]["got"] != 1:
            return _skipped(f"could not take the server lock for scratch database {scratch}", started)
        try:
            unbound = {kind for kind, policy in (definer_policy or {}).items() if policy != "keep"}
            return _in_scratch(connection, scratch, live, goal, steps, touched, unbound, started)
        finally:
            if connection.open:
                _drop(connection, scratch)
    finally:
        _restore_session(connection, saved)


def drop_abandoned(connection: Connection) -> list[str]:
    """Drop the scratch databases that no running rehearsal holds (left by a crash); their names."""
    names = [str(row["name"]) for row in query(
        connection, "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
        (SCRATCH_PATTERN,))]
    dropped = []
    for name in names:
        if query(connection, "SELECT IS_FREE_LOCK(%s) AS free", (name,))[0]["free"] == 1:
            _drop(connection, name, release=False)
            dropped.append(name)
    return dropped


def _in_scratch(connection: Connection, scratch: str, live: Snapshot, goal: Snapshot,
                steps: Sequence[RollbackStep], touched: set[tuple[str, str]], unbound: set[str],
                started: float) -> Rehearsal:
    built = _needed(live, goal, touched)
    try:
        restore_snapshot(built, connection, scratch)
    except PrivilegeError as exc:
        return _skipped(f"the user may not build a scratch database ({exc.message}); to rehearse plans, "
                        f"GRANT ALL ON `{SCRATCH_PATTERN}`.* TO the user", started)
    except QueryError:
        # What the cut missed (a function a trigger calls, ...) is built too: the whole schema.
        _drop(connection, scratch, release=False)
        built = attrs.evolve(live, events=())
        try:
            restore_snapshot(built, connection, scratch)
        except QueryError as again:
            return _skipped(f"the live definitions could not be built in a scratch database: {again.message}",
                            started)
    count = len(built.objects())
    where = describe(connection)
    with connection.cursor() as cursor:
        for number, step in enumerate(steps, start=1):
            if step.phase in _NOT_REHEARSED:
                continue
            try:
                with translate_errors(where, database=scratch):
                    connection.select_db(scratch)
                    for statement in step.statements:
                        cursor.execute(_in_database(step, statement, live.database, scratch))
            except (QueryError, PrivilegeError) as exc:
                return Rehearsal(RehearsalStatus.FAILED, failed_step=number, error=exc.message,
                                 reason=_left_out(steps), objects_built=count, seconds=time.monotonic() - started)
        cursor.execute("SET NAMES utf8mb4")
    result = Snapshot.capture(connection, scratch)
    differences = _differences(result, goal, touched, unbound)
    if result.collation != goal.collation and any(s.phase == StepPhase.ALTER_DATABASE for s in steps):
        differences.append(f"database collation: got {result.collation}, wanted {goal.collation}")
    return Rehearsal(RehearsalStatus.FAILED if differences else RehearsalStatus.PASSED,
                     differences=tuple(differences), reason=_left_out(steps), objects_built=count,
                     seconds=time.monotonic() - started)


def _touched(steps: Iterable[RollbackStep]) -> set[tuple[str, str]]:
    """(kind, name) of every object a rehearsed step changes; sequences are tables to the server."""
    kinds = {"sequence": "table"}
    return {(kinds.get(step.object_kind, step.object_kind), step.object_name) for step in steps
            if step.phase not in _NOT_REHEARSED and step.object_kind != "database"}


def _needed(live: Snapshot, goal: Snapshot, touched: set[tuple[str, str]]) -> Snapshot:
    """``live`` cut down to the touched objects and what they need to be created and changed."""
    tables = {name for kind, name in touched if kind == "table"}
    views = {name for kind, name in touched if kind == "view"}
    routines = {name for kind, name in touched if kind == "routine"}
    triggers = {name for kind, name in touched if kind == "trigger"}
    for snapshot in (live, goal):
        tables |= {t.table for t in snapshot.triggers if t.name in triggers}
        # Views read tables, views and functions; a name quoted in the text is enough to build it.
        pending = [v for v in snapshot.views if v.name in views]
        while pending:
            view = pending.pop()
            for other in live.views:
                if other.name not in views and quote_identifier(other.name) in view.definition:
                    views.add(other.name)
                    pending.append(other)
            tables |= {t.name for t in live.tables if quote_identifier(t.name) in view.definition}
            routines |= {r.name for r in live.routines if quote_identifier(r.name) in view.definition}
    # Foreign keys: the parents a re-added key names, and the children that name a changed table.
    for snapshot in (live, goal):
        tables |= {fk.referenced_table for t in snapshot.tables if t.name in tables
                   for fk in t.foreign_keys if fk.referenced_schema is None}
    tables |= {t.name for t in live.tables if any(fk.referenced_table in tables and fk.referenced_schema is None
                                                  for fk in t.foreign_keys)}
    return attrs.evolve(
        live,
        tables=tuple(t for t in live.tables if t.name in tables),
        views=tuple(v for v in live.views if v.name in views),
        routines=tuple(r for r in live.routines if r.name in routines),
        triggers=tuple(t for t in live.triggers if t.name in triggers),
        events=(),
    )


def _in_database(step: RollbackStep, statement: str, database: str, scratch: str) -> str:
    # The only statement that names the live database: everything else runs in the selected one.
    if step.phase == StepPhase.ALTER_DATABASE:
        return statement.replace(f"ALTER DATABASE {quote_identifier(database)} ",
                                 f"ALTER DATABASE {quote_identifier(scratch)} ", 1)
    return statement


def _texts(snapshot: Snapshot, unbound: set[str]) -> dict[tuple[str, str], str]:
    """Each object's text as compared: tables without their counter; programs of ``unbound`` kinds without definer."""
    found = {("table", t.name): without_auto_increment(t.create_sql) for t in snapshot.tables}
    programs: tuple[tuple[str, Iterable[Program]], ...] = (
        ("view", snapshot.views), ("routine", snapshot.routines), ("trigger", snapshot.triggers))
    for kind, items in programs:
        found |= {(kind, item.name): apply_definer_policy(item.create_sql, "strip") if kind in unbound
                  else item.create_sql for item in items}
    return found


def _differences(result: Snapshot, goal: Snapshot, touched: set[tuple[str, str]], unbound: set[str]) -> list[str]:
    got, wanted = _texts(result, unbound), _texts(goal, unbound)
    return [f"{kind} {quote_identifier(name)}: got {got.get((kind, name))!r}, wanted {wanted.get((kind, name))!r}"
            for kind, name in sorted(touched) if got.get((kind, name)) != wanted.get((kind, name))]


def _left_out(steps: Sequence[RollbackStep]) -> str:
    events = sum(step.phase in (StepPhase.DROP_EVENT, StepPhase.CREATE_EVENT) for step in steps)
    return f"{events} event step(s) not rehearsed (an event would run on its schedule)" if events else ""


def _skipped(reason: str, started: float) -> Rehearsal:
    return Rehearsal(RehearsalStatus.SKIPPED, reason=reason, seconds=time.monotonic() - started)


def _drop(connection: Connection, scratch: str, *, release: bool = True) -> None:
    # Only if it exists: a user who may not create it may not name it in DROP DATABASE IF EXISTS either.
    exists = query(connection, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (scratch,))
    with connection.cursor() as cursor:
        if exists:
            cursor.execute(f"DROP DATABASE {quote_identifier(scratch)}")
        if release:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (scratch,))


def _save_session(connection: Connection, flavor: str) -> dict[str, object]:
    # Steps set these (MySQL has no system versioning); the caller's connection gets them back.
    names = _SESSION if flavor == "mariadb" else _SESSION[:-1]
    row = query(connection, "SELECT DATABASE() AS db, " + ", ".join(f"@@SESSION.{v} AS {v}" for v in names))[0]
    return dict(row)


def _restore_session(connection: Connection, saved: dict[str, object]) -> None:
    if not connection.open:
        return
    with connection.cursor() as cursor:
        for variable in _SESSION:
            if variable not in saved:
                continue
            value = saved[variable]
            cursor.execute(f"SET SESSION {variable} = " + (str(value) if isinstance(value, int)
                                                             else quote_string(str(value))))
        cursor.execute("SET NAMES utf8mb4")
    if saved["db"]:
        connection.select_db(str(saved["db"]))
