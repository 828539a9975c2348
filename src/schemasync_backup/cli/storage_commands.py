"""`backup cleanup` and `backup storage-*`: retention and storage maintenance."""

from __future__ import annotations

from schemasync_backup.cli.console import human_size, key_values
from schemasync_backup.cli.context import Context, ExitCode, Outcome
from schemasync_backup.cli.render import _dicts_table, _retention_text


def _apply_retention(ctx: Context, *, database: str | None, dry_run: bool, force: bool) -> Outcome:
    from schemasync_backup.cli.config import retention_policy

    store = ctx.store
    policy = retention_policy(ctx.config.backup.retention)
    plan = store.apply_retention(policy, dry_run=True, database=database)
    ctx.note(keep=len(plan.kept), remove=len(plan.to_remove), dry_run=dry_run)
    if dry_run or not plan.to_remove:
        return Outcome(plan.to_dict(), _retention_text(plan))
    ctx.console.confirm(f"Remove {len(plan.to_remove)} backup(s) the retention policy does not keep?",
                        force=force, action=f"remove {len(plan.to_remove)} backup(s)")
    done = store.apply_retention(policy, dry_run=False, database=database, confirmed=plan)
    ctx.note(removed=len(done.removed))
    return Outcome(done.to_dict(), _retention_text(done))


def cmd_backup_cleanup(ctx: Context) -> Outcome:
    return _apply_retention(ctx, database=ctx.args.database, dry_run=ctx.args.dry_run, force=ctx.args.force)


def cmd_backup_storage_usage(ctx: Context) -> Outcome:
    report = ctx.store.usage(detailed=ctx.args.detailed).to_dict()
    ctx.note(backups=report["backup_count"], total_size_gb=report["total_size_gb"])
    lines = [key_values([
        ("storage", report["url"]), ("backups", report["backup_count"]), ("databases", report["database_count"]),
        ("objects", report["object_count"]), ("stored", human_size(report["total_stored_bytes"])),
        ("raw (all backups)", human_size(report["total_raw_bytes"])),
        ("dedup savings", f"{human_size(report['dedup_savings_bytes'])} (ratio {report['dedup_ratio']})"),
        ("compression savings", human_size(report["compression_savings_bytes"])),
        ("unreferenced", human_size(report["unreferenced_bytes"])),
    ])]
    for key in ("databases", "backups"):
        if report.get(key):
            columns = [column for column in report[key][0] if not isinstance(report[key][0][column], list | dict)]
            lines += ["", _dicts_table(report[key], columns)]
    return Outcome(report, "\n".join(lines))


def cmd_backup_storage_health(ctx: Context) -> Outcome:
    report = ctx.store.health()
    data = report.to_dict()
    ctx.note(healthy=report.healthy)
    free = f"{human_size(report.free_bytes)} of {human_size(report.total_bytes)}" if report.free_bytes else "unknown"
    lines = [f"storage {report.url}: {'healthy' if report.healthy else 'UNHEALTHY'}",
             f"reachable: {'yes' if report.reachable else 'no'}; free space: {free}",
             *(f"error: {error}" for error in report.errors), *(f"warning: {warning}" for warning in report.warnings)]
    if not report.healthy:
        return Outcome(data, "\n".join(lines), ExitCode.VALIDATION, f"storage health check failed: {report.errors[0]}")
    return Outcome(data, "\n".join(lines))


def cmd_backup_storage_optimize(ctx: Context) -> Outcome:
    store = ctx.store
    with ctx.console.activity("Measuring"):
        plan = store.optimize(dry_run=True)
    ctx.note(improvable=len(plan.improvable), savings_bytes=plan.savings_bytes, dry_run=ctx.args.dry_run)
    summary = (f"{len(plan.improvable)} of {len(plan.objects)} object(s) shrink with {plan.codec}"
               f"{'' if plan.level is None else f' level {plan.level}'}: {human_size(plan.savings_bytes)} to save")
    if ctx.args.dry_run or not plan.improvable:
        return Outcome(plan.to_dict(), summary)
    ctx.console.confirm(f"Rewrite {len(plan.improvable)} object(s) in place?", force=ctx.args.force,
                        action=f"rewrite {len(plan.improvable)} object(s)")
    with ctx.console.activity("Re-compressing"):
        done = store.optimize(dry_run=False)
    return Outcome(done.to_dict(), f"Re-compressed {len(done.improvable)} object(s), saved "
                   f"{human_size(done.savings_bytes)}; {len(done.manifests_updated)} manifest(s) re-recorded")
