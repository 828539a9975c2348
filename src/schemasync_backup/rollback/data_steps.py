"""The data steps of a rollback: what of a backup's data comes back, after the schema steps.

- A table the plan creates again is reloaded from the backup's rows.
- A column the plan adds again, or changes back (its type was narrowed, its charset changed), is
  refilled by key from the backup's values of it.
- A table whose rows a migration destroyed (the backup holds them as at-risk data) gets its
  missing rows back by key; rows still there are left as they are. Without a key, the rows come
  back only into an empty table (otherwise the plan is refused).

What the backup does not hold cannot come back, and the plan says so (``lost``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from schemasync_backup.formats.data_index import DataIndex, DataMode, DataScope, TableData
from schemasync_backup.model.snapshot import Snapshot, Table
from schemasync_backup.rollback.plan import Risk, RollbackStep, StepPhase
from schemasync_backup.sql.quoting import quote_identifier

#: The temporary table a refill or a restore of rows loads chunks into (one per session).
STAGING = "_schemasync_staging"


def data_steps(live: Snapshot, goal: Snapshot, steps: Sequence[RollbackStep], data: DataIndex | None
               ) -> tuple[list[RollbackStep], list[tuple[str, tuple[str, ...]]], list[str]]:
    """(data steps, (table, columns) whose values are not in the backup, notes)."""
    created = {step.object_name for step in steps if step.phase == StepPhase.CREATE_TABLE}
    live_tables = {table.name: table for table in live.tables}
    held = {table.table: table for table in data.tables} if data is not None else {}
    found: list[RollbackStep] = []
    lost: list[tuple[str, tuple[str, ...]]] = []
    notes: list[str] = []
    for target in goal.tables:
        if target.kind == "SEQUENCE":
            continue
        table = held.get(target.name)
        if target.name in created or target.name not in live_tables:
            if table is not None and table.scope == DataScope.ROWS:
                found.append(_reload(table))
            elif table is not None:
                notes.append(f"table {quote_identifier(target.name)}: the backup holds only some columns' values of "
                             "it, not its rows: it comes back empty")
            continue
        changed = _changed_columns(live_tables[target.name], target)
        refill = tuple(c for c in changed if table is not None and table.key and c in table.columns
                       and c not in table.key)
        if refill:
            assert table is not None
            found.append(_refill(table, refill))
        added = {c.name for c in target.columns} - {c.name for c in live_tables[target.name].columns}
        missing = tuple(c for c in changed if c in added and c not in refill)
        if missing:
            lost.append((target.name, missing))
        if (table is not None and data is not None and data.mode == DataMode.AT_RISK
                and table.scope == DataScope.ROWS and not refill):
            if table.key:
                found.append(_restore_rows(table))
            else:
                # Without a key, rows cannot be matched: the backup's come back only into an empty table.
                found.append(attrs.evolve(_reload(table), risks=(Risk(
                    "the table has no key to tell which of the backup's rows are missing, so they come back only "
                    "into an empty table; empty it (or restore its rows by hand) and plan again",
                    f"SELECT COUNT(*) FROM {quote_identifier(target.name)}", blocks=True),)))
    return found, lost, notes


def _changed_columns(live: Table, target: Table) -> tuple[str, ...]:
    """Columns of ``target`` that ``live`` lacks, or holds with another type or collation."""
    theirs = {column.name: column for column in live.columns}
    return tuple(
        column.name for column in target.columns
        if column.generated is None and (column.name not in theirs or (column.type, column.collation)
                                         != (theirs[column.name].type, theirs[column.name].collation)))


def _summary(table: TableData) -> str:
    return f"{len(table.chunks)} chunk(s), {table.rows:,} rows, {table.size:,} bytes from the backup"


def _columns(names: Sequence[str]) -> str:
    return ", ".join(map(quote_identifier, names))


def _load(into: str, table: TableData) -> str:
    return (f"LOAD DATA LOCAL INFILE '<chunk>' INTO TABLE {quote_identifier(into)} CHARACTER SET binary "
            f"({_columns(table.columns)})")


def data_step(phase: StepPhase, table: TableData, columns: Sequence[str] = ()) -> RollbackStep:
    """The data step of ``phase`` for ``table`` (a refill of ``columns``), its SQL written from the backup's index."""
    if phase == StepPhase.RELOAD_TABLE:
        return _reload(table)
    if phase == StepPhase.REFILL_COLUMNS:
        return _refill(table, tuple(columns))
    if phase == StepPhase.RESTORE_ROWS:
        return _restore_rows(table)
    raise ValueError(f"{phase} is not a data step")


def _reload(table: TableData) -> RollbackStep:
    return RollbackStep(StepPhase.RELOAD_TABLE, "table", table.table,
                        f"-- {_summary(table)}, per chunk:\n{_load(table.table, table)}", data=table)


def refill_statement(table: TableData, columns: Sequence[str]) -> str:
    """Put the staged values of ``columns`` into the rows of the same key."""
    target, staging = quote_identifier(table.table), quote_identifier(STAGING)
    on = " AND ".join(f"{target}.{quote_identifier(c)} = {staging}.{quote_identifier(c)}" for c in table.key)
    sets = ", ".join(f"{target}.{quote_identifier(c)} = {staging}.{quote_identifier(c)}" for c in columns)
    return f"UPDATE {target} JOIN {staging} ON {on} SET {sets}"


def restore_statement(table: TableData) -> str:
    """Insert the staged rows whose key the table lacks (the others stay as they are)."""
    return (f"INSERT IGNORE INTO {quote_identifier(table.table)} ({_columns(table.columns)}) "
            f"SELECT {_columns(table.columns)} FROM {quote_identifier(STAGING)}")


def _refill(table: TableData, columns: tuple[str, ...]) -> RollbackStep:
    return RollbackStep(StepPhase.REFILL_COLUMNS, "table", table.table,
                        f"-- {_summary(table)}, per chunk:\n{_load(STAGING, table)};\n"
                        f"{refill_statement(table, columns)}", data=table, columns=columns)


def _restore_rows(table: TableData) -> RollbackStep:
    return RollbackStep(StepPhase.RESTORE_ROWS, "table", table.table,
                        f"-- {_summary(table)}, per chunk:\n{_load(STAGING, table)};\n{restore_statement(table)}",
                        data=table)
