"""`backup ...`: create, list, info, validate, recover, delete, move, keys, checks and reports."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from schemasync_backup.cli import health, reports
from schemasync_backup.cli.config import (
    ConfigError,
    open_store,
    redacted,
    storage_keys,
)
from schemasync_backup.cli.console import ConfirmationRefused, StageBars, human_size, key_values, table
from schemasync_backup.cli.context import Context, ExitCode, Outcome
from schemasync_backup.cli.render import (
    _backup_rows,
    _checks_outcome,
    _failed_check,
    _failure,
    _info_dict,
    _kinds,
    _tags,
    _validation_text,
    _when,
    _yaml_dump,
)
from schemasync_backup.formats.manifest import Status
from schemasync_backup.validate.validator import ValidationResult, Validator

# --- backup commands ------------------------------------------------------------------------------------


def cmd_backup_create(ctx: Context) -> Outcome:
    database = ctx.database()
    assert database is not None
    if _data_request(ctx) == "at-risk" and ctx.args.migration is None:
        return Outcome({"backup_id": None}, "", ExitCode.USAGE,
                       "--data at-risk backs up what a migration would destroy: name it with --migration FILE "
                       "(its SQL statements, or - for stdin)")
    from schemasync_backup.backup_job import create_backup
    from schemasync_backup.cli.config import retention_policy

    ctx.note(database=database)
    validation = ctx.config.backup.validation
    # The person asked for this backup, not for a question about others: the policy is the consent.
    policy = retention_policy(ctx.config.backup.retention) if ctx.config.backup.retention.get(
        "apply_on_create") else None
    with StageBars(ctx.console, f"Backing up {database}") as bars:
        job = create_backup(ctx.store, ctx.config.database.to_dsn(database), database,
                            validate=validation.enabled and validation.validate_on_create, retention=policy,
                            allow_concurrent=ctx.args.force, description=ctx.args.description,
                            tags=dict(tag.split("=", 1) for tag in ctx.args.tag), data=_data_request(ctx),
                            migration=_migration(ctx), max_workers=ctx.config.backup.workers, progress=bars.update,
                            parallel=ctx.config.backup.parallel_operations)
    info, result = job.info, job.validation
    ctx.note(backup_id=info.id, raw_size=info.raw_size, stored_size=info.stored_size, compression=info.compression,
             encryption=info.encryption or "none")
    if result is not None:
        ctx.note(valid=result.valid)
    data = {"backup_id": info.id, **_info_dict(info),
            "validation": reports.result_dict(result) if result is not None else None,
            "retention": job.retention.to_dict() if job.retention is not None else None}
    text = (f"Created backup {info.id} of {database} ({info.data or 'schema only'}): {human_size(info.raw_size)}, "
            f"{human_size(info.stored_size)} stored ({info.compression}"
            f"{', ' + info.encryption + ' ' + (info.key_id or '') if info.encryption else ', not encrypted'})")
    if result is not None:
        text += "\n" + _validation_text(result)
        if not result.valid:
            return Outcome(data, text, _failed_check(result), _failure(result))
    if job.retention is not None:
        text += f"\nretention: {len(job.retention.kept)} kept, {len(job.retention.removed)} removed"
    return Outcome(data, text)


def _data_request(ctx: Context) -> str | list[str]:
    """--data (else backup.data): none, all, at-risk, or table names separated by commas."""
    asked = ctx.args.data or ctx.config.backup.data
    return asked if asked in ("none", "all", "at-risk") else [name.strip() for name in asked.split(",") if name.strip()]


def _migration(ctx: Context) -> str | None:
    """The migration's SQL for --data at-risk: --migration FILE, or - for stdin."""
    path = ctx.args.migration
    if path is None:
        return None
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def cmd_backup_list(ctx: Context) -> Outcome:
    args = ctx.args
    status = None if args.status in (None, "ALL") else args.status
    backups = ctx.store.list(database=args.database, status=status, tags=args.tag or None,
                             created_after=args.created_after, created_before=args.created_before, limit=args.limit)
    ctx.note(count=len(backups))
    return Outcome([_info_dict(info) for info in backups], _backup_rows(backups))


def cmd_backup_info(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    found = ctx.store.manifest(backup_id, verify=False)
    info = found.info
    checksum_valid = found.checksum_valid
    stats = reports.backup_stats(ctx.store, backup_id)
    data = {**_info_dict(info), "manifest_checksum_valid": checksum_valid, "objects": stats["objects"],
            "schema_objects": stats["schema_objects"]}
    pairs: list[tuple[str, Any]] = [
        ("id", info.id), ("database", info.database), ("status", info.status), ("created", info.created_at),
        ("created by", info.created_by), ("description", info.description), ("tags", _tags(info.tags)),
        ("schema hash", info.schema_hash), ("size", f"{human_size(info.raw_size)} raw, "
                                                  f"{human_size(info.stored_size)} stored ({info.compression})"),
        ("data", str(info.data) if info.data is not None else "schema only"),
        ("encryption", f"{info.encryption} with key {info.key_id}" if info.encryption else "none"),
        ("manifest checksum", info.checksum + ("" if checksum_valid else "  (DOES NOT MATCH the manifest)")),
        ("contents", _kinds(stats["schema_objects"])),
        ("tool version", info.tool_version), ("pinned", "yes" if info.pinned else "no"),
    ]
    if info.migration_context is not None:
        pairs.append(("migration", json.dumps(attrs.asdict(info.migration_context))))
    return Outcome(data, key_values(pairs))


def cmd_backup_stats(ctx: Context) -> Outcome:
    if ctx.args.backup_id:
        ctx.note(backup_id=ctx.args.backup_id)
        stats = reports.backup_stats(ctx.store, ctx.args.backup_id)
        pairs = [(key.replace("_", " "), human_size(value) if key.endswith("_size") else value)
                 for key, value in stats.items() if key != "schema_objects"]
        pairs.append(("schema objects", _kinds(stats["schema_objects"])))
        return Outcome(stats, key_values(pairs))
    totals = reports.store_stats(ctx.store.list(database=ctx.args.database))
    lines = [key_values([
        ("backups", totals["backup_count"]), ("raw size", human_size(totals["raw_size"])),
        ("stored size", human_size(totals["stored_size"])), ("compression ratio", totals["compression_ratio"]),
        ("by status", ", ".join(f"{count} {status}" for status, count in totals["by_status"].items()) or "-"),
    ])]
    if totals["by_database"]:
        lines.append("")
        lines.append(table([(name, entry["backup_count"], human_size(entry["stored_size"]), _when(entry["newest"]),
                             _when(entry["oldest"])) for name, entry in totals["by_database"].items()],
                           ("DATABASE", "BACKUPS", "STORED", "NEWEST", "OLDEST")))
    return Outcome(totals, "\n".join(lines))


def cmd_backup_validate(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    with StageBars(ctx.console, f"Validating {backup_id}") as bars:
        result = Validator(ctx.store).validate(backup_id, progress=bars.update)
    ctx.note(valid=result.valid, bytes_checked=result.bytes_checked, parse_checked=result.parse_checked,
             parse_failed=result.parse_failed)
    text = _validation_text(result, verbose=ctx.args.verbose)
    if not result.valid:
        return Outcome(reports.result_dict(result), text, _failed_check(result), _failure(result))
    return Outcome(reports.result_dict(result), text)


def cmd_backup_restore_test(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id, scratch="given" if ctx.args.scratch_dsn else "configured server")
    # The configured server by default: the restore goes to a throwaway database the test drops.
    scratch = ctx.args.scratch_dsn or ctx.config.database.to_dsn()
    with StageBars(ctx.console, "Restore test") as bars:
        result = Validator(ctx.store).restore_test(backup_id, scratch, progress=bars.update)
    ctx.note(passed=result.passed, statements=result.statements, rows=result.rows)
    data = attrs.asdict(result)
    done = (f"{result.statements} statement(s)"
            + (f", {result.rows} row(s) in {result.chunks_verified} chunk(s) verified" if result.chunks_verified
               else ""))
    if result.passed:
        return Outcome(data, f"Restore test of {backup_id} passed: {done} rebuilt its schema (hash "
                             f"{result.expected_hash[:16]}...) in {result.scratch_database}, dropped since")
    text = (f"Restore test of {backup_id} FAILED: {done} rebuilt a schema of hash {result.restored_hash[:16]}..., "
            f"the backup's is {result.expected_hash[:16]}...")
    return Outcome(data, text, ExitCode.VALIDATION,
                   f"restore test failed: the schema restored from {backup_id} differs from the backup's")


def _run_many(ctx: Context, check: Callable[[str], ValidationResult], ids: list[str], label: str,
              timeout: float | None, *, verbose: bool = False) -> Outcome:
    with ctx.console.progress(len(ids), label) as bar:
        run = reports.validate_many(check, ids, timeout=timeout,
                                    progress=lambda done, total, backup_id: bar.update(done, backup_id))
    ctx.note(checked=len(run.results), invalid=len(run.invalid), skipped=len(run.skipped))
    lines = [_validation_text(result, verbose=verbose) for result in run.results]
    lines.append(f"{len(run.results)} checked, {len(run.results) - len(run.invalid)} valid, {len(run.invalid)} "
                 f"invalid" + (f", {len(run.skipped)} skipped (validation_timeout reached)" if run.skipped else ""))
    if run.invalid:
        first = run.invalid[0]
        more = f" (and {len(run.invalid) - 1} more invalid backups)" if len(run.invalid) > 1 else ""
        code = ExitCode.VALIDATION if any(result.damaged for result in run.invalid) else ExitCode.ERROR
        return Outcome(run.to_dict(), "\n".join(lines), code, f"{first.backup_id}: {_failure(first)}{more}")
    if run.skipped:
        return Outcome(run.to_dict(), "\n".join(lines), ExitCode.VALIDATION,
                       f"validation_timeout reached: {len(run.skipped)} backups were not checked")
    return Outcome(run.to_dict(), "\n".join(lines))


def _checkable(ctx: Context, database: str | None = None) -> list[str]:
    return [info.id for info in ctx.store.list(database=database) if info.status != Status.CREATING]


def cmd_backup_validate_all(ctx: Context) -> Outcome:
    ids = _checkable(ctx, ctx.args.database)
    return _run_many(ctx, Validator(ctx.store).validate, ids, "Validating",
                     ctx.config.backup.validation.validation_timeout, verbose=ctx.args.verbose)


def cmd_backup_integrity_check(ctx: Context) -> Outcome:
    if ctx.args.backup_id:
        ctx.note(backup_id=ctx.args.backup_id)
        ctx.store.manifest(ctx.args.backup_id, verify=False)
        ids = [ctx.args.backup_id]
    else:
        ids = _checkable(ctx)
    return _run_many(ctx, Validator(ctx.store).integrity_check, ids, "Checking", None)


def cmd_backup_recalculate(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    ctx.store.manifest(backup_id, verify=False)
    ctx.console.confirm(f"Rewrite the recorded checksums of {backup_id} from its objects (each must prove intact)?",
                        force=ctx.args.force, action=f"recalculate the checksums of {backup_id}")
    checksum = Validator(ctx.store).recalculate_checksum(backup_id)
    return Outcome({"backup_id": backup_id, "checksum": checksum},
                   f"Recalculated the checksums of {backup_id}: manifest checksum {checksum}")


def cmd_backup_partial_recovery(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    with StageBars(ctx.console, "Recovering") as bars:
        report = Validator(ctx.store).partial_recovery(backup_id, progress=bars.update)
    ctx.note(new_backup_id=report.new_backup_id, recovered=len(report.recovered), lost=len(report.lost))
    lines = [f"Saved {len(report.recovered)} intact schema objects of {backup_id} as backup {report.new_backup_id}"]
    if report.lost:
        lines.append(f"lost ({len(report.lost)}): " + ", ".join(report.lost))
    return Outcome(attrs.asdict(report), "\n".join(lines))


def cmd_backup_recovery_scan(ctx: Context) -> Outcome:
    with StageBars(ctx.console, "Scanning") as bars:
        entries = Validator(ctx.store).recovery_scan(progress=bars.update)
    problems = [entry for entry in entries if entry.kind in ("incomplete", "damaged")]
    ctx.note(found=len(entries), problems=len(problems))
    data = [attrs.asdict(entry) for entry in entries]
    text = table([(entry.kind, entry.backup_id or "-", "yes" if entry.recoverable else "no", entry.detail)
                  for entry in entries], ("KIND", "BACKUP", "RECOVERABLE", "DETAIL")) if entries else "nothing found"
    if problems:
        return Outcome(data, text, ExitCode.VALIDATION,
                       f"recovery scan found {len(problems)} incomplete or damaged backup(s)")
    return Outcome(data, text)


def cmd_backup_delete(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    info = ctx.store.manifest(backup_id, verify=False).info
    ctx.console.confirm(f"Delete backup {backup_id} of {info.database} ({_when(info.created_at)})? "
                        "This cannot be undone.", force=ctx.args.force, action=f"delete backup {backup_id}")
    ctx.store.delete(backup_id)
    return Outcome({"deleted": backup_id, "backup_id": backup_id}, f"Deleted backup {backup_id}")


def cmd_backup_rotate_key(ctx: Context) -> Outcome:
    writer = ctx.store.keyring.writer
    if writer is None:
        return Outcome({"rotated": []}, "", ExitCode.USAGE,
                       "encryption is not configured: set backup.encryption first")
    ctx.console.confirm(f"Re-encrypt every backup under key {writer.key_id}?", force=ctx.args.force,
                        action="rotate the encryption key")
    rotated = ctx.store.rotate_key()
    ctx.note(key_id=writer.key_id, rotated=len(rotated))
    return Outcome({"key_id": writer.key_id, "rotated": rotated},
                   f"Re-encrypted {len(rotated)} backup(s) under key {writer.key_id}")


def cmd_backup_export(ctx: Context) -> Outcome:
    backup_id, output = ctx.args.backup_id, Path(ctx.args.output)
    ctx.note(backup_id=backup_id, output=str(output))
    if output.exists() and not ctx.args.force:
        raise ConfirmationRefused(f"refusing to overwrite {output}: it exists; pass --force")
    with StageBars(ctx.console, "Exporting") as bars:
        ctx.store.export(backup_id, output, progress=bars.update)
    size = output.stat().st_size
    ctx.note(size=size)
    return Outcome({"backup_id": backup_id, "output": str(output), "size": size},
                   f"Exported {backup_id} to {output} ({human_size(size)})")


def cmd_backup_import(ctx: Context) -> Outcome:
    path = ctx.args.file
    ctx.note(file=path)
    with StageBars(ctx.console, "Importing") as bars:
        info = ctx.store.import_archive(path, progress=bars.update)
    ctx.note(backup_id=info.id, stored_size=info.stored_size)
    return Outcome({"backup_id": info.id, **_info_dict(info)}, f"Imported backup {info.id} of {info.database}")


def cmd_backup_move(ctx: Context) -> Outcome:
    destination = ctx.args.destination
    ctx.note(destination=destination)
    ids = [ctx.args.backup_id] if ctx.args.backup_id else _checkable(ctx)
    if ctx.args.backup_id:
        ctx.store.manifest(ctx.args.backup_id, verify=False)
    if not ids:
        return Outcome({"moved": [], "destination": destination}, "no backups to move")
    target = ctx.other_store(destination)
    if target.url == ctx.store.url:
        raise ConfigError([f"--destination {destination} is the configured store itself"])
    ctx.console.confirm(f"Move {len(ids)} backup(s) to {target.url}? They are deleted here once each copy verifies.",
                        force=ctx.args.force, action=f"move {len(ids)} backup(s)")
    moved = []
    # Only a person watching sees the bytes: the sizes cost a manifest read per backup.
    total_bytes = sum(ctx.store.get(backup_id).stored_size for backup_id in ids) if ctx.console.interactive else None
    with ctx.console.progress(len(ids), "Moving", total_bytes=total_bytes) as bar:
        for backup_id in ids:
            copied = ctx.store.move_to(target, backup_id)
            moved.append(backup_id)
            bar.advance(note=backup_id, nbytes=copied.stored_size)
    ctx.note(moved=len(moved))
    keys = storage_keys(target.url)
    storage = ctx.config.backup.storage
    settings = ", ".join(f"{key}: {value}" for key, value in keys.items() if value)
    credentials = "" if keys["backup.storage.provider"] == storage.provider else " with that provider's credentials"
    stale_url = " and remove backup.storage.url" if storage.url and "backup.storage.url" not in keys else ""
    where = (f"set {settings}{stale_url} in {ctx.config.source}{credentials}, or the next commands look in "
             f"{ctx.store.url}")
    return Outcome({"moved": moved, "destination": target.url, "config": keys},
                   f"Moved {len(moved)} backup(s) to {target.url}\nBackups now live at {target.url}: {where}")


def cmd_backup_test_encryption(ctx: Context) -> Outcome:
    if ctx.args.backup_id:
        backup_id = ctx.args.backup_id
        ctx.note(backup_id=backup_id)
        check = Validator(ctx.store).test_encryption(backup_id)
        data = attrs.asdict(check)
        text = f"{backup_id}: {check.message}"
        if not check.opens:
            # A key that is not configured is a failure to read (1); one that is, yet fails, is damage (3).
            code = ExitCode.VALIDATION if check.key_configured else ExitCode.ERROR
            return Outcome(data, text, code, f"backup {backup_id} does not open: {check.message}")
        return Outcome(data, text)
    store = open_store(ctx.config, keys=False)
    checks = health.check_keys(ctx.config, store)
    return _checks_outcome(checks, "encryption check failed", ExitCode.ERROR)  # keys missing: nothing is damaged


def cmd_backup_test_connection(ctx: Context) -> Outcome:
    store = open_store(ctx.config, keys=False)
    ctx.note(storage=store.url)
    return _checks_outcome([health.check_storage(store)], "storage test failed", ExitCode.ERROR)


def cmd_backup_validate_config(ctx: Context) -> Outcome:
    try:
        config = ctx.config
    except ConfigError as exc:
        text = f"{exc.source or 'configuration'}: {len(exc.problems)} problem(s)\n" + "\n".join(
            f"  {problem}" for problem in exc.problems)
        return Outcome({"valid": False, "source": exc.source, "problems": exc.problems, "warnings": []}, text,
                       ExitCode.USAGE, exc.message)
    warnings = [check.message for check in health.check_keys(config, None) if check.status != health.OK]
    document = redacted(config)
    text = "\n".join([f"{config.source}: valid", *(f"warning: {warning}" for warning in warnings), "",
                      _yaml_dump(document)])
    return Outcome({"valid": True, "source": config.source, "problems": [], "warnings": warnings,
                    "config": document}, text)


def cmd_backup_health_check(ctx: Context) -> Outcome:
    database = ctx.database(required=False)
    with ctx.console.activity("Checking"):
        report = health.health_check(ctx.config, database=database, max_age=timedelta(seconds=ctx.args.max_age),
                                     require_rollback=ctx.args.require_rollback)
    ctx.note(status=report.status, database=database)
    text = "\n".join([*(f"{check.status.upper():<8} {check.name}: {check.message}" for check in report.checks),
                      f"overall: {report.status}"])
    if not report.healthy:
        message = health.summarize([check for check in report.checks if check.status == health.ERROR])
        ctx.notify("health_check.failed", {"message": message, "checks": report.to_dict()["checks"]})
        return Outcome(report.to_dict(), text, ExitCode.VALIDATION, f"health check failed: {message}")
    return Outcome(report.to_dict(), text)


def cmd_backup_report(ctx: Context) -> Outcome:
    database = ctx.args.database
    backups = ctx.store.list(database=database)
    with ctx.console.progress(len([b for b in backups if b.status != Status.CREATING]), "Checking") as bar:
        document = reports.backup_report(ctx.store, database=database,
                                         progress=lambda done, total, backup_id: bar.update(done, backup_id))
    summary = document["summary"]
    ctx.note(backups=summary["backup_count"], damaged=summary["damaged"])
    text = (f"{summary['backup_count']} backups, {human_size(summary['stored_size'])} stored, "
            f"{summary['intact']} intact, {summary['damaged']} damaged")
    if ctx.args.output:
        output = Path(ctx.args.output)
        output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return Outcome({"output": str(output), "summary": summary}, f"{text}\nReport written to {output}")
    return Outcome(document, text)
