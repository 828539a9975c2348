"""`rollback ...` and `test-connection`: plan, execute, validate and recover rollbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemasync_backup.cli import health, reports
from schemasync_backup.cli.console import ProgressBar, StageBars, human_size
from schemasync_backup.cli.context import Context, ExitCode, Outcome
from schemasync_backup.cli.render import (
    _backup_rows,
    _checks_outcome,
    _failed_check,
    _failure,
    _info_dict,
    _validation_text,
)
from schemasync_backup.formats.manifest import Status
from schemasync_backup.validate.validator import Validator

if TYPE_CHECKING:
    from schemasync_backup.model.progress import ProgressUpdate
    from schemasync_backup.rollback.plan import RollbackPlan
    from schemasync_backup.rollback.plan_file import SavedPlan
    from schemasync_backup.rollback.planner import RollbackPlanner


# --- rollback commands ------------------------------------------------------------------------------------


def _planner(ctx: Context) -> RollbackPlanner:
    from schemasync_backup.rollback.planner import RollbackPlanner

    return RollbackPlanner(ctx.store)


def _target(ctx: Context, backup_id: str) -> tuple[str, str]:
    """The DSN and database a rollback works on: --target-database, --database, the configured one, else the
    backup's. The planner refuses one that is not the backup's unless --target-database names it."""
    named, asked = ctx.args.target_database, ctx.args.database
    if named and asked in (None, named):
        name = named  # --target-database overrides the configured database
    else:
        name = ctx.database(required=False) or ctx.store.get(backup_id).database
    ctx.note(backup_id=backup_id, database=name)
    return ctx.config.database.to_dsn(name), name


def cmd_rollback_list(ctx: Context) -> Outcome:
    database = ctx.database(required=False)
    backups = [info for info in ctx.store.list(database=database) if info.status == Status.COMPLETED]
    ctx.note(count=len(backups), database=database)
    return Outcome([_info_dict(info) for info in backups], _backup_rows(backups))


def cmd_rollback_plan(ctx: Context) -> Outcome:
    backup_id, output = ctx.args.backup_id, ctx.args.output
    if ctx.args.disable_fk_checks and not output:
        return Outcome({"backup_id": backup_id}, "", ExitCode.USAGE,
                       "--disable-fk-checks on `rollback plan` is recorded in the saved plan: add --output FILE")
    dsn, name = _target(ctx, backup_id)
    planner = _planner(ctx)
    with ctx.console.activity("Planning"):
        plan = planner.plan(dsn, backup_id, database=name, target_database=ctx.args.target_database,
                            rehearse=not ctx.args.no_rehearsal, resume=not ctx.args.no_resume)
    ctx.note(steps=len(plan.steps), destructive=len(plan.destructive_steps), rehearsal=str(plan.rehearsal.status))
    data = plan.to_dict()
    summary = plan.summary()
    if output:
        planner.save_plan(plan, disable_fk_checks=ctx.args.disable_fk_checks).write(output)
        ctx.note(output=output)
        data["plan_file"] = output
        summary += (f"\nPlan saved to {output}: review it, then run `rollback execute --plan-file {output}` "
                    "(refused if the backup or the live schema changes in between)")
    if not ctx.args.show_sql:
        return Outcome(data, summary)
    # stdout is the script alone, so that `--show-sql > rollback.sql` is a file the client runs.
    data["sql"] = plan.to_sql()
    return Outcome(data, data["sql"], notice=summary)


def cmd_rollback_execute(ctx: Context) -> Outcome:
    saved = _saved_plan(ctx)
    if isinstance(saved, Outcome):
        return saved
    backup_id = saved.backup_id if saved is not None else ctx.args.backup_id
    dsn, name = _saved_target(ctx, saved) if saved is not None else _target(ctx, backup_id)
    validation = ctx.config.backup.validation
    if validation.enabled and validation.validate_on_restore:
        with ctx.console.activity(f"Validating {backup_id}"):
            result = Validator(ctx.store).validate(backup_id)
        if not result.valid:
            what = "a damaged backup" if result.damaged else "a backup that cannot be checked"
            return Outcome({"backup_id": backup_id, "executed": False, "validation": reports.result_dict(result)},
                           _validation_text(result), _failed_check(result),
                           f"refusing to roll back to {what}: {_failure(result)}")
    planner = _planner(ctx)
    plan = _plan_to_run(ctx, planner, dsn, name, saved)
    # A saved plan runs as reviewed (a --disable-fk-checks it lacks was refused above).
    disable_fk_checks = saved.disable_fk_checks if saved is not None else bool(ctx.args.disable_fk_checks)
    ctx.note(steps=len(plan.steps), destructive=len(plan.destructive_steps), dry_run=ctx.args.dry_run)
    loading = [f"--{flag}" for flag, value in (("parallel", ctx.args.parallel), ("batch-size", ctx.args.batch_size))
               if value is not None]
    unused = None
    if loading and not any(step.is_data for step in plan.steps):
        # Said, not refused: a script passes the same flags whatever the backup holds.
        unused = (f"{' and '.join(loading)}: no data to load (backup {backup_id} holds the schema only, or the "
                  "plan needs none of its data), so they change nothing")
    if plan.is_empty:
        return Outcome({"backup_id": backup_id, "database": name, "executed": False, "plan": plan.to_dict(),
                        "result": None}, plan.summary(), notice=unused)
    if not ctx.json:
        ctx.console.out(plan.summary())
    force = bool(ctx.args.force)
    if not ctx.args.dry_run:
        ctx.console.confirm(
            f"Run {len(plan.steps)} step(s), {len(plan.destructive_steps)} destructive, on database {name}?",
            force=force, action=f"roll {name} back to {backup_id}")
        if validation.enabled and validation.dry_run_validation:
            planner.execute(dsn, plan, dry_run=True, disable_fk_checks=disable_fk_checks, force=force,
                            destructive_confirmed=True)
    steps = 0 if ctx.args.dry_run else len(plan.steps)
    with ctx.console.progress(steps, "Rolling back") as bar:
        executed = planner.execute(
            dsn, plan, dry_run=ctx.args.dry_run, disable_fk_checks=disable_fk_checks, force=force,
            destructive_confirmed=True,  # the prompt above showed the steps, and the person said yes
            load_method=ctx.args.load_method, batch_size=ctx.args.batch_size or 1000,
            parallel=_parallel(ctx),
            progress=lambda number, total, step: bar.update(number - 1, f"{step.phase} {step.object_name}"),
            data_progress=lambda update: _rows_restored(bar, update))
        bar.update(steps)
    outcome = executed.to_dict()
    ctx.note(steps_run=executed.steps_run, verified=executed.verified,
             pre_rollback_backup_id=executed.pre_rollback_backup_id)
    data = {"backup_id": backup_id, "database": name, "executed": not executed.dry_run, "plan": plan.to_dict(),
            "result": outcome}
    if saved is not None:
        data["plan_file"] = saved.name
    if executed.dry_run:
        what = f"the saved plan {saved.name}" if saved is not None else "the plan"
        return Outcome(data, f"Dry run: {what} of {len(plan.steps)} step(s) is current; nothing was changed",
                       notice=unused)
    text = (f"Rolled {name} back to {backup_id}: {executed.steps_run} step(s) run; "
            f"{'the schema now matches the backup' if executed.verified else 'the schema STILL DIFFERS'}"
            + (f"; the state before is saved as backup {executed.pre_rollback_backup_id}"
               if executed.pre_rollback_backup_id else ""))
    if not executed.verified:
        return Outcome(data, text, ExitCode.VALIDATION,
                       f"rollback ran but the schema of {name} still differs from backup {backup_id}; "
                       "run `rollback compare`", notice=unused)
    return Outcome(data, text, notice=unused)


def _plan_to_run(ctx: Context, planner: RollbackPlanner, dsn: str, name: str, saved: SavedPlan | None
                 ) -> RollbackPlan:
    """A plan made now, or the saved one proven current (made again, equal step for step)."""
    rehearse = not ctx.args.no_rehearsal
    if saved is not None:
        with ctx.console.activity(f"Checking {saved.name} against the backup and the live schema"):
            return planner.current_plan(dsn, saved, rehearse=rehearse)
    with ctx.console.activity("Planning"):
        return planner.plan(dsn, ctx.args.backup_id, database=name,
                            target_database=ctx.args.target_database, rehearse=rehearse, resume=not ctx.args.no_resume)


def _saved_plan(ctx: Context) -> SavedPlan | Outcome | None:
    """The --plan-file's plan, checked against the flags given with it (a usage Outcome when they disagree)."""
    path, asked = ctx.args.plan_file, ctx.args.backup_id
    if path is None:
        if asked is None:
            return Outcome({"backup_id": None}, "", ExitCode.USAGE,
                           "name the backup to roll back to with --backup-id ID, or a saved plan with --plan-file FILE")
        return None
    from schemasync_backup.rollback.plan_file import SavedPlan

    saved = SavedPlan.read(path)
    plan = saved.plan
    ctx.note(plan_file=path, backup_id=plan.backup_id, database=plan.database)
    given = (("--backup-id", asked, plan.backup_id), ("--database", ctx.args.database, plan.database),
             ("--target-database", ctx.args.target_database, plan.database))
    wrong = [f"{flag} {value}" for flag, value, planned in given if value is not None and value != planned]
    if ctx.args.disable_fk_checks and not saved.disable_fk_checks:
        wrong.append("--disable-fk-checks (the plan was saved to run with foreign key checks on)")
    if wrong:
        return Outcome({"backup_id": plan.backup_id, "plan_file": path, "executed": False}, "", ExitCode.USAGE,
                       f"{', '.join(wrong)} disagree with plan file {path}, a plan of database {plan.database} for "
                       f"backup {plan.backup_id}: drop them, or make the plan you mean with `rollback plan "
                       f"--backup-id ID --output {path}` and review it")
    return saved


def _saved_target(ctx: Context, saved: SavedPlan) -> tuple[str, str]:
    """The DSN of the database a saved plan changes: the one it was planned for."""
    name = saved.plan.database
    ctx.note(backup_id=saved.backup_id, database=name)
    return ctx.config.database.to_dsn(name), name


def _rows_restored(bar: ProgressBar, update: ProgressUpdate) -> None:
    """The rows the data steps put back so far, on the bar of the steps, and on it once it is finished."""
    bar.summary = (f"{update.rows_done:,} rows restored, {human_size(update.bytes_done)}/"
                   f"{human_size(update.bytes_total)}")
    bar.update(bar.done, bar.summary)


def _parallel(ctx: Context) -> int:
    """--parallel N, bare --parallel (0: the library picks), else the configured workers
    (backup.max_workers, or 1 with backup.parallel_operations false)."""
    from schemasync_backup.rollback.data_restore import default_parallel

    asked, backup = ctx.args.parallel, ctx.config.backup
    if asked is None:
        return backup.workers
    return asked or default_parallel(backup.max_workers)


def cmd_rollback_validate(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    dsn, name = _target(ctx, backup_id)
    with StageBars(ctx.console, "Comparing") as bars:
        result = _planner(ctx).validate(dsn, backup_id, database=name, target_database=ctx.args.target_database,
                                        data=not ctx.args.no_data, progress=bars.update)
    ctx.note(matches=result.matches, data_matches=result.data_matches)
    data_line = "" if result.data is None else f"\n{result.data}"
    if result.matches:
        text = f"{name} matches backup {backup_id} (schema hash {result.live_hash[:16]}...){data_line}"
        if result.data is not None and not result.data.equal:
            differing = ", ".join(check.table for check in result.data.differing)
            return Outcome(result.to_dict(), text, ExitCode.VALIDATION,
                           f"rollback validation failed: the data of {name} differs from backup {backup_id} in "
                           f"table(s) {differing}")
        return Outcome(result.to_dict(), text)
    changes = len(result.differences.changes)
    listing = result.differences.listing()
    return Outcome(result.to_dict(), f"{name} differs from backup {backup_id}:\n{listing}{data_line}",
                   ExitCode.VALIDATION, f"rollback validation failed: {name} differs from backup {backup_id} in "
                   f"{changes} object(s); `rollback compare` shows them")


def cmd_rollback_compare(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    dsn, name = _target(ctx, backup_id)
    with ctx.console.activity("Comparing"):
        differences = _planner(ctx).compare(dsn, backup_id, database=name, target_database=ctx.args.target_database)
    ctx.note(changes=len(differences.changes))
    text = (f"{name} is identical to backup {backup_id}" if differences.is_empty else
            f"from live {name} (a) to backup {backup_id} (b):\n{differences.listing()}")
    return Outcome(differences.to_dict(), text)


def cmd_rollback_recovery_info(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    info = _planner(ctx).recovery_info(backup_id)
    ctx.note(ran=info.ran)
    return Outcome(info.to_dict(), str(info))


def cmd_rollback_manual_steps(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    planner = _planner(ctx)
    info = planner.recovery_info(backup_id)
    ctx.note(ran=info.ran)
    if not info.ran:
        return Outcome({"backup_id": backup_id, "ran": False, "steps": [], "summary": str(info)}, str(info))
    steps = planner.manual_steps(backup_id)
    text = "\n\n".join(f"-- step {index}\n{sql};" for index, sql in enumerate(steps, start=1)) or "nothing left to run"
    return Outcome({"backup_id": backup_id, "ran": True, "steps": steps, "summary": text}, text)


def cmd_test_connection(ctx: Context) -> Outcome:
    name = ctx.database(required=False)
    ctx.note(database=name)
    return _checks_outcome([health.check_database(ctx.config.database.to_dsn(name))], "database test failed",
                           ExitCode.ERROR)
