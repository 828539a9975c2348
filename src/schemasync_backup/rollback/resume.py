"""The data steps an earlier run to the same backup left unfinished, planned again.

After a run stops in its data steps (a connection killed, a damaged chunk, Ctrl-C), its schema
steps are done: the live tables are already the backup's. Planned from that live schema, a
reloaded table is no longer one the plan creates, and a refilled column no longer differs, so
the plan would hold no data step for them and the rows the run had not loaded yet would be lost
without a word. So the plan takes the latest run's journal into account: each data step of it
that is not done comes back, as it was, for every table the new plan leaves as it is. Running
it again is safe whatever the run had loaded (see :mod:`.data_restore`: a reloaded chunk the
table already holds is proven and skipped, a refill or a restore of rows by key is idempotent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from schemasync_backup.formats.data_index import DataIndex
from schemasync_backup.formats.journal import UNFINISHED
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.rollback.data_steps import data_step
from schemasync_backup.rollback.plan import RollbackStep, StepPhase
from schemasync_backup.sql.quoting import quote_identifier

#: What a run id the planner wrote looks like (_Journal.run_id); any other text is not repeated.
_RUN_ID = re.compile(r"run-[0-9]{8}-[0-9]{6}-[0-9]{6}-[0-9a-f]{6}")
_DATA_PHASES = (StepPhase.RELOAD_TABLE, StepPhase.REFILL_COLUMNS, StepPhase.RESTORE_ROWS)


def resumed_steps(run: Mapping[str, Any] | None, database: str, live: Snapshot, steps: Sequence[RollbackStep],
                  data: DataIndex | None) -> tuple[list[RollbackStep], list[str]]:
    """(the unfinished data steps of ``run``, a journal document, to run again; notes for people)."""
    if run is None or data is None or run.get("status") not in UNFINISHED or run.get("database") != database:
        return [], []
    # A table a schema step of the new plan changes is not as the run left it: the new plan's own
    # data steps are the right ones for it.
    touched = {step.object_name for step in steps if step.object_kind == "table" and not step.is_data}
    live_tables = {table.name for table in live.tables}
    held = {table.table: table for table in data.tables}
    found: list[RollbackStep] = []
    notes: list[str] = []
    # The journal is a document in the store: it says which steps to run again, never their SQL,
    # which is written anew from the backup's index, as the plan writes it.
    run_id = str(run.get("run_id"))
    which = f"run {run_id}" if _RUN_ID.fullmatch(run_id) else "the latest run"
    for entry in run.get("steps", ()):
        name = entry.get("object_name")
        if (entry.get("data") is None or entry.get("status") == "done" or name in touched
                or name not in live_tables or name not in held or entry.get("phase") not in _DATA_PHASES):
            continue
        table = held[name]
        columns = [column for column in entry.get("columns") or () if column in table.columns]
        step = data_step(StepPhase(entry["phase"]), table, columns)
        if step.phase == StepPhase.REFILL_COLUMNS and not columns:
            continue
        done = len(entry.get("chunks_done") or ())
        what = (f"{step.phase} {quote_identifier(name)} of {which} stopped with {done} of {len(table.chunks)} "
                "chunk(s) done")
        found.append(attrs.evolve(step, sql=f"-- resumes {what}\n{step.sql}"))
        notes.append(f"{what}: it runs again (chunks the table already holds are proven and skipped)")
    return found, notes


def merged(loads: Sequence[RollbackStep], resumed: Sequence[RollbackStep]) -> list[RollbackStep]:
    """The plan's data steps with the resumed ones in place of those for the same table (a restore of
    rows the at-risk data would plan for a partly reloaded table), the others after them."""
    again = {step.object_name: step for step in resumed}
    kept = [again.pop(step.object_name, step) for step in loads]
    return [*kept, *again.values()]
