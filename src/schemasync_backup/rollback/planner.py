"""RollbackPlanner: plan, show, execute and verify the way back to a backup's schema.

Planning is pure (plan.py) once both snapshots are in hand; this module adds the edges:
capturing the live schema, measuring the data at risk, preflight, and running the plan with a
server lock and a journal in the store.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from schemasync_backup.capture import table_data
from schemasync_backup.capture.connection import (
    Connection,
    ConnectionSpec,
    Source,
    describe,
    open_source,
    query,
    translate_errors,
)
from schemasync_backup.capture.reader import server_info
from schemasync_backup.converter import report, unstructure
from schemasync_backup.display import Card, Rows, Shown, brief_repr, yes_no
from schemasync_backup.errors import (
    ConcurrentRollbackError,
    DatabaseConnectionError,
    DatabaseError,
    DatabaseMismatchError,
    DatabaseNotFoundError,
    InvalidInputError,
    QueryError,
    RehearsalFailedError,
    RollbackConnectionLostError,
    RollbackRefusedError,
    RollbackStepError,
    SchemaSyncBackupError,
    StalePlanError,
)
from schemasync_backup.formats import journal as journal_format
from schemasync_backup.formats.backup_id import check_backup_id
from schemasync_backup.formats.manifest import BackupInfo, Status
from schemasync_backup.model.diff import SchemaDiff, changes_table, diff
from schemasync_backup.model.progress import ProgressCallback
from schemasync_backup.model.snapshot import ServerInfo, Snapshot
from schemasync_backup.rollback import data_check, data_restore, plan_file, preflight
from schemasync_backup.rollback.data_check import DataCheck
from schemasync_backup.rollback.data_steps import data_steps
from schemasync_backup.rollback.plan import (
    DEFINER_POLICIES,
    NOT_REHEARSED,
    PlanOptions,
    RollbackPlan,
    RollbackStep,
    StepPhase,
    build_steps,
    fit_sequence,
    limitations,
)
from schemasync_backup.rollback.plan_file import SavedPlan
from schemasync_backup.rollback.rehearsal import rehearse as rehearse_steps
from schemasync_backup.rollback.resume import merged, resumed_steps
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.store.store import BackupStore

__all__ = ["ExecutionResult", "RecoveryInfo", "RollbackPlan", "RollbackPlanner", "RollbackStep",
           "RollbackValidation", "SavedPlan", "diff"]

Progress = Callable[[int, int, RollbackStep], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@attrs.frozen
class ExecutionResult(Shown):
    backup_id: str
    database: str
    dry_run: bool
    steps_run: int
    pre_rollback_backup_id: str | None
    run_id: str | None
    verified: bool
    final_hash: str

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def _card(self) -> Card:
        done = "dry run: nothing sent" if self.dry_run else f"{self.steps_run} steps run"
        facts: list[tuple[str, object]] = [("verified", yes_no(self.verified)), ("final hash", self.final_hash)]
        if self.pre_rollback_backup_id:
            facts.append(("pre-rollback backup", self.pre_rollback_backup_id))
        if self.run_id:
            facts.append(("run", self.run_id))
        return Card(f"Rollback of `{self.database}` to backup {self.backup_id}: {done}", tuple(facts),
                    kind="execution")


@report(..., "data_matches")
@attrs.frozen(repr=False)
class RollbackValidation(Shown):
    backup_id: str
    database: str
    #: The live schema equals the backup's (the data has its own verdict: ``data_matches``).
    matches: bool
    live_hash: str
    backup_hash: str
    differences: SchemaDiff
    #: The live rows compared with the backup's, table by table; None when the backup holds no
    #: data or the check was skipped (``validate(..., data=False)``).
    data: DataCheck | None = None

    @property
    def data_matches(self) -> bool | None:
        """Whether the live rows are the backed-up ones; None when no data was compared."""
        return None if self.data is None else self.data.equal

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, backup_id=self.backup_id, database=self.database, matches=self.matches,
                          differences=len(self.differences.changes), data_matches=self.data_matches)

    def _card(self) -> Card:
        verdict = ("matches" if self.matches else f"DIFFERS in {len(self.differences.changes)} object(s)")
        if self.data_matches is False:
            verdict += "; its data DIFFERS"
        return Card(f"`{self.database}` against backup {self.backup_id}: {verdict}",
                    (("live hash", self.live_hash), ("backup hash", self.backup_hash),
                     ("data", "not compared" if self.data is None else self.data.headline)),
                    notes=tuple(map(str, self.data.differing)) if self.data is not None else (),
                    tables=(changes_table(self.differences.changes),), kind="rollback-validation")


# "ran" and "summary" (issue 15) come last: the keys before them keep their order for existing readers.
@report("backup_id", "run_id", "status", "pre_rollback_backup_id", "steps_done", "failed_step", "error", "steps",
        "ran", "summary", steps_done=lambda info: info.done, summary=str)
@attrs.frozen(repr=False)
class RecoveryInfo(Shown):
    backup_id: str
    #: None when no rollback to the backup has run (``status`` is then "not run").
    run_id: str | None
    status: str  # running, failed, completed, not run
    pre_rollback_backup_id: str | None
    steps: tuple[dict[str, Any], ...]
    #: Why the run failed, when it did (the failed step's error, or what broke between steps).
    error: str | None = None

    @classmethod
    def not_run(cls, backup_id: str) -> RecoveryInfo:
        """The answer when no rollback to ``backup_id`` has run: a fact to report, not an error."""
        return cls(backup_id, None, "not run", None, ())

    @property
    def ran(self) -> bool:
        return self.run_id is not None

    @property
    def failed_step(self) -> dict[str, Any] | None:
        return next((step for step in self.steps if step["status"] == "failed"), None)

    @property
    def done(self) -> int:
        return sum(step["status"] == "done" for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return unstructure(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return brief_repr(self, backup_id=self.backup_id, run_id=self.run_id, status=self.status,
                          steps=len(self.steps), done=self.done)

    def _card(self) -> Card:
        # The text (``str``) is the one the report's "summary" holds: its first line titles the HTML.
        head, *rest = str(self).splitlines()
        return Card(head, notes=tuple(rest), kind="recovery-info", tables=(Rows(
            "steps", ("#", "status", "phase", "object", "error"),
            [(step.get("number"), step.get("status"), step.get("phase"), step.get("object_name"), step.get("error"))
             for step in self.steps]),))

    def __str__(self) -> str:
        if not self.ran:
            return f"no rollback of backup {self.backup_id} has run: nothing to recover"
        failed = self.failed_step
        head = (f"run {self.run_id} of rollback to {self.backup_id}: {self.status}, "
                f"{self.done}/{len(self.steps)} steps done")
        if failed is None:
            return f"{head}\n{self.error}" if self.error else head
        chunks = (f" ({len(failed['chunks_done'])} of {len(failed['data']['chunks'])} chunk(s) done)"
                  if failed.get("data") and "chunks_done" in failed else "")
        return (f"{head}\nstep {failed['number']} ({failed['phase']} {failed['object_kind']} "
                f"{quote_identifier(failed['object_name'])}) failed{chunks}: {failed['error']}\n  {failed['sql']}")


class _Journal:
    """The run's record in the store, rewritten after every step and chunk so a crash leaves the truth.

    Data steps load on several threads at once: each change and its save hold the lock.
    """

    def __init__(self, store: BackupStore, plan: RollbackPlan, pre_backup: str) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.run_id = f"run-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}-{secrets.token_hex(3)}"
        self.document: dict[str, Any] = {
            "run_id": self.run_id, "backup_id": plan.backup_id, "database": plan.database, "started_at": _now(),
            "pre_rollback_backup_id": pre_backup, "status": "running",
            "steps": [{"number": number, **step.to_dict(), "status": "pending", "error": None,
                       "started_at": None, "finished_at": None}
                      for number, step in enumerate(plan.steps, start=1)],
        }
        self.save()

    def save(self) -> None:
        with self.lock:
            self.store.put_document(journal_format.path(self.document["backup_id"], f"{self.run_id}.json"),
                                    json.dumps(self.document, indent=1).encode())

    def step(self, number: int, status: str, error: str | None = None) -> None:
        with self.lock:
            entry = self.document["steps"][number - 1]
            entry["status"] = status
            entry["error"] = error
            entry["started_at" if status == "running" else "finished_at"] = _now()
            if entry.get("data") is not None:
                entry.setdefault("chunks_done", [])
            self.save()

    def chunk(self, number: int, chunk: int) -> None:
        """One more chunk of a data step is in (chunks finish in any order when loading in parallel)."""
        with self.lock:
            done = self.document["steps"][number - 1].setdefault("chunks_done", [])
            done.append(chunk)
            done.sort()
            self.save()

    def data(self, number: int, loaded: Any) -> None:
        with self.lock:
            self.document["steps"][number - 1]["loaded"] = unstructure(loaded)

    def finish(self, status: str, error: str | None = None) -> None:
        with self.lock:
            self.document["status"] = status
            self.document["finished_at"] = _now()
            if error is not None:
                self.document["error"] = error
            self.save()

    @property
    def finished(self) -> bool:
        return bool(self.document["status"] != "running")


@attrs.frozen
class RollbackPlanner:
    """Plans and runs rollbacks to the backups of one store."""

    store: BackupStore
    #: The live captures of recent plans, by (database, live hash): executing a plan reads only what
    #: changed since its own capture (a plan loaded from a file starts from its backup's snapshot).
    _captures: dict[tuple[str, str], Snapshot] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def plan(
        self,
        target: Source,
        backup_id: str,
        *,
        database: str | None = None,
        target_database: str | None = None,
        definer_policy: Mapping[str, str] | None = None,
        force: bool = False,
        rehearse: bool = True,
        rehearse_on: Source | None = None,
        resume: bool = True,
    ) -> RollbackPlan:
        """The steps that turn the live schema on ``target`` into the backup's, with the data at risk.

        The database changed is ``database``, else ``target_database``, else the one the DSN names,
        else the backup's own. A database other than the backup's is refused
        (:class:`DatabaseMismatchError`) unless ``target_database`` names it: the plan would drop
        everything that database holds and the backup lacks. For a partial backup, live objects the
        backup does not hold are kept unless ``force``.

        The plan is rehearsed (``plan.rehearsal``) in a scratch database on the same server, or on
        ``rehearse_on`` (a throwaway server) when given; ``rehearse=False`` skips that, and the
        summary says so. :meth:`execute` refuses a plan whose rehearsal failed unless forced.

        When the latest run to ``backup_id`` stopped before its data steps were done, the plan runs
        them again for every table it leaves as it is (``resume=False``: it does not; see
        :mod:`.resume`): planning and executing again gives back every row exactly once.
        """
        for kind, choice in (definer_policy or {}).items():
            if choice not in DEFINER_POLICIES:
                raise InvalidInputError(f"definer policy for {kind} must be one of {', '.join(DEFINER_POLICIES)}, "
                                        f"not {choice!r}", subject=choice)
        info = self.store.get(backup_id)
        if info.status == Status.CORRUPTED and not force:
            raise RollbackRefusedError(
                f"backup {backup_id} is CORRUPTED (validation found damage): it is not a rollback target "
                "unless forced; validate it again or pick another backup",
                subject=backup_id,
            )
        name = _target_database(target, info, database, target_database)
        wanted = self.store.snapshot(backup_id)
        with open_source(target) as connection:
            live, server = self._live(connection, name, wanted)
            goal = attrs.evolve(wanted, database=name)
            notes: list[str] = []
            if info.partial and not force:
                goal, kept = _keep_unheld(live, goal)
                if kept:
                    shown = ", ".join(kept[:10]) + (f" and {len(kept) - 10} more" if len(kept) > 10 else "")
                    notes.append(
                        f"{len(kept)} live object(s) the backup does not hold are kept because backup {backup_id} "
                        f"is partial (salvaged: it may lack objects the source held): {shown}; "
                        "plan with force to drop them"
                    )
            steps, step_notes = build_steps(live, goal, definer_policy)
            notes += step_notes
            index = self.store.data_index(backup_id)
            loads, lost, data_notes = data_steps(live, goal, steps, index)
            again, resume_notes = resumed_steps(self._last_run(backup_id) if resume else None, name, live, steps,
                                                index)
            steps = _with_data_steps(steps, merged(loads, again))
            notes += resume_notes + data_notes
            notes += [_lost_note(connection, name, table, columns) for table, columns in lost]
            if not _database_exists(connection, name):
                steps.insert(0, RollbackStep(StepPhase.CREATE_DATABASE, "database", name,
                                             f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET "
                                             f"{wanted.charset} COLLATE {wanted.collation}"))
            steps = [self._measure(connection, name, _fit_sequence(connection, name, step)) for step in steps]
            problems, warnings = preflight.check(connection, server.flavor, server.version, wanted, steps, name)
            problems = [*limitations(live, goal), *problems]
            rehearsal = NOT_REHEARSED
            if rehearse and not problems:
                with open_source(rehearse_on if rehearse_on is not None else connection) as scratch_server:
                    rehearsal = rehearse_steps(scratch_server, live, goal, steps, definer_policy)
            elif rehearse:
                rehearsal = attrs.evolve(NOT_REHEARSED, reason="the plan is refused by preflight")
        self._remember(name, live)
        return RollbackPlan(
            backup_id=backup_id, database=name, live_hash=live.schema_hash, target_hash=goal.schema_hash,
            steps=tuple(steps), notes=tuple(notes + warnings), preflight=tuple(problems), created_at=_now(),
            rehearsal=rehearsal, options=PlanOptions.of(definer_policy, force=force, resume=resume),
        )

    def _live(self, connection: Connection, name: str, known: Snapshot) -> tuple[Snapshot, ServerInfo]:
        """The live schema, read where it may differ from ``known`` (see ``Snapshot.capture``); an
        absent database counts as an empty one with the defaults of ``known``."""
        try:
            live = Snapshot.capture(connection, name, known=known)
        except DatabaseNotFoundError:
            server = server_info(connection)
            return Snapshot(database=name, charset=known.charset, collation=known.collation, server=server), server
        return live, live.server

    def _remember(self, database: str, live: Snapshot) -> None:
        while len(self._captures) >= _CAPTURES_KEPT:
            del self._captures[next(iter(self._captures))]
        self._captures[(database, live.schema_hash)] = live

    def _measure(self, connection: Connection, database: str, step: RollbackStep) -> RollbackStep:
        """Fill in how many rows each risk touches, on the live data."""
        if not step.risks:
            return step
        connection.select_db(database)
        measured = []
        for risk in step.risks:
            try:
                rows = int(next(iter(query(connection, risk.count_sql)[0].values())))
            except (DatabaseError, StopIteration, TypeError, ValueError):
                rows = None
            measured.append(attrs.evolve(risk, rows=rows))
        return attrs.evolve(step, risks=tuple(measured))

    def execute(
        self,
        target: Source,
        plan: RollbackPlan,
        *,
        dry_run: bool = False,
        disable_fk_checks: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        destructive_confirmed: bool = False,
        load_method: str = "load_data",
        batch_size: int = 1000,
        parallel: int = 1,
        data_progress: ProgressCallback | None = None,
    ) -> ExecutionResult:
        """Run ``plan``; refuses stale plans always, and unless ``force``: a plan with preflight
        problems, and a destructive one that nobody confirmed.

        ``destructive_confirmed``: a person reviewed this plan's destructive steps and said yes;
        that is consent for them, but not for preflight problems, which still need ``force``.

        Data steps load the backup's chunks with ``LOAD DATA LOCAL INFILE`` (``load_method="insert"``:
        multi-row INSERTs of ``batch_size`` rows), each checked after loading, on ``parallel``
        connections at once (consecutive data steps share them; see :mod:`.data_restore`).

        ``progress`` is told (step number, steps, step) as each step starts; ``data_progress`` how far
        the data steps that load together are (:class:`~schemasync_backup.model.progress.ProgressUpdate`
        of stage ``"rows"``: chunks in of all, rows restored, bytes of table data in of all).
        """
        if load_method not in ("load_data", "insert") or batch_size < 1:
            raise InvalidInputError(f"load_method must be 'load_data' or 'insert' and batch_size at least 1, not "
                                    f"{load_method!r} and {batch_size}", subject=load_method)
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise InvalidInputError(f"parallel must be a whole number of connections, at least 1, not {parallel!r}",
                                    subject=parallel)
        check_backup_id(plan.backup_id)
        if plan.rehearsal.failed and not force:
            raise RehearsalFailedError(
                f"rollback refused: the plan failed its rehearsal in a scratch database, so it would fail on the "
                f"live one too ({plan.rehearsal}); the live database was not changed. Plan again once the cause "
                "is fixed, or run with force",
                subject=plan.backup_id, rehearsal=plan.rehearsal,
            )
        if plan.preflight and not force:
            raise RollbackRefusedError(
                "rollback refused by preflight (use force to run anyway):\n  " + "\n  ".join(plan.preflight),
                subject=plan.backup_id,
            )
        if plan.destructive_steps and not (force or destructive_confirmed or dry_run):
            raise RollbackRefusedError(
                f"rollback refused: {len(plan.destructive_steps)} destructive step(s); review them and run again "
                "with force:\n  " + "\n  ".join(plan.warnings),
                subject=plan.backup_id,
            )
        with open_source(target) as connection:
            where = describe(connection)
            lock = f"schemasync_rollback:{plan.database}"[:64]
            if query(connection, "SELECT GET_LOCK(%s, 0) AS got", (lock,))[0]["got"] != 1:
                raise ConcurrentRollbackError(
                    f"another rollback of {quote_identifier(plan.database)} is running on {where} "
                    f"(server lock {lock!r} is held); wait for it to finish",
                    subject=plan.database,
                )
            try:
                result = self._run(target, connection, plan, dry_run=dry_run, disable_fk_checks=disable_fk_checks,
                                   progress=progress, load=_Loading(load_method, batch_size, parallel, data_progress))
            except BaseException as exc:
                # The cleanup must never replace the error that stopped the run.
                _release(connection, lock, where, failure=exc)
                if not isinstance(exc, RollbackRefusedError):
                    self.store.registry.notify("rollback.failed", {
                        "backup_id": plan.backup_id, "database": plan.database, "error": str(exc)})
                raise
            _release(connection, lock, where)
            if not result.dry_run:
                self.store.registry.notify("rollback.executed", {"backup_id": plan.backup_id, **result.to_dict()})
            return result

    def save_plan(self, plan: RollbackPlan, *, disable_fk_checks: bool = False) -> SavedPlan:
        """``plan`` bound to its backup as the store holds it now, to write for review
        (``saved.write(path)``, ``saved.to_json()``) and run later with :meth:`execute_saved`.

        ``disable_fk_checks``: the reviewed plan runs with ``SET FOREIGN_KEY_CHECKS=0``.
        """
        info = self.store.get(plan.backup_id)
        return SavedPlan(plan, info.checksum, info.schema_hash, disable_fk_checks, _now())

    def current_plan(self, target: Source, saved: SavedPlan, *, rehearse: bool = True,
                     rehearse_on: Source | None = None) -> RollbackPlan:
        """The saved plan as it would run now, proven to be the one reviewed.

        The file is not trusted for what runs: the backup must be the one it was saved from (its
        manifest checksum and snapshot hash), and the plan is made again from that backup and the
        live schema, with the saved plan's options, and must equal it step for step
        (:func:`.plan_file.differences`); otherwise :class:`StalePlanError`, and nothing changes.
        The plan returned is the one made now (with the live row counts, preflight and a fresh
        rehearsal unless ``rehearse=False``), for :meth:`execute`.
        """
        plan = saved.plan
        again = (f"make the plan again with `rollback plan --backup-id {plan.backup_id} --output {saved.name}`, "
                 "review it, and execute that")
        info = self.store.get(plan.backup_id)
        if (info.checksum, info.schema_hash) != (saved.manifest_checksum, saved.backup_schema_hash):
            raise StalePlanError(
                f"plan file {saved.name} was made from another state of backup {plan.backup_id}: its manifest "
                f"changed since (checksum {saved.manifest_checksum[:12]} then, {info.checksum[:12]} now: replaced, "
                f"re-imported or re-checksummed); {again}",
                subject=plan.backup_id,
            )
        options = plan.options
        current = self.plan(target, plan.backup_id, database=plan.database,
                            target_database=plan.database if plan.database != info.database else None,
                            definer_policy=dict(options.definer_policy), force=options.force, rehearse=rehearse,
                            rehearse_on=rehearse_on, resume=options.resume)
        _refuse_stale(plan, current.live_hash, f"plan file {saved.name} no longer applies: {again}")
        found = plan_file.differences(plan, current)
        if found:
            raise StalePlanError(
                f"plan file {saved.name} is not the plan made now from backup {plan.backup_id} and the live schema "
                f"(it was edited, or what the plan depends on changed): " + "; ".join(found[:5])
                + (f"; and {len(found) - 5} more" if len(found) > 5 else "") + f"; {again}",
                subject=plan.backup_id,
            )
        return current

    def execute_saved(
        self,
        target: Source,
        saved: SavedPlan,
        *,
        dry_run: bool = False,
        force: bool = False,
        progress: Progress | None = None,
        destructive_confirmed: bool = False,
        rehearse: bool = True,
        rehearse_on: Source | None = None,
        load_method: str = "load_data",
        batch_size: int = 1000,
        parallel: int = 1,
    ) -> ExecutionResult:
        """Run a saved, reviewed plan: :meth:`current_plan`, then :meth:`execute` of it with the saved
        ``disable_fk_checks`` (and the refusals of :meth:`execute`: destructive steps still need
        ``destructive_confirmed`` or ``force``)."""
        current = self.current_plan(target, saved, rehearse=rehearse, rehearse_on=rehearse_on)
        return self.execute(target, current, dry_run=dry_run, disable_fk_checks=saved.disable_fk_checks, force=force,
                            progress=progress, destructive_confirmed=destructive_confirmed, load_method=load_method,
                            batch_size=batch_size, parallel=parallel)

    def _run(self, target: Source, connection: Connection, plan: RollbackPlan, *, dry_run: bool,
             disable_fk_checks: bool, progress: Progress | None, load: _Loading) -> ExecutionResult:
        # The backup's snapshot, loaded once and only if needed: a data step's table definitions,
        # a destructive plan's pre-rollback data, or a plan made in another process.
        backup = functools.cache(lambda: self.store.snapshot(plan.backup_id))
        planned = self._captures.get((plan.database, plan.live_hash))
        known = planned if planned is not None else backup()
        if dry_run:
            live, _ = self._live(connection, plan.database, known)
            _refuse_stale(plan, live.schema_hash)
            return ExecutionResult(plan.backup_id, plan.database, True, 0, None, None, plan.is_empty,
                                   live.schema_hash)
        pre, live = self._pre_rollback_backup(target, connection, plan, known, backup)
        journal = _Journal(self.store, plan, pre.id if pre else "")
        where = describe(connection)
        try:
            with translate_errors(where), connection.cursor() as cursor:
                if disable_fk_checks:
                    cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
                for batch in _batches(plan.steps):
                    if batch[0][1].is_data:
                        self._load(target, plan, [data_restore.DataStep(number, step, backup().table(
                            step.object_name)) for number, step in batch], journal, load, progress)
                        continue
                    number, step = batch[0]
                    if progress is not None:
                        progress(number, len(plan.steps), step)
                    journal.step(number, "running")
                    try:
                        with translate_errors(where, database=plan.database):
                            if step.phase != StepPhase.CREATE_DATABASE:
                                connection.select_db(plan.database)
                            for statement in step.statements:
                                cursor.execute(statement)
                    except (QueryError, DatabaseConnectionError) as exc:
                        raise self._step_failed(journal, plan, number, step, exc) from exc
                    journal.step(number, "done")
                cursor.execute("SET NAMES utf8mb4")
            after = Snapshot.capture(connection, plan.database, known=live)
        except BaseException as exc:
            if not journal.finished:
                done = sum(entry["status"] == "done" for entry in journal.document["steps"])
                journal.finish("failed", f"the run stopped after {done} of {len(plan.steps)} step(s): "
                                         f"{getattr(exc, 'message', None) or exc!r}")
            raise
        verified = after.schema_hash == plan.target_hash
        journal.finish("completed" if verified else "completed with differences")
        return ExecutionResult(plan.backup_id, plan.database, False, len(plan.steps), pre.id if pre else None,
                               journal.run_id, verified, after.schema_hash)

    def _pre_rollback_backup(self, target: Source, connection: Connection, plan: RollbackPlan, known: Snapshot,
                             backup: Callable[[], Snapshot]) -> tuple[BackupInfo | None, Snapshot]:
        """The live state, pinned, with the data the rollback destroys (undoing the undo gives it
        back too), and the live schema it holds; refused, with nothing written, when the plan is stale.

        A destructive plan's backup captures the schema in the snapshot its data is read in, and
        that capture is the stale check. (Data is read on connections of its own: from a caller's
        open connection, the backup holds the schema only.) An empty live database needs none.
        """
        description = f"automatic backup before rollback to {plan.backup_id}"
        tags = journal_format.pre_rollback_tags(plan.backup_id)
        if not plan.destructive_steps or not isinstance(target, str):
            live, _ = self._live(connection, plan.database, known)
            _refuse_stale(plan, live.schema_hash)
            saved = self.store.save(live, description=description, tags=tags, pinned=True) if live.objects() else None
            return saved, live
        goal = attrs.evolve(backup(), database=plan.database)
        seen: list[Snapshot] = []

        def fresh(live: Snapshot) -> None:
            _refuse_stale(plan, live.schema_hash)
            seen.append(live)

        info = self.store.create(target, plan.database, description=description, tags=tags, pinned=True,
                                 data="at-risk", migration=goal, allow_concurrent=True, known=known, check=fresh)
        return info, seen[0]

    def _load(self, target: Source, plan: RollbackPlan, steps: Sequence[data_restore.DataStep], journal: _Journal,
              load: _Loading, progress: Progress | None) -> None:
        """Stream data steps' chunks from the store into the live tables, on data connections of their own."""
        dsn = table_data.data_source(target, f"step {steps[0].number}, which loads the backup's data,", plan.backup_id)
        for data in steps:
            if progress is not None:
                progress(data.number, len(plan.steps), data.step)
            journal.step(data.number, "running")
        outcome = data_restore.run(lambda: table_data.open_data_connection(dsn, plan.database), steps,
                                   self.store.chunk_reader(plan.backup_id), method=load.method,
                                   batch_size=load.batch_size, parallel=load.parallel, chunk_done=journal.chunk,
                                   progress=load.progress)
        failure = outcome.failure
        for data in steps:
            loaded = outcome.loaded.get(data.number)
            if loaded is not None:
                journal.data(data.number, loaded)
                journal.step(data.number, "done")
            elif failure is not None and failure.number != data.number:
                # Stopped by another step's error: its chunks done are recorded, the rest not loaded.
                journal.step(data.number, "stopped", f"stopped: step {failure.number} failed")
        if failure is None:
            return
        step = plan.steps[failure.number - 1]
        if not isinstance(failure.error, SchemaSyncBackupError):
            journal.step(failure.number, "failed", repr(failure.error))
            raise failure.error
        raise self._step_failed(journal, plan, failure.number, step, failure.error,
                                f"chunk {failure.chunk} of {len(step.data.chunks)}" if failure.chunk and step.data
                                else "") from failure.error

    @staticmethod
    def _step_failed(
        journal: _Journal, plan: RollbackPlan, number: int, step: RollbackStep, exc: SchemaSyncBackupError,
        chunk: str = "",
    ) -> RollbackStepError:
        """Mark the step and the run failed in the journal; the error to raise (``chunk``: the one it stopped at)."""
        at = f"{chunk}: " if chunk else ""
        journal.step(number, "failed", at + exc.message)
        journal.finish("failed", f"step {number} failed: {at}{exc.message}")
        what = (f"rollback step {number} of {len(plan.steps)} ({step.phase} {step.object_kind} "
                f"{quote_identifier(step.object_name)}){' at ' + chunk if chunk else ''}")
        follow = (f"see `rollback recovery-info --backup-id {plan.backup_id}` and "
                  f"`rollback manual-steps --backup-id {plan.backup_id}`")
        if isinstance(exc, DatabaseConnectionError):
            return RollbackConnectionLostError(
                f"{what} failed: {exc.message}. The server may or may not have applied the step: when it is "
                f"back, compare the live schema with the backup (`rollback compare`), {follow}, and plan again",
                subject=plan.backup_id, step=number,
            )
        return RollbackStepError(
            f"{what} failed: {exc.message}; {follow}, or fix the cause and plan again",
            subject=plan.backup_id, step=number, code=getattr(exc, "code", None),
        )

    def validate(
        self, target: Source, backup_id: str, *, database: str | None = None, target_database: str | None = None,
        data: bool = True, progress: ProgressCallback | None = None,
    ) -> RollbackValidation:
        """Whether the live schema equals the backup's, and what differs if not; and, when the backup
        holds data and ``data`` is true, whether the live rows are the backed-up ones
        (``RollbackValidation.data``, compared chunk by chunk: see :mod:`.data_check`).

        The database compared is chosen, and a database other than the backup's refused, as in :meth:`plan`.
        Comparing data needs ``target`` as a DSN (the rows are read on a connection of their own).
        ``progress`` is told stage ``"objects"`` (the live schema's objects captured), then
        ``"comparing"`` (tables, chunks, rows and bytes of the data compared: :func:`.data_check.check`).
        """
        name = _target_database(target, self.store.get(backup_id), database, target_database)
        wanted = self.store.snapshot(backup_id)
        live = Snapshot.capture(target, name, known=wanted, progress=progress)
        differences = diff(live, attrs.evolve(wanted, database=name))
        index = self.store.data_index(backup_id) if data else None
        checked = None
        if index is not None:
            dsn = table_data.data_source(target, f"comparing the data backup {backup_id} holds (or pass data=False)",
                                         backup_id)
            with contextlib.closing(table_data.open_data_connection(dsn, name)) as reader:
                checked = data_check.check(reader, wanted, index, self.store.chunk_reader(backup_id),
                                           progress=progress)
        return RollbackValidation(backup_id, name, live.schema_hash == wanted.schema_hash, live.schema_hash,
                                  wanted.schema_hash, differences, checked)

    def compare(
        self, target: Source, backup_id: str, *, database: str | None = None, target_database: str | None = None
    ) -> SchemaDiff:
        """The differences from the live schema (a) to the backup's (b), both ways."""
        return self.validate(target, backup_id, database=database, target_database=target_database,
                             data=False).differences

    def _journal(self, backup_id: str) -> dict[str, Any]:
        document = self._last_run(backup_id)
        if document is None:
            raise RollbackRefusedError(str(RecoveryInfo.not_run(backup_id)), subject=backup_id)
        return document

    def _last_run(self, backup_id: str) -> dict[str, Any] | None:
        """The journal of the latest rollback to ``backup_id``, if one ran."""
        latest = journal_format.latest(self.store.list_documents(journal_format.folder(backup_id)))
        if latest is None:
            return None
        document: dict[str, Any] = json.loads(self.store.get_document(journal_format.path(backup_id, latest)))
        return document

    def recovery_info(self, backup_id: str) -> RecoveryInfo:
        """Which steps of the latest rollback to ``backup_id`` ran, and which failed with what error;
        :meth:`RecoveryInfo.not_run` when none has run."""
        document = self._last_run(backup_id)
        if document is None:
            return RecoveryInfo.not_run(backup_id)
        return RecoveryInfo(backup_id, document["run_id"], document["status"],
                            document.get("pre_rollback_backup_id") or None, tuple(document["steps"]),
                            document.get("error"))

    def manual_steps(self, backup_id: str) -> list[str]:
        """The SQL still to run after a failed rollback (each step with its session settings)."""
        return [
            ";\n".join(step.get("statements") or [*step["session"], step["sql"]])
            for step in self._journal(backup_id)["steps"]
            if step["status"] != "done"
        ]


@attrs.frozen
class _Loading:
    """How data steps load: the method, rows per INSERT, connections at once, who hears how far."""

    method: str
    batch_size: int
    parallel: int
    progress: ProgressCallback | None = None


def _refuse_stale(plan: RollbackPlan, live_hash: str, again: str = "plan again") -> None:
    if live_hash != plan.live_hash:
        raise StalePlanError(
            f"the plan is stale: the live schema of {quote_identifier(plan.database)} changed since it was made "
            f"(planned from {plan.live_hash[:12]}, now {live_hash[:12]}); {again}",
            subject=plan.backup_id,
        )


#: How many plans' live captures a planner keeps in memory.
_CAPTURES_KEPT = 4


def _batches(steps: Sequence[RollbackStep]) -> Iterator[list[tuple[int, RollbackStep]]]:
    """The numbered steps, each schema step alone and each run of data steps together (they load at once)."""
    batch: list[tuple[int, RollbackStep]] = []
    for number, step in enumerate(steps, start=1):
        if batch and not (step.is_data and batch[-1][1].is_data):
            yield batch
            batch = []
        batch.append((number, step))
    if batch:
        yield batch


def _release(connection: Connection, lock: str, where: str, *, failure: BaseException | None = None) -> None:
    """Release the rollback lock and turn foreign key checks back on.

    After a failure, a connection already found broken is left alone (the server drops the lock
    and the session with it), and an error of the cleanup is only noted on the original one.
    """
    if failure is not None and not connection.open:
        return
    try:
        with translate_errors(where), connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    except DatabaseError as exc:
        if failure is None:
            raise
        failure.add_note(f"and releasing the rollback lock failed too: {exc.message}")


def _target_database(
    target: Source, info: BackupInfo, database: str | None, target_database: str | None
) -> str:
    """The database a rollback changes; a database other than the backup's only when named as the target."""
    if database is not None and target_database is not None and database != target_database:
        raise DatabaseMismatchError(
            f"the database {database!r} and the target database {target_database!r} disagree: name the database "
            "the rollback is to change once",
            subject=info.id, backup_database=info.database, target_database=database,
        )
    named_by_dsn = ConnectionSpec.parse(target).database if isinstance(target, str) else None
    name = database or target_database or named_by_dsn or info.database
    if name not in (info.database, target_database):
        via = "the database asked for" if database else "the database the DSN names"
        raise DatabaseMismatchError(
            f"refusing a rollback of database {quote_identifier(name)} ({via}) to backup {info.id}, which is "
            f"of database {quote_identifier(info.database)}: it would turn {quote_identifier(name)} into a copy "
            f"of {quote_identifier(info.database)}'s schema and drop every table the backup lacks. "
            f"If that is what you want, name the target explicitly: target_database={name!r} "
            f"(command line: --target-database {name}); to roll back {quote_identifier(info.database)} "
            "itself, ask for that database instead",
            subject=info.id, backup_database=info.database, target_database=name,
        )
    return name


def _keep_unheld(live: Snapshot, goal: Snapshot) -> tuple[Snapshot, list[str]]:
    """``goal`` plus every live object it does not hold (so no step drops them), and their names."""
    held = set(goal.objects())
    kept: dict[str, list[Any]] = {}
    names: list[str] = []
    groups: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("table", live.tables), ("view", live.views), ("routine", live.routines), ("trigger", live.triggers),
        ("event", live.events))
    for kind, items in groups:
        for item in items:
            key = (item.kind.lower() if kind == "routine" else kind, item.name)
            if key not in held:
                kept.setdefault(kind, []).append(item)
                names.append(f"{key[0]} {quote_identifier(item.name)}")
    if not names:
        return goal, []
    merged = attrs.evolve(
        goal,
        tables=(*goal.tables, *kept.get("table", [])), views=(*goal.views, *kept.get("view", [])),
        routines=(*goal.routines, *kept.get("routine", [])), triggers=(*goal.triggers, *kept.get("trigger", [])),
        events=(*goal.events, *kept.get("event", [])),
    )
    return merged, names


def _with_data_steps(steps: list[RollbackStep], loads: list[RollbackStep]) -> list[RollbackStep]:
    """Data steps after the tables are as the backup's, before triggers (which would fire on the rows)."""
    later = (StepPhase.CREATE_ROUTINE, StepPhase.CREATE_VIEW, StepPhase.CREATE_TRIGGER, StepPhase.CREATE_EVENT)
    at = next((number for number, step in enumerate(steps) if step.phase in later), len(steps))
    return [*steps[:at], *loads, *steps[at:]]


def _lost_note(connection: Connection, database: str, table: str, columns: tuple[str, ...]) -> str:
    connection.select_db(database)
    try:
        rows = int(next(iter(query(connection, f"SELECT COUNT(*) AS n FROM {quote_identifier(table)}")[0].values())))
    except DatabaseError:
        rows = -1
    counted = f"{rows:,} rows get the default" if rows >= 0 else "every row gets the default"
    names = ", ".join(f"{table}.{column}" for column in columns)
    return f"column{'s' if len(columns) > 1 else ''} {names}: values not in the backup: {counted}"


def _fit_sequence(connection: Connection, database: str, step: RollbackStep) -> RollbackStep:
    """Restart a sequence whose live next value the backup's range no longer holds."""
    if step.phase != StepPhase.ALTER_SEQUENCE:
        return step
    connection.select_db(database)
    rows = query(connection, f"SELECT next_not_cached_value AS next FROM {quote_identifier(step.object_name)}")
    return fit_sequence(step, int(rows[0]["next"])) if rows else step


def _database_exists(connection: Connection, name: str) -> bool:
    return bool(query(connection, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)))
