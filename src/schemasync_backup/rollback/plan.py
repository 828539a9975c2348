"""Turn a live snapshot into a backup's: ordered rollback steps, as a pure function.

Order: drop triggers, events, views and routines that go or change; drop foreign keys that go
or change; drop, create and alter tables; add foreign keys; create routines, views (each after
the views it reads), triggers and events. Renames are not guessed.

Every ALTER clause reuses the definition line the server itself printed for the backup's
table, so after the rollback the server prints the same text again.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from schemasync_backup.converter import report, unstructure
from schemasync_backup.ddl.render import (
    CLIENT_CHARSET,
    DEFINER_POLICIES,
    TABLE_SQL_MODE,
    Program,
    apply_definer_policy,
    render,
)
from schemasync_backup.ddl.snapshot_script import split_foreign_keys, view_order
from schemasync_backup.display import Card, Rows, Shown, brief_repr
from schemasync_backup.errors import UnsafeScriptError
from schemasync_backup.formats.data_index import TableData
from schemasync_backup.model import type_change
from schemasync_backup.model.diff import definition, routine_key
from schemasync_backup.model.snapshot import Column, Snapshot, Table, Trigger
from schemasync_backup.sql import client_script, create_table
from schemasync_backup.sql.create_table import TableParts
from schemasync_backup.sql.quoting import quote_identifier, quote_string

__all__ = ["DEFINER_POLICIES", "NOT_REHEARSED", "PlanOptions", "Rehearsal", "RehearsalStatus", "Risk", "RollbackPlan",
           "RollbackStep", "apply_definer_policy", "build_steps",
           "fit_sequence", "limitations"]
_OPTION_KEYS = re.compile(r"(?:^|\s)((?:DEFAULT )?[A-Z_]+|`(?:[^`]|``)+`)=")
#: What the server means by an option's absence, where ``=DEFAULT`` is a syntax error.
_RESET_VALUES = {"KEY_BLOCK_SIZE": "0", "MIN_ROWS": "0", "MAX_ROWS": "0", "AVG_ROW_LENGTH": "0", "CHECKSUM": "0",
                 "DELAY_KEY_WRITE": "0", "INSERT_METHOD": "NO", "CONNECTION": "''", "COMMENT": "''"}
_PERIOD = "PERIOD FOR "
SEQUENCE, SYSTEM_VERSIONED = "SEQUENCE", "SYSTEM VERSIONED"


@attrs.frozen
class Risk:
    """Data a step may destroy, or rows that make it fail (``blocks``), and the query that counts them live."""

    description: str
    count_sql: str
    rows: int | None = None
    #: The step fails on the server when any row counts (a duplicate under a re-added UNIQUE key,
    #: a value no partition holds): a plan with such rows is refused at plan time.
    blocks: bool = False

    @property
    def blocking(self) -> bool:
        return self.blocks and bool(self.rows)

    def __str__(self) -> str:
        if self.rows is None:
            return self.description
        if self.blocks:
            return f"{self.description}: {self.rows} row{'s make' if self.rows != 1 else ' makes'} the step fail"
        return f"{self.description}: {self.rows} row{'s' if self.rows != 1 else ''} at risk"


class StepPhase(enum.StrEnum):
    """What a rollback step does, in the order a plan runs them (``StepPhase.DROP_TABLE == "drop table"``)."""

    CREATE_DATABASE = "create database"
    ALTER_DATABASE = "alter database"
    DROP_TRIGGER = "drop trigger"
    DROP_EVENT = "drop event"
    DROP_VIEW = "drop view"
    DROP_ROUTINE = "drop routine"
    DROP_FOREIGN_KEY = "drop foreign key"
    DROP_TABLE = "drop table"
    CREATE_TABLE = "create table"
    ALTER_TABLE_OPTIONS = "alter table options"
    ALTER_TABLE = "alter table"
    ALTER_TABLE_PARTITIONING = "alter table partitioning"
    ALTER_SEQUENCE = "alter sequence"
    ADD_FOREIGN_KEY = "add foreign key"
    RELOAD_TABLE = "reload table"
    RESTORE_ROWS = "restore rows"
    REFILL_COLUMNS = "refill columns"
    CREATE_ROUTINE = "create routine"
    CREATE_VIEW = "create view"
    CREATE_TRIGGER = "create trigger"
    CREATE_EVENT = "create event"


@report("phase", "object_kind", "object_name", "sql", "session", "statements", "destructive", "warning", "risks",
        "data", "columns")
@attrs.frozen
class RollbackStep:
    phase: StepPhase = attrs.field(converter=StepPhase)
    object_kind: str
    object_name: str
    sql: str
    #: SET statements the step runs under (sql_mode, character set of routines, triggers, ...).
    session: tuple[str, ...] = ()
    risks: tuple[Risk, ...] = ()
    #: Everything execute sends for the step, when that is not just ``session`` then ``sql``: a
    #: routine, view, trigger or event as :func:`render.render` creates it (which may run ``sql``
    #: through EXECUTE IMMEDIATE, and resets the session after it).
    sent: tuple[str, ...] = ()
    #: A data step's table data in the backup (its chunks), and the columns it refills.
    data: TableData | None = None
    columns: tuple[str, ...] = ()

    @property
    def statements(self) -> tuple[str, ...]:
        """The statements execute sends for this step, in order (a data step's ``sql`` shows what it
        runs per chunk, with the chunk's data streamed from the store)."""
        return self.sent or (*self.session, self.sql)

    @property
    def is_data(self) -> bool:
        return self.data is not None

    @property
    def destructive(self) -> bool:
        return any(not risk.blocks for risk in self.risks)

    @property
    def warning(self) -> str | None:
        return "; ".join(str(risk) for risk in self.risks) or None

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]


class RehearsalStatus(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@attrs.frozen
class Rehearsal:
    """How the plan ran in a scratch database built from the live definitions of what it touches."""

    status: RehearsalStatus = attrs.field(converter=RehearsalStatus)
    #: Objects whose rehearsed definition differs from the backup's, with both texts.
    differences: tuple[str, ...] = ()
    #: The number of the step that failed, and the server's error.
    failed_step: int | None = None
    error: str | None = None
    #: Why it was skipped, or what it left out (events: their schedule would run them).
    reason: str = ""
    objects_built: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == RehearsalStatus.PASSED

    @property
    def failed(self) -> bool:
        return self.status == RehearsalStatus.FAILED

    def __str__(self) -> str:
        if self.status == RehearsalStatus.SKIPPED:
            return f"rehearsal skipped: {self.reason}"
        head = (f"rehearsal {self.status} ({self.objects_built} object(s) built in a scratch database, "
                f"{self.seconds:.2f} s)")
        if self.failed_step is not None:
            head += f": step {self.failed_step} failed: {self.error}"
        elif self.differences:
            head += (f": {len(self.differences)} object(s) end up unlike the backup:\n  "
                     + "\n  ".join(self.differences))
        return head + (f"; {self.reason}" if self.reason else "")


NOT_REHEARSED = Rehearsal(RehearsalStatus.SKIPPED, reason="not asked for")


@attrs.frozen
class PlanOptions:
    """What a plan was made with besides the backup and the live schema: a saved plan is made
    again with them when it is executed (see :mod:`.plan_file`)."""

    #: (kind, policy) pairs, sorted: the definer policy asked for.
    definer_policy: tuple[tuple[str, str], ...] = ()
    #: Planned with force: a partial backup drops what it does not hold, a CORRUPTED one is a target.
    force: bool = False
    #: Data steps an unfinished run left were planned again.
    resume: bool = True

    @classmethod
    def of(cls, definer_policy: Mapping[str, str] | None, *, force: bool, resume: bool) -> PlanOptions:
        return cls(tuple(sorted((definer_policy or {}).items())), force, resume)


@report("backup_id", "database", "live_hash", "target_hash", "created_at", "notes", "preflight", "rehearsal",
        "warnings", "destructive_steps", "steps", destructive_steps=lambda plan: len(plan.destructive_steps))
@attrs.frozen(repr=False)
class RollbackPlan(Shown):
    backup_id: str
    database: str
    live_hash: str
    target_hash: str
    steps: tuple[RollbackStep, ...]
    notes: tuple[str, ...] = ()
    preflight: tuple[str, ...] = ()
    created_at: str = ""
    rehearsal: Rehearsal = NOT_REHEARSED
    options: PlanOptions = PlanOptions()

    @property
    def is_empty(self) -> bool:
        return not self.steps

    @property
    def statements(self) -> list[str]:
        return [step.sql for step in self.steps]

    @property
    def destructive_steps(self) -> list[RollbackStep]:
        return [step for step in self.steps if step.destructive]

    @property
    def warnings(self) -> list[str]:
        return [*self.notes, *(f"{s.object_kind} {quote_identifier(s.object_name)}: {s.warning}"
                               for s in self.steps if s.destructive or any(r.blocking for r in s.risks))]

    def to_sql(self) -> str:
        """The plan as a script for the mysql client that runs exactly what ``execute`` runs.

        Raises UnsafeScriptError when a statement or the database name has no form the client
        would send unchanged; ``execute`` can still run such a plan.
        """
        statements = list(self._client_statements())
        commented = any(lexed.comments for _, _, lexed in statements)
        lines = [client_script.comment(line) for line in self._script_header(commented)]
        # The client command, not SET NAMES: the client must read the script as utf8mb4 too, or
        # a multi-byte locale (gbk, sjis) could swallow a backslash and unbalance a quote.
        lines.append(f"charset {CLIENT_CHARSET}")
        if commented:
            lines += client_script.COMMENTS_GUARD
        numbers = {id(step): number for number, step in enumerate(self.steps, start=1)}
        current: RollbackStep | None = None
        selected = False
        for step, statement, lexed in statements:
            if step is not current:
                # execute selects the database for every step but the one that creates it (the first).
                if not selected and step.phase != StepPhase.CREATE_DATABASE:
                    lines.append(_use(self.database))
                    selected = True
                lines.append(client_script.comment(
                    f"step {numbers[id(step)]}: {step.phase} {quote_identifier(step.object_name)}"
                    + (" (DESTRUCTIVE)" if step.destructive else "")))
                current = step
            lines += client_script.statement_lines(statement, lexed)
        return "\n".join(lines) + "\n"

    def _client_statements(self) -> Iterator[tuple[RollbackStep, str, client_script.Lexed]]:
        """Each statement execute sends, in order, with how the client reads it under the session's mode."""
        # The sql_mode is the server's default until a step sets one.
        sent = [(step, statement) for step in self.steps if not step.is_data for statement in step.statements]
        for (step, _), (statement, lexed, _mode) in zip(
                sent, client_script.checked(statement for _, statement in sent), strict=True):
            yield step, statement, lexed

    def _script_header(self, commented: bool) -> list[str]:
        client = "mysql --comments" if commented else "mysql"
        lines = [f"schemasync_backup rollback of {quote_identifier(self.database)} to backup {self.backup_id}",
                 f"live schema hash {self.live_hash}, target {self.target_hash}",
                 f"Run it with: {client} < rollback.sql (it stops at the first error, as execute does). "
                 f"To SOURCE it, start the client as {client} --abort-source-on-error: SOURCE otherwise "
                 "carries on past a failed statement."]
        if commented:
            lines.append("Some statements hold comments, which the client drops unless run with --comments; "
                         "the first statement stops the script when they were dropped.")
        lines += [f"WARNING: step {number} ({step.phase} {quote_identifier(step.object_name)}) loads "
                  f"{step.data.rows:,} rows of the backup's data, which this script cannot carry: only "
                  "`rollback execute` runs it"
                  for number, step in enumerate(self.steps, start=1) if step.data is not None]
        return lines + [f"WARNING: {warning}" for warning in self.warnings]

    def summary(self) -> str:
        if self.is_empty:
            return f"{self.database}: the live schema already matches backup {self.backup_id}"
        kinds: dict[str, int] = {}
        for step in self.steps:
            kinds[step.phase] = kinds.get(step.phase, 0) + 1
        lines = [f"rollback of {self.database} to backup {self.backup_id}: {len(self.steps)} steps, "
                 f"{len(self.destructive_steps)} destructive"]
        lines += [f"  {count} x {phase}" for phase, count in kinds.items()]
        lines += [f"  WARNING {warning}" for warning in self.warnings]
        lines += [f"  PREFLIGHT {problem}" for problem in self.preflight]
        lines.append(f"  REHEARSAL FAILED: {self.rehearsal}" if self.rehearsal.failed else f"  {self.rehearsal}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return brief_repr(self, backup_id=self.backup_id, database=self.database, steps=len(self.steps),
                          destructive=len(self.destructive_steps), rehearsal=str(self.rehearsal.status))

    def _card(self) -> Card:
        if self.is_empty:
            title = f"Rollback of `{self.database}` to backup {self.backup_id}: the live schema already matches"
        else:
            title = (f"Rollback of `{self.database}` to backup {self.backup_id}: {len(self.steps)} steps, "
                     f"{len(self.destructive_steps)} destructive")
        facts: tuple[tuple[str, object], ...] = (
            ("live hash", self.live_hash), ("target hash", self.target_hash), ("rehearsal", self.rehearsal))
        if self.created_at:
            facts = (("planned", self.created_at), *facts)
        steps = Rows("steps", ("#", "phase", "object", "destructive", "sql"),
                     [(number, step.phase, step.object_name, "DESTRUCTIVE" if step.destructive else "", step.sql)
                      for number, step in enumerate(self.steps, start=1)])
        return Card(title, facts, notes=(*(f"WARNING {warning}" for warning in self.warnings),
                                         *(f"PREFLIGHT {problem}" for problem in self.preflight)),
                    tables=(steps,), kind="plan")

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _use(database: str) -> str:
    # USE is a client command too: the client parses the name itself, so only plain names.
    if any(not char.isprintable() or char == "\\" for char in database):
        raise UnsafeScriptError(
            f"the database name {database!r} has a backslash or a control character, which the mysql client's "
            "USE command does not read back reliably; run the rollback with `rollback execute` instead",
            subject=database,
        )
    return f"USE {quote_identifier(database)};"


def build_steps(
    live: Snapshot, target: Snapshot, definer_policy: Mapping[str, str] | None = None
) -> tuple[list[RollbackStep], list[str]]:
    """Steps that turn ``live`` into ``target``, and notes for people (renames not guessed, ...)."""
    # The statements run on the live server: render them for its flavor.
    flavor = live.server.flavor
    policy = {"view": "keep", "routine": "keep", "trigger": "keep", "event": "keep", **(definer_policy or {})}
    old_triggers, new_triggers = _trigger_groups(live.triggers), _trigger_groups(target.triggers)
    # A change to one trigger redoes its whole (table, timing, event) group: that keeps the order.
    redo = sorted(group for group in old_triggers.keys() | new_triggers.keys()
                  if [definition("trigger", t) for t in old_triggers.get(group, [])]
                  != [definition("trigger", t) for t in new_triggers.get(group, [])])
    # Only tables whose text differs can differ in foreign keys: parse just those.
    old_tables = {t.name: t for t in live.tables}
    new_tables = {t.name: t for t in target.tables}
    moved = {name for name in old_tables.keys() | new_tables.keys()
             if name not in old_tables or name not in new_tables
             or definition("table", old_tables[name]) != definition("table", new_tables[name])}
    new_fks = {(name, fk): line for name in moved if name in new_tables for fk, line in _fk_lines(new_tables[name])}
    old_fks = {(name, fk): line for name in moved if name in old_tables for fk, line in _fk_lines(old_tables[name])}

    steps = [RollbackStep(StepPhase.DROP_TRIGGER, "trigger", trigger.name, f"DROP TRIGGER IF EXISTS {_q(trigger.name)}")
             for group in redo for trigger in old_triggers.get(group, [])]
    steps += _changed(live.events, target.events, "event", lambda e: RollbackStep(
        StepPhase.DROP_EVENT, "event", e.name, f"DROP EVENT IF EXISTS {_q(e.name)}"))
    steps += _changed(live.views, target.views, "view", lambda v: RollbackStep(
        StepPhase.DROP_VIEW, "view", v.name, f"DROP VIEW IF EXISTS {_q(v.name)}"))
    steps += _changed(live.routines, target.routines, "routine", lambda r: RollbackStep(
        StepPhase.DROP_ROUTINE, "routine", r.name, f"DROP {r.kind} IF EXISTS {_q(r.name)}"))
    steps += [RollbackStep(StepPhase.DROP_FOREIGN_KEY, "table", table,
                           f"ALTER TABLE {_q(table)} DROP FOREIGN KEY {_q(fk)}")
              for (table, fk), line in sorted(old_fks.items()) if new_fks.get((table, fk)) != line]
    readded: dict[str, list[tuple[str, ...]]] = {}
    for (table, fk), line in new_fks.items():
        if old_fks.get((table, fk)) != line and table in old_tables:
            readded.setdefault(table, []).extend(
                key.columns for key in new_tables[table].foreign_keys if key.name == fk)
    table_steps, notes = _table_steps(live, target, readded)
    steps += table_steps
    steps += [RollbackStep(StepPhase.ADD_FOREIGN_KEY, "table", table, f"ALTER TABLE {_q(table)} ADD {line}")
              for (table, fk), line in sorted(new_fks.items()) if old_fks.get((table, fk)) != line]
    steps += _changed(target.routines, live.routines, "routine",
                      lambda r: _program_step(StepPhase.CREATE_ROUTINE, "routine", r, policy["routine"], flavor))
    # Ordered among themselves only: the views left as they are exist already (and ordering all of
    # them costs a search of every definition for every view name).
    created = _changed(target.views, live.views, "view", lambda view: view)
    steps += [_program_step(StepPhase.CREATE_VIEW, "view", view, policy["view"], flavor)
              for view in view_order(created)]
    steps += [_program_step(StepPhase.CREATE_TRIGGER, "trigger", trigger, policy["trigger"], flavor)
              for group in redo for trigger in new_triggers.get(group, [])]
    steps += _changed(target.events, live.events, "event",
                      lambda e: _program_step(StepPhase.CREATE_EVENT, "event", e, policy["event"], flavor))
    return steps, notes


def limitations(live: Snapshot, target: Snapshot) -> list[str]:
    """Changes no plan can make on the server: they refuse the plan at plan time, before any step runs."""
    old_tables, new_tables = {t.name: t for t in live.tables}, {t.name: t for t in target.tables}
    found = []
    for name in sorted(old_tables.keys() & new_tables.keys()):
        old, new = old_tables[name], new_tables[name]
        if SEQUENCE in (old.kind, new.kind) or definition("table", old) == definition("table", new):
            continue
        try:
            before, after = create_table.parse(old.create_sql), create_table.parse(new.create_sql)
        except create_table.UnrecognisedDefinitionError:
            found.append(f"table {_q(name)}: its definition has a layout the planner does not recognise; "
                         "roll it back by hand (see rollback compare)")
            continue
        if (before.versioned or after.versioned) and old.engine != new.engine:
            found.append(f"table {_q(name)}: the server cannot change the engine of a system-versioned table "
                         f"({old.engine} -> {new.engine}, error 4120); drop its versioning history by hand first "
                         "(ALTER TABLE ... DROP SYSTEM VERSIONING), then plan again")
    return found


def _table_steps(live: Snapshot, target: Snapshot, readded: Mapping[str, list[tuple[str, ...]]]
                 ) -> tuple[list[RollbackStep], list[str]]:
    old_tables, new_tables = {t.name: t for t in live.tables}, {t.name: t for t in target.tables}
    steps: list[RollbackStep] = []
    notes: list[str] = []
    if (live.charset, live.collation) != (target.charset, target.collation):
        steps.append(RollbackStep(StepPhase.ALTER_DATABASE, "database", target.database,
                                  f"ALTER DATABASE {_q(live.database)} CHARACTER SET {target.charset} "
                                  f"COLLATE {target.collation}"))
    # A table that turns into a sequence (or back) is dropped and created again.
    rebuilt = {name for name in old_tables.keys() & new_tables.keys()
               if (old_tables[name].kind == SEQUENCE) != (new_tables[name].kind == SEQUENCE)}
    for name in sorted((old_tables.keys() - new_tables.keys()) | rebuilt):
        steps.append(RollbackStep(StepPhase.DROP_TABLE, "table", name, f"DROP TABLE {_q(name)}",
                                  risks=(Risk("the table and all its rows are dropped",
                                              f"SELECT COUNT(*) FROM {_q(name)}"),)))
    for name in sorted((new_tables.keys() - old_tables.keys()) | rebuilt):
        create, _ = split_foreign_keys(new_tables[name])
        steps.append(RollbackStep(StepPhase.CREATE_TABLE, "table", name, create, session=_table_mode(False)))
    for name in sorted((old_tables.keys() & new_tables.keys()) - rebuilt):
        old, new = old_tables[name], new_tables[name]
        if definition("table", old) == definition("table", new):
            continue
        if SEQUENCE in (old.kind, new.kind):
            steps.append(_sequence_step(old, new))
            continue
        try:
            altered, table_notes = _alter_table(old, new, readded.get(name, []))
        except create_table.UnrecognisedDefinitionError:
            continue  # limitations() refuses the plan
        versioned = SYSTEM_VERSIONED in (old.kind, new.kind)
        steps += [attrs.evolve(step, session=_table_mode(versioned)) for step in altered]
        notes += table_notes
    return steps, notes


def _table_mode(versioned: bool) -> tuple[str, ...]:
    mode = (f"SET SESSION sql_mode = {quote_string(TABLE_SQL_MODE)}",)
    # Without KEEP the server refuses every ALTER of a system-versioned table (error 4119).
    return (*mode, "SET SESSION system_versioning_alter_history = KEEP") if versioned else mode


def _sequence_step(live: Table, target: Table) -> RollbackStep:
    """ALTER SEQUENCE to the backup's options (the current value stays), or re-create it when its
    table options differ."""
    head = f"CREATE SEQUENCE {_q(target.name)} "
    options, _, tail = target.create_sql.removeprefix(head).partition(" ENGINE=")
    _, _, live_tail = live.create_sql.removeprefix(f"CREATE SEQUENCE {_q(live.name)} ").partition(" ENGINE=")
    if tail == live_tail and target.create_sql.startswith(head):
        return RollbackStep(StepPhase.ALTER_SEQUENCE, "sequence", target.name,
                            f"ALTER SEQUENCE {_q(target.name)} {options}")
    return RollbackStep(StepPhase.ALTER_SEQUENCE, "sequence", target.name,
                        target.create_sql.replace("CREATE SEQUENCE ", "CREATE OR REPLACE SEQUENCE ", 1),
                        risks=(Risk("the sequence is re-created and starts again from its START value",
                                    f"SELECT COUNT(*) FROM {_q(target.name)}"),))


def fit_sequence(step: RollbackStep, next_value: int) -> RollbackStep:
    """An ALTER SEQUENCE step that restarts the sequence when its next value lies outside the backup's range
    (the server would accept the ALTER and then refuse every NEXTVAL)."""
    bounds = re.search(r"\bminvalue (-?\d+) maxvalue (-?\d+)", step.sql)
    if not step.sql.startswith("ALTER SEQUENCE ") or bounds is None:
        return step
    low, high = int(bounds.group(1)), int(bounds.group(2))
    if low <= next_value <= high:
        return step
    return attrs.evolve(step, sql=step.sql + " RESTART", risks=(*step.risks, Risk(
        f"its next value {next_value} is outside the backup's range {low}..{high}: the sequence restarts "
        "from its START value", f"SELECT COUNT(*) FROM {_q(step.object_name)}")))


T = TypeVar("T")


def _changed(ours: Iterable[Any], theirs: Iterable[Any], kind: str, make: Callable[[Any], T]) -> list[T]:
    """A step for each of ``ours`` that ``theirs`` lacks or defines differently, in our order."""
    other = {_key(kind, item): item for item in theirs}
    return [make(item) for item in ours
            if _key(kind, item) not in other or definition(kind, item) != definition(kind, other[_key(kind, item)])]


def _key(kind: str, item: Any) -> str:
    return routine_key(item.kind, item.name) if kind == "routine" else str(item.name)


def _q(name: str) -> str:
    return quote_identifier(name)


def _trigger_groups(triggers: Iterable[Trigger]) -> dict[tuple[str, str, str], list[Trigger]]:
    """Triggers by (table, timing, event), in action order: a change in one redoes its group."""
    groups: dict[tuple[str, str, str], list[Trigger]] = {}
    for trigger in sorted(triggers, key=lambda t: t.order):
        groups.setdefault((trigger.table, trigger.timing, trigger.event), []).append(trigger)
    return groups


def _program_step(phase: StepPhase, kind: str, item: Program, policy: str, flavor: str) -> RollbackStep:
    rendered = render(item, flavor=flavor, definer_policy=policy)
    return RollbackStep(phase, kind, item.name, rendered.ddl, session=rendered.session, sent=rendered.statements)


def _fk_lines(table: Table) -> list[tuple[str, str]]:
    try:
        return list(create_table.parse(table.create_sql).foreign_keys)
    except create_table.UnrecognisedDefinitionError:
        return []


def _common_prefix(old: tuple[tuple[str, str], ...], new: tuple[tuple[str, str], ...]) -> int:
    count = 0
    for mine, theirs in zip(old, new, strict=False):
        if mine != theirs:
            break
        count += 1
    return count


def _alter_table(live: Table, target: Table, readded: list[tuple[str, ...]]
                 ) -> tuple[list[RollbackStep], list[str]]:
    old, new = create_table.parse(live.create_sql), create_table.parse(target.create_sql)
    name = target.name
    steps: list[RollbackStep] = []
    notes: list[str] = []
    unknown = sorted({line for line in (*old.other, *new.other) if not line.startswith(_PERIOD)}
                     - (set(old.other) & set(new.other)))
    if unknown:
        notes.append(f"table {_q(name)}: {', '.join(unknown)} differs and is not rolled back")
    if old.options != new.options:
        steps += _option_steps(name, old.options, new.options, engine_changed=live.engine != target.engine)
    clauses, risks = _structure_clauses(live, target, old, new, readded)
    dropped = [n for n, _ in old.columns if n not in dict(new.columns)]
    added = [n for n, _ in new.columns if n not in dict(old.columns)]
    if dropped and added:
        notes.append(f"table {_q(name)}: columns {', '.join(map(_q, dropped))} are dropped and "
                     f"{', '.join(map(_q, added))} added; renames are not guessed, so their data is not carried over")
    repartition = old.partitioning != new.partitioning
    if clauses and repartition and old.partitioning:
        # The live partitioning may need keys or columns the backup's table lacks (every unique
        # key must hold the partitioning columns): remove it before the structure changes.
        steps.append(RollbackStep(StepPhase.ALTER_TABLE_PARTITIONING, "table", name,
                                  f"ALTER TABLE {_q(name)} REMOVE PARTITIONING"))
    if clauses:
        steps.append(RollbackStep(StepPhase.ALTER_TABLE, "table", name,
                                  f"ALTER TABLE {_q(name)}\n  " + ",\n  ".join(clauses), risks=tuple(risks)))
    if repartition and (new.partitioning or not clauses):
        sql = f"ALTER TABLE {_q(name)} " + (new.partitioning or "REMOVE PARTITIONING")
        risk = _partition_risk(name, new.partitioning) if new.partitioning else None
        steps.append(RollbackStep(StepPhase.ALTER_TABLE_PARTITIONING, "table", name, sql,
                                  risks=(risk,) if risk else ()))
    return steps, notes


def _structure_clauses(live: Table, target: Table, old: TableParts, new: TableParts,
                       readded: list[tuple[str, ...]]) -> tuple[list[str], list[Risk]]:
    name = target.name
    clauses: list[str] = []
    risks: list[Risk] = []
    # Keys and checks after the first difference are dropped and re-added in order: the
    # server prints them in creation order, and only this restores its text exactly.
    keep_keys = min(_common_prefix(old.keys, new.keys), _first_fk_index(target, new, readded))
    keep_checks = _common_prefix(old.checks, new.checks)
    clauses += [f"DROP CONSTRAINT {_q(check)}" for check, _ in old.checks[keep_checks:]]
    clauses += ["DROP PRIMARY KEY" if key == "PRIMARY" else f"DROP INDEX {_q(key)}" for key, _ in old.keys[keep_keys:]]
    old_columns, new_columns = dict(old.columns), dict(new.columns)
    # The server cannot MODIFY a column into or out of a generated one (error 1907): drop and add it.
    regenerated = {column for column, line in new.columns if column in old_columns and old_columns[column] != line
                   and _generation(live.column(column), old_columns[column])
                   != _generation(target.column(column), line)}
    for column, _ in old.columns:
        if column not in new_columns or column in regenerated:
            clauses.append(f"DROP COLUMN {_q(column)}")
            what = "dropped" if column not in new_columns else "dropped and added again as " + (
                _generation(target.column(column), new_columns[column]).lower() or "a regular column")
            risks.append(Risk(f"column {_q(column)} is {what} with its values",
                              f"SELECT COUNT(*) FROM {_q(name)} WHERE {_q(column)} IS NOT NULL"))
    old_periods = [line for line in old.other if line.startswith(_PERIOD)]
    new_periods = [line for line in new.other if line.startswith(_PERIOD)]
    clauses += [f"DROP PERIOD FOR {_period_name(line)}" for line in old_periods if line not in new_periods]
    if old.versioned and not new.versioned:
        clauses.append("DROP SYSTEM VERSIONING")
    staying = _longest_common_subsequence([c for c, _ in old.columns if c in new_columns],
                                          [c for c, _ in new.columns if c in old_columns])
    previous: str | None = None
    for column, line in new.columns:
        position = "FIRST" if previous is None else f"AFTER {_q(previous)}"
        if column not in old_columns or column in regenerated:
            clauses.append(f"ADD COLUMN {line} {position}")
        elif (old_columns[column] != line or column not in staying
              or live.column(column).collation != target.column(column).collation):
            # The same line can mean another character set: an unnamed one is the table's default.
            clauses.append(f"MODIFY COLUMN {line} {position}")
            if old_columns[column] != line or live.column(column).collation != target.column(column).collation:
                risks += _column_risks(name, live.column(column), target.column(column))
        previous = column
    clauses += [f"ADD {line}" for line in new_periods if line not in old_periods]
    if new.versioned and not old.versioned:
        clauses.append("ADD SYSTEM VERSIONING")
    clauses += [f"ADD {line}" for _, line in new.keys[keep_keys:]]
    clauses += [f"ADD {line}" for _, line in new.checks[keep_checks:]]
    live_keys = set(old.keys)
    risks += [risk for key in new.keys[keep_keys:] if key not in live_keys
              for risk in [_duplicate_risk(target, key[0], old_columns)] if risk is not None]
    return clauses, risks


def _duplicate_risk(target: Table, key: str, live_columns: Mapping[str, str]) -> Risk | None:
    """Rows a re-added PRIMARY or UNIQUE key would refuse as duplicates (NULLs never clash in a UNIQUE one)."""
    index = next((index for index in target.indexes if index.name == key), None)
    if index is None or index.kind not in ("PRIMARY", "UNIQUE") or any(
            part.column is None or part.column not in live_columns for part in index.parts):
        return None  # an expression, or a column the rollback adds: nothing live to count
    parts = [_q(str(part.column)) if part.prefix_length is None else f"LEFT({_q(str(part.column))}, "
             f"{part.prefix_length})" for part in index.parts]
    where = "" if index.kind == "PRIMARY" else " WHERE " + " AND ".join(f"{p} IS NOT NULL" for p in parts)
    label = "PRIMARY KEY" if index.kind == "PRIMARY" else f"UNIQUE KEY {_q(key)}"
    return Risk(f"{label} is added over rows with duplicate values",
                f"SELECT COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM {_q(target.name)}{where} "
                f"GROUP BY {', '.join(parts)} HAVING COUNT(*) > 1) AS duplicates", blocks=True)


def _partition_risk(table: str, partitioning: str) -> Risk | None:
    """Rows the backup's RANGE or LIST partitions have no place for (the server refuses the ALTER, error 1526)."""
    head = re.match(r"PARTITION BY (RANGE|LIST)(?:\s*COLUMNS)?\s*\((.+?)\)\s*\n", partitioning)
    if head is None or (" COLUMNS" in partitioning.split("\n", 1)[0] and "," in head.group(2)):
        return None
    kind, expression = head.group(1), head.group(2)
    if kind == "RANGE":
        bounds = re.findall(r"VALUES LESS THAN (MAXVALUE|\((.+?)\)) ENGINE", partitioning)
        if not bounds or bounds[-1][0] == "MAXVALUE":
            return None
        where = f"({expression}) >= {bounds[-1][1]}"
    else:
        values = ",".join(re.findall(r"VALUES IN \((.+?)\) ENGINE", partitioning))
        listed = [value.strip() for value in values.split(",")]
        where = f"({expression}) NOT IN ({', '.join(v for v in listed if v.upper() != 'NULL')})"
        if "NULL" not in (value.upper() for value in listed):
            where += f" OR ({expression}) IS NULL"
    return Risk(f"rows hold values no partition of the backup's {kind} partitioning takes",
                f"SELECT COUNT(*) FROM {_q(table)} WHERE {where}", blocks=True)


def _generation(column: Column, line: str) -> str:
    """How a column gets its values: VIRTUAL, STORED, ROW (a system-versioning period column) or "" (regular)."""
    if column.generated is not None:
        return "STORED" if column.stored else "VIRTUAL"
    return "ROW" if " GENERATED ALWAYS AS ROW " in line else ""


def _period_name(line: str) -> str:
    return line.removeprefix(_PERIOD).split(" (", 1)[0]


def _first_fk_index(target: Table, new: TableParts, readded: list[tuple[str, ...]]) -> int:
    """Position of the backup's first key that a re-added foreign key may use.

    Adding a foreign key makes MariaDB replace an index it once created implicitly for one with
    an index named after the constraint; a key dropped and added again explicitly is kept.
    """
    indexes = {index.name: index for index in target.indexes}
    for position, (key, _) in enumerate(new.keys):
        index = indexes.get(key)
        if index is None:
            continue
        columns = tuple(str(part.column).lower() for part in index.parts)
        if any(columns[: len(fk)] == tuple(c.lower() for c in fk) for fk in readded):
            return position
    return len(new.keys)


def _longest_common_subsequence(a: list[str], b: list[str]) -> set[str]:
    lengths = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            lengths[i + 1][j + 1] = lengths[i][j] + 1 if x == y else max(lengths[i][j + 1], lengths[i + 1][j])
    found: set[str] = set()
    i, j = len(a), len(b)
    while i and j:
        if a[i - 1] == b[j - 1]:
            found.add(a[i - 1])
            i, j = i - 1, j - 1
        elif lengths[i - 1][j] >= lengths[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return found


def _option_steps(table: str, old: str, new: str, *, engine_changed: bool) -> list[RollbackStep]:
    """The backup's options, plus resets for options it does not set.

    ``=DEFAULT`` is a syntax error for some options, which take the value the server means by
    "absent" instead; and a reset in the statement that changes the engine is ignored (leaving
    Aria keeps PAGE_CHECKSUM=1), so it runs as a statement of its own.
    """
    old_keys = set(_OPTION_KEYS.findall(" " + old))
    new_keys = set(_OPTION_KEYS.findall(" " + new))
    resets = [f"{key.removeprefix('DEFAULT ')}={_RESET_VALUES.get(key.removeprefix('DEFAULT ').upper(), 'DEFAULT')}"
              for key in sorted(old_keys - new_keys)
              if key.removeprefix("DEFAULT ") not in ("CHARSET", "COLLATE", "ENGINE")]
    risks = _charset_risk(table, old, new)
    if engine_changed and resets:
        return [RollbackStep(StepPhase.ALTER_TABLE_OPTIONS, "table", table, f"ALTER TABLE {_q(table)} {new}",
                             risks=risks),
                RollbackStep(StepPhase.ALTER_TABLE_OPTIONS, "table", table,
                             f"ALTER TABLE {_q(table)} {' '.join(resets)}")]
    return [RollbackStep(StepPhase.ALTER_TABLE_OPTIONS, "table", table,
                         f"ALTER TABLE {_q(table)} {' '.join([new, *resets]).strip()}", risks=risks)]


def _charset_risk(table: str, old: str, new: str) -> tuple[Risk, ...]:
    old_engine = re.search(r"ENGINE=(\w+)", old)
    new_engine = re.search(r"ENGINE=(\w+)", new)
    if old_engine and new_engine and old_engine.group(1) != new_engine.group(1):
        return (Risk(f"the table is rebuilt from {old_engine.group(1)} to {new_engine.group(1)}",
                     f"SELECT COUNT(*) FROM {_q(table)}"),)
    return ()


def _column_risks(table: str, old: Column, new: Column) -> list[Risk]:
    """What a column change may destroy (type_change decides), with a query that counts the affected rows."""
    column = _q(new.name)
    where = f"SELECT COUNT(*) FROM {_q(table)} WHERE "
    risks: list[Risk] = []
    for loss in type_change.losses(old, new):
        match loss:
            case type_change.NullsRejected():
                risks.append(Risk(f"column {column} becomes NOT NULL; NULLs are rejected or replaced",
                                  where + f"{column} IS NULL"))
            case type_change.CharsetNarrowed(new_charset=charset):
                risks.append(Risk(f"column {column} changes character set/collation {old.collation} -> "
                                  f"{new.collation}", where + f"{column} <> CONVERT({column} USING {charset})"))
            case type_change.Shortened(length=length, in_bytes=in_bytes):
                measure = "LENGTH" if in_bytes else "CHAR_LENGTH"
                risks.append(Risk(f"column {column} narrows from {old.type} to {new.type}; longer values are "
                                  f"truncated", where + f"{measure}({column}) > {length}"))
            case type_change.ValuesRemoved(kind=kind, values=removed):
                test = " OR ".join(f"FIND_IN_SET({value}, {column})" for value in removed) if kind == "set" \
                    else f"{column} IN ({', '.join(removed)})"
                risks.append(Risk(f"column {column} loses {kind.upper()} values {', '.join(removed)}", where + test))
            case type_change.OutOfRange(low=low, high=high):
                risks.append(Risk(f"column {column} narrows from {old.type} to {new.type}; values out of range "
                                  f"are lost", where + f"({column} < {low} OR {column} > {high})"))
            case type_change.Converted():
                risks.append(Risk(f"column {column} changes type from {old.type} to {new.type}; values are "
                                  f"converted", where + f"{column} IS NOT NULL"))
    return risks
