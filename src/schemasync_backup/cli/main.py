"""mysql-schema-sync: the reference command line, a thin consumer of the public API.

Parse arguments, load the configuration, call the library, render the result as a table for
people or as stable JSON for scripts (docs/cli.md documents every field and exit code). Every
feature with logic of its own lives in a library module (config, health, reports, notify,
logsetup); this module only wires them to argparse and to the terminal.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from schemasync_backup import __version__
from schemasync_backup.cli import health, logsetup, notify, reports
from schemasync_backup.cli.config import (
    Config,
    ConfigError,
    find_config_path,
    load_config,
    open_store,
    parse_duration,
    redacted,
)
from schemasync_backup.cli.console import ConfirmationRefused, Console, human_size, key_values, table
from schemasync_backup.errors import (
    BackupFormatError,
    BackupNotFoundError,
    ConcurrentCreateError,
    DatabaseMismatchError,
    IntegrityError,
    InvalidBackupIdError,
    InvalidInputError,
    InvalidSourceError,
    RollbackRefusedError,
    SchemaSyncBackupError,
)
from schemasync_backup.formats.manifest import BackupInfo, Status
from schemasync_backup.plugins.manager import Registry, default_registry
from schemasync_backup.validate.validator import BackupValidationError, ValidationResult, Validator

if TYPE_CHECKING:
    from schemasync_backup.rollback.planner import RollbackPlanner
    from schemasync_backup.store.store import BackupStore

PROG = "mysql-schema-sync"
HELP_WIDTH = 100


class ExitCode(enum.IntEnum):
    """The process exit status. Documented in docs/cli.md; scripts rely on these values."""

    OK = 0
    #: Something failed while running: database, storage, key, or an unexpected error.
    ERROR = 1
    #: The command line or the configuration is wrong.
    USAGE = 2
    #: A check failed: a backup is damaged, the schema differs, the health check found a problem.
    VALIDATION = 3
    #: Refused: not confirmed (or no terminal to ask and no --force), or the library refused to go on.
    REFUSED = 4
    #: No backup has the given id.
    NOT_FOUND = 5
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


@attrs.frozen
class Outcome:
    """What a command produced: JSON data, the text for people, the exit code and an error line."""

    data: Any
    text: str
    exit_code: int = ExitCode.OK
    error: str | None = None
    #: Text for people that goes to stderr, so that stdout holds only ``text`` (an SQL script).
    notice: str | None = None


# --- argument parsing ----------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        columns = shutil.get_terminal_size((HELP_WIDTH + 2, 24)).columns
        super().__init__(prog, width=min(HELP_WIDTH, columns - 2), max_help_position=32)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``Error:`` line and exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"Error: {message} (see `{self.prog} --help`)\n")


def _tag(text: str) -> str:
    if "=" not in text or not text.partition("=")[0]:
        raise argparse.ArgumentTypeError(f"invalid tag {text!r}: write key=value")
    return text


def _time(text: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-11-25 or 2026-11-25T14:00:00Z") from None
    return text


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every command takes. On subcommands their defaults are suppressed, so a value given before
    the command is not overwritten by the subcommand's default."""
    default: Any = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group = parser.add_argument_group("common options")
    group.add_argument("--config", metavar="PATH", default=default(None),
                       help="configuration file (default: $MYSQL_SCHEMA_SYNC_CONFIG, else ./config.yaml)")
    group.add_argument("--format", "--output-format", dest="format", choices=("table", "json"),
                       default=default("table"), help="output for people (table) or scripts (json)")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="log everything to stderr too and show tracebacks")


_EPILOG = """\
exit codes:
  0    success
  1    runtime error (database, storage, key, unexpected)
  2    usage or configuration error
  3    a check failed (damaged backup, schema differs, unhealthy)
  4    refused (not confirmed, or the library refused)
  5    no backup with that id
  130  interrupted

environment: MYSQL_SCHEMA_SYNC_CONFIG, MYSQL_SCHEMA_SYNC_DEBUG=true, MYSQL_SCHEMA_SYNC_LOG_LEVEL,
MYSQL_SCHEMA_SYNC_LOG_FILE; docs/cli.md is the full reference."""

Handler = Callable[["Context"], Outcome]


class _Commands:
    def __init__(self, group: argparse._SubParsersAction[Any], common: argparse.ArgumentParser, prefix: str) -> None:
        self.group = group
        self.common = common
        self.prefix = prefix

    def add(self, name: str, help_text: str, handler: Handler, *, backup_id: str | None = None,
            force: str | None = None, database: str | None = None) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.group.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
            parents=[self.common], formatter_class=_Formatter)
        parser.set_defaults(handler=handler, operation=f"{self.prefix}{name}")
        if backup_id == "required":
            parser.add_argument("--backup-id", required=True, metavar="ID", help="the backup")
        elif backup_id:
            parser.add_argument("--backup-id", metavar="ID", help=backup_id)
        if database:
            parser.add_argument("--database", metavar="NAME", help=database)
        if force:
            parser.add_argument("--force", action="store_true", help=force)
        return parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _common(common, top=False)
    parser = _Parser(prog=PROG, formatter_class=_Formatter, epilog=_EPILOG,
                     description="Back up MySQL/MariaDB schemas and roll them back.")
    _common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True, parser_class=_Parser)
    _backup_commands(groups, common)
    _rollback_commands(groups, common)
    return parser


def _backup_commands(groups: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    backup = groups.add_parser("backup", help="create, list, check and manage backups", parents=[common],
                               formatter_class=_Formatter, description="Create, list, check and manage backups.")
    commands = _Commands(backup.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True,
                                               parser_class=_Parser), common, "backup.")
    create = commands.add("create", "capture the database's schema into a new backup", cmd_backup_create,
                          database="database to back up (default: database.database in the config)",
                          force="create even while another create of the database seems to be running")
    create.add_argument("--description", default="", help="free text stored with the backup")
    create.add_argument("--tag", action="append", type=_tag, default=[], metavar="KEY=VALUE",
                        help="a tag stored with the backup (repeatable)")
    listing = commands.add("list", "list backups, newest first", cmd_backup_list,
                           database="only backups of this database")
    listing.add_argument("--status", type=str.upper, metavar="STATUS",
                         choices=(Status.COMPLETED, Status.CREATING, Status.VALIDATING, Status.FAILED,
                                  Status.CORRUPTED, "ALL"),
                         help="only backups in this status: completed, creating, validating, failed, corrupted, all")
    listing.add_argument("--created-after", type=_time, metavar="TIME", help="only backups created at or after TIME")
    listing.add_argument("--created-before", type=_time, metavar="TIME", help="only backups created at or before TIME")
    listing.add_argument("--tag", action="append", default=[], metavar="KEY[=VALUE]",
                         help="only backups with this tag (repeatable; all must match)")
    listing.add_argument("--limit", type=_positive, metavar="N", help="at most N backups")
    commands.add("info", "show a backup's metadata and contents", cmd_backup_info, backup_id="required")
    commands.add("stats", "sizes and compression of one backup, or totals over all", cmd_backup_stats,
                 backup_id="one backup (default: totals over the store)", database="totals for this database only")
    commands.add("validate", "fully validate a backup: checksums, decryption, snapshot, DDL", cmd_backup_validate,
                 backup_id="required")
    commands.add("validate-all", "fully validate every backup", cmd_backup_validate_all,
                 database="only backups of this database")
    commands.add("integrity-check", "check stored bytes against the manifest (no key needed)",
                 cmd_backup_integrity_check, backup_id="one backup (default: all)")
    commands.add("recalculate-checksum", "re-record a backup's checksums from objects that prove intact",
                 cmd_backup_recalculate, backup_id="required", force="do not ask for confirmation")
    commands.add("partial-recovery", "save every intact schema object of a damaged backup as a new backup",
                 cmd_backup_partial_recovery, backup_id="required")
    commands.add("recovery-scan", "find incomplete and damaged backups and orphaned objects", cmd_backup_recovery_scan)
    commands.add("delete", "delete a backup", cmd_backup_delete, backup_id="required",
                 force="do not ask for confirmation")
    export = commands.add("export", "write a backup into a .tar.gz archive", cmd_backup_export,
                          backup_id="required", force="overwrite the output file")
    export.add_argument("--output", required=True, metavar="PATH", help="the archive to write")
    importer = commands.add("import", "import a backup from an archive written by export", cmd_backup_import)
    importer.add_argument("--file", required=True, metavar="PATH", help="the archive to read")
    move = commands.add("move", "move backups to another storage location, verifying each copy", cmd_backup_move,
                        backup_id="one backup (default: all)", force="do not ask for confirmation")
    move.add_argument("--destination", required=True, metavar="URL",
                      help="a path or fsspec URL (s3://, az://, gs://); same settings as the configured store")
    commands.add("test-encryption", "check that the configured keys open a backup", cmd_backup_test_encryption,
                 backup_id="the backup to open (default: the newest encrypted one)")
    commands.add("rotate-key", "re-encrypt every backup under the current key (older keys must still be "
                 "configured as previous keys)", cmd_backup_rotate_key, force="do not ask for confirmation")
    commands.add("test-connection", "check that the backup storage is reachable and writable",
                 cmd_backup_test_connection)
    commands.add("validate-config", "check the configuration file and show it with secrets redacted",
                 cmd_backup_validate_config)
    check = commands.add("health-check", "config, database, storage, keys and the last backup in one report",
                         cmd_backup_health_check, database="database whose last backup is checked")
    check.add_argument("--max-age", type=_duration, default=26 * 3600.0, metavar="DURATION",
                       help="the newest backup must be younger than this (default: 26h)")
    report = commands.add("report", "a JSON report of every backup with an integrity check", cmd_backup_report,
                          database="only backups of this database")
    report.add_argument("--output", metavar="PATH", help="write the JSON report here (default: print it)")
    cleanup = commands.add("cleanup", "remove the backups the retention policy does not keep, then prune",
                           cmd_backup_cleanup, database="only backups of this database",
                           force="do not ask for confirmation")
    cleanup.add_argument("--dry-run", action="store_true", help="show what would be kept and removed, remove nothing")
    usage = commands.add("storage-usage", "backup count, sizes, dedup and compression savings",
                         cmd_backup_storage_usage)
    usage.add_argument("--detailed", action="store_true", help="also list every backup")
    commands.add("storage-health", "probe the storage: reachability, free space, locks, incomplete backups",
                 cmd_backup_storage_health)
    optimize = commands.add("storage-optimize", "re-compress stored objects with the configured codec",
                            cmd_backup_storage_optimize, force="do not ask for confirmation")
    optimize.add_argument("--dry-run", action="store_true", help="show what it would save, change nothing")


def _target_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target-database", metavar="NAME",
                        help="allow a database other than the backup's: names it as the target (without it, "
                             "a --database or configured database that differs from the backup's is refused)")


def _rollback_commands(groups: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    rollback = groups.add_parser("rollback", help="plan, run and verify rollbacks to a backup", parents=[common],
                                 formatter_class=_Formatter,
                                 description="Plan, run and verify rollbacks to a backup's schema.")
    commands = _Commands(rollback.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True,
                                                 parser_class=_Parser), common, "rollback.")
    target = "target database (default: database.database in the config, else the backup's)"
    commands.add("list", "list the backups a rollback can go to", cmd_rollback_list,
                 database="only backups of this database (default: the configured one)")
    plan = commands.add("plan", "show the steps that would turn the live schema into the backup's",
                        cmd_rollback_plan, backup_id="required", database=target)
    _target_database_option(plan)
    plan.add_argument("--show-sql", action="store_true",
                      help="print the SQL script for the mysql client on stdout, the summary on stderr")
    execute = commands.add("execute", "roll the live schema back to the backup's", cmd_rollback_execute,
                           backup_id="required", database=target,
                           force="do not ask; also run destructive steps and past preflight problems")
    _target_database_option(execute)
    execute.add_argument("--dry-run", action="store_true", help="plan and check everything, change nothing")
    execute.add_argument("--disable-fk-checks", action="store_true",
                         help="SET FOREIGN_KEY_CHECKS=0 for the rollback's session")
    _target_database_option(commands.add("validate", "check that the live schema equals the backup's",
                                         cmd_rollback_validate, backup_id="required", database=target))
    _target_database_option(commands.add("compare", "show the differences between the live schema and the backup's",
                                         cmd_rollback_compare, backup_id="required", database=target))
    commands.add("recovery-info", "what the latest rollback to a backup did, and where it failed",
                 cmd_rollback_recovery_info, backup_id="required")
    commands.add("manual-steps", "the SQL a failed rollback still has to run", cmd_rollback_manual_steps,
                 backup_id="required")

    schema = groups.add_parser("schema", help="look at live schemas", parents=[common], formatter_class=_Formatter,
                               description="Look at live schemas.")
    commands = _Commands(schema.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True,
                                               parser_class=_Parser), common, "schema.")
    _target_database_option(commands.add("compare", "show the differences between the live schema and a backup's",
                                         cmd_rollback_compare, backup_id="required", database=target))

    connection = groups.add_parser("test-connection", help="check that the database server is reachable",
                                   parents=[common], formatter_class=_Formatter,
                                   description="Check that the database server is reachable.")
    connection.add_argument("--database", metavar="NAME", help="database to connect to (default: the configured one)")
    connection.set_defaults(handler=cmd_test_connection, operation="test-connection")


# --- the context a command runs in ----------------------------------------------------------------------


class Context:
    """The parsed arguments, the configuration and the store, loaded when a command first needs them."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self._config: Config | None = None
        self._store: BackupStore | None = None
        self.registry: Registry | None = None
        self.op: logsetup.Operation | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config_path(self.args.config))
        return self._config

    def scrub(self, text: str) -> str:
        return self._config.scrub(text) if self._config is not None else text

    def note(self, **fields: Any) -> None:
        """Add fields to the operation's log line."""
        if self.op is not None:
            self.op.update(**fields)

    def _registry(self) -> Registry:
        if self.registry is None:
            self.registry = default_registry()
            notify.install(self.registry, self.config.backup.notifications, self.config.scrub)
        return self.registry

    @property
    def store(self) -> BackupStore:
        if self._store is None:
            self._store = open_store(self.config, registry=self._registry())
            self.note(storage=self._store.url)
        return self._store

    def other_store(self, url: str) -> BackupStore:
        return open_store(self.config, url=url, registry=self._registry())

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        if self._config is not None:
            self._registry().notify(event, payload)

    def database(self, *, required: bool = True) -> str | None:
        name = self.config.database.database_name(getattr(self.args, "database", None))
        if name is None and required:
            raise ConfigError(["database.database: no database given; set it in the configuration or pass "
                               "--database NAME"], source=self.config.source)
        return name

    @property
    def json(self) -> bool:
        return bool(self.args.format == "json")


# --- rendering helpers ----------------------------------------------------------------------------------


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(tags.items()))


def _info_dict(info: BackupInfo) -> dict[str, Any]:
    return info.to_dict()


def _kinds(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "unknown (the index cannot be read)"
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def _backup_rows(backups: Sequence[BackupInfo]) -> str:
    if not backups:
        return "no backups"
    return table([(info.id, info.database, _when(info.created_at), info.status, human_size(info.stored_size),
                   "yes" if info.encryption else "no", _tags(info.tags), info.description) for info in backups],
                 ("ID", "DATABASE", "CREATED (UTC)", "STATUS", "SIZE", "ENCRYPTED", "TAGS", "DESCRIPTION"))


def _validation_text(result: ValidationResult) -> str:
    depth = "full" if result.deep else "integrity"
    verdict = "valid" if result.valid else "INVALID" if result.damaged else "NOT CHECKED"
    head = (f"{result.backup_id}: {verdict} ({depth} check, "
            f"{result.objects_checked} object(s), {human_size(result.bytes_checked)} checked)")
    lines = [head, *(f"  error: {finding}" for finding in result.errors),
             *(f"  warning: {finding}" for finding in result.warnings)]
    return "\n".join(lines)


def _failed_check(result: ValidationResult) -> ExitCode:
    """3 for proven damage; 1 when the check could not be made (a key is missing: nothing is damaged)."""
    return ExitCode.VALIDATION if result.damaged else ExitCode.ERROR


def _failure(result: ValidationResult) -> str | None:
    try:
        result.raise_for_errors()
    except BackupValidationError as exc:
        return exc.message
    return None


# --- backup commands ------------------------------------------------------------------------------------


def cmd_backup_create(ctx: Context) -> Outcome:
    database = ctx.database()
    assert database is not None
    from schemasync_backup.backup_job import create_backup
    from schemasync_backup.cli.config import retention_policy

    ctx.note(database=database)
    validation = ctx.config.backup.validation
    # The person asked for this backup, not for a question about others: the policy is the consent.
    policy = retention_policy(ctx.config.backup.retention) if ctx.config.backup.retention.get(
        "apply_on_create") else None
    with ctx.console.activity(f"Backing up {database}"):
        job = create_backup(ctx.store, ctx.config.database.to_dsn(database), database,
                            validate=validation.enabled and validation.validate_on_create, retention=policy,
                            allow_concurrent=ctx.args.force, description=ctx.args.description,
                            tags=dict(tag.split("=", 1) for tag in ctx.args.tag))
    info, result = job.info, job.validation
    ctx.note(backup_id=info.id, raw_size=info.raw_size, stored_size=info.stored_size, compression=info.compression,
             encryption=info.encryption or "none")
    if result is not None:
        ctx.note(valid=result.valid)
    data = {"backup_id": info.id, **_info_dict(info),
            "validation": reports.result_dict(result) if result is not None else None,
            "retention": job.retention.to_dict() if job.retention is not None else None}
    text = (f"Created backup {info.id} of {database}: {human_size(info.raw_size)} schema, "
            f"{human_size(info.stored_size)} stored ({info.compression}"
            f"{', ' + info.encryption + ' ' + (info.key_id or '') if info.encryption else ', not encrypted'})")
    if result is not None:
        text += "\n" + _validation_text(result)
        if not result.valid:
            return Outcome(data, text, _failed_check(result), _failure(result))
    if job.retention is not None:
        text += f"\nretention: {len(job.retention.kept)} kept, {len(job.retention.removed)} removed"
    return Outcome(data, text)


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
    with ctx.console.activity(f"Validating {backup_id}"):
        result = Validator(ctx.store).validate(backup_id)
    ctx.note(valid=result.valid, bytes_checked=result.bytes_checked)
    if not result.valid:
        return Outcome(reports.result_dict(result), _validation_text(result), _failed_check(result),
                       _failure(result))
    return Outcome(reports.result_dict(result), _validation_text(result))


def _run_many(ctx: Context, check: Callable[[str], ValidationResult], ids: list[str], label: str,
              timeout: float | None) -> Outcome:
    with ctx.console.progress(len(ids), label) as bar:
        run = reports.validate_many(check, ids, timeout=timeout,
                                    progress=lambda done, total, backup_id: bar.update(done, backup_id))
    ctx.note(checked=len(run.results), invalid=len(run.invalid), skipped=len(run.skipped))
    lines = [_validation_text(result) for result in run.results]
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
                     ctx.config.backup.validation.validation_timeout)


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
    with ctx.console.activity(f"Recovering {backup_id}"):
        report = Validator(ctx.store).partial_recovery(backup_id)
    ctx.note(new_backup_id=report.new_backup_id, recovered=len(report.recovered), lost=len(report.lost))
    lines = [f"Saved {len(report.recovered)} intact schema objects of {backup_id} as backup {report.new_backup_id}"]
    if report.lost:
        lines.append(f"lost ({len(report.lost)}): " + ", ".join(report.lost))
    return Outcome(attrs.asdict(report), "\n".join(lines))


def cmd_backup_recovery_scan(ctx: Context) -> Outcome:
    entries = Validator(ctx.store).recovery_scan()
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
    with ctx.console.activity(f"Exporting {backup_id}"):
        ctx.store.export(backup_id, output)
    size = output.stat().st_size
    ctx.note(size=size)
    return Outcome({"backup_id": backup_id, "output": str(output), "size": size},
                   f"Exported {backup_id} to {output} ({human_size(size)})")


def cmd_backup_import(ctx: Context) -> Outcome:
    path = ctx.args.file
    ctx.note(file=path)
    with ctx.console.activity(f"Importing {path}"):
        info = ctx.store.import_archive(path)
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
    return Outcome({"moved": moved, "destination": target.url}, f"Moved {len(moved)} backup(s) to {target.url}")


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


def _checks_outcome(checks: Sequence[health.Check], failure: str, code: int = ExitCode.VALIDATION) -> Outcome:
    text = "\n".join(f"{check.status.upper():<8} {check.name}: {check.message}" for check in checks)
    data = {"status": "error" if any(c.status == health.ERROR for c in checks) else "ok",
            "checks": [check.to_dict() for check in checks]}
    errors = [check for check in checks if check.status == health.ERROR]
    if errors:
        return Outcome(data, text, code, f"{failure}: {errors[0].message}")
    return Outcome(data, text)


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


def _yaml_dump(document: Any) -> str:
    import importlib

    text: str = importlib.import_module("yaml").safe_dump(document, sort_keys=False, default_flow_style=False)
    return text.rstrip()


def cmd_backup_health_check(ctx: Context) -> Outcome:
    database = ctx.database(required=False)
    with ctx.console.activity("Checking"):
        report = health.health_check(ctx.config, database=database, max_age=timedelta(seconds=ctx.args.max_age))
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


def _dicts_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    return table([[_cell(row.get(column)) for column in columns] for row in rows], [c.upper() for c in columns])


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return "-" if value is None else str(value)


def _retention_text(report: Any) -> str:
    data = report.to_dict()
    verb = "to remove" if report.dry_run else "removed"
    lines = [_dicts_table(data["decisions"], ("backup_id", "database", "created_at", "action", "rule"))
             if data["decisions"] else "no backups",
             f"{data['keep_count']} kept, {data['remove_count']} {verb}"]
    if report.prune is not None:
        pruned = report.prune.to_dict()
        lines.append("prune: " + ", ".join(f"{key}={value}" for key, value in pruned.items()
                                           if not isinstance(value, list | dict)))
    if report.prune_skipped:
        lines.append(f"prune skipped: {report.prune_skipped}")
    return "\n".join(lines)


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
    backup_id = ctx.args.backup_id
    dsn, name = _target(ctx, backup_id)
    with ctx.console.activity("Planning"):
        plan = _planner(ctx).plan(dsn, backup_id, database=name, target_database=ctx.args.target_database)
    ctx.note(steps=len(plan.steps), destructive=len(plan.destructive_steps))
    data = plan.to_dict()
    if not ctx.args.show_sql:
        return Outcome(data, plan.summary())
    # stdout is the script alone, so that `--show-sql > rollback.sql` is a file the client runs.
    data["sql"] = plan.to_sql()
    return Outcome(data, data["sql"], notice=plan.summary())


def cmd_rollback_execute(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    dsn, name = _target(ctx, backup_id)
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
    with ctx.console.activity("Planning"):
        plan = planner.plan(dsn, backup_id, database=name, target_database=ctx.args.target_database)
    ctx.note(steps=len(plan.steps), destructive=len(plan.destructive_steps), dry_run=ctx.args.dry_run)
    if plan.is_empty:
        return Outcome({"backup_id": backup_id, "database": name, "executed": False, "plan": plan.to_dict(),
                        "result": None}, plan.summary())
    if not ctx.json:
        ctx.console.out(plan.summary())
    force = bool(ctx.args.force)
    if not ctx.args.dry_run:
        ctx.console.confirm(
            f"Run {len(plan.steps)} step(s), {len(plan.destructive_steps)} destructive, on database {name}?",
            force=force, action=f"roll {name} back to {backup_id}")
        if validation.enabled and validation.dry_run_validation:
            planner.execute(dsn, plan, dry_run=True, disable_fk_checks=ctx.args.disable_fk_checks, force=force,
                            destructive_confirmed=True)
    steps = 0 if ctx.args.dry_run else len(plan.steps)
    with ctx.console.progress(steps, "Rolling back") as bar:
        executed = planner.execute(
            dsn, plan, dry_run=ctx.args.dry_run, disable_fk_checks=ctx.args.disable_fk_checks, force=force,
            destructive_confirmed=True,  # the prompt above showed the steps, and the person said yes
            progress=lambda number, total, step: bar.update(number - 1, f"{step.phase} {step.object_name}"))
        bar.update(steps)
    outcome = executed.to_dict()
    ctx.note(steps_run=executed.steps_run, verified=executed.verified,
             pre_rollback_backup_id=executed.pre_rollback_backup_id)
    data = {"backup_id": backup_id, "database": name, "executed": not executed.dry_run, "plan": plan.to_dict(),
            "result": outcome}
    if executed.dry_run:
        return Outcome(data, f"Dry run: the plan of {len(plan.steps)} step(s) is current; nothing was changed")
    text = (f"Rolled {name} back to {backup_id}: {executed.steps_run} step(s) run; "
            f"{'the schema now matches the backup' if executed.verified else 'the schema STILL DIFFERS'}"
            + (f"; the state before is saved as backup {executed.pre_rollback_backup_id}"
               if executed.pre_rollback_backup_id else ""))
    if not executed.verified:
        return Outcome(data, text, ExitCode.VALIDATION,
                       f"rollback ran but the schema of {name} still differs from backup {backup_id}; "
                       "run `rollback compare`")
    return Outcome(data, text)


def cmd_rollback_validate(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    dsn, name = _target(ctx, backup_id)
    with ctx.console.activity("Comparing"):
        result = _planner(ctx).validate(dsn, backup_id, database=name, target_database=ctx.args.target_database)
    ctx.note(matches=result.matches)
    if result.matches:
        return Outcome(result.to_dict(), f"{name} matches backup {backup_id} (schema hash {result.live_hash[:16]}...)")
    changes = len(result.differences.changes)
    return Outcome(result.to_dict(), f"{name} differs from backup {backup_id}:\n{result.differences}",
                   ExitCode.VALIDATION, f"rollback validation failed: {name} differs from backup {backup_id} in "
                   f"{changes} object(s); `rollback compare` shows them")


def cmd_rollback_compare(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    dsn, name = _target(ctx, backup_id)
    with ctx.console.activity("Comparing"):
        differences = _planner(ctx).compare(dsn, backup_id, database=name, target_database=ctx.args.target_database)
    ctx.note(changes=len(differences.changes))
    text = (f"{name} is identical to backup {backup_id}" if differences.is_empty else
            f"from live {name} (a) to backup {backup_id} (b):\n{differences}")
    return Outcome(differences.to_dict(), text)


def cmd_rollback_recovery_info(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    info = _planner(ctx).recovery_info(backup_id)
    return Outcome(info.to_dict(), str(info))


def cmd_rollback_manual_steps(ctx: Context) -> Outcome:
    backup_id = ctx.args.backup_id
    ctx.note(backup_id=backup_id)
    steps = _planner(ctx).manual_steps(backup_id)
    text = "\n\n".join(f"-- step {index}\n{sql};" for index, sql in enumerate(steps, start=1)) or "nothing left to run"
    return Outcome({"backup_id": backup_id, "steps": steps}, text)


def cmd_test_connection(ctx: Context) -> Outcome:
    name = ctx.database(required=False)
    ctx.note(database=name)
    return _checks_outcome([health.check_database(ctx.config.database.to_dsn(name))], "database test failed",
                           ExitCode.ERROR)


# --- main ----------------------------------------------------------------------------------------------


def classify(exc: BaseException) -> ExitCode:
    """The exit code an exception ends the process with."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, ConfigError | logsetup.LogSettingsError | InvalidSourceError | InvalidBackupIdError):
        return ExitCode.USAGE
    if isinstance(exc, DatabaseMismatchError):
        return ExitCode.USAGE
    if isinstance(exc, ConfirmationRefused | RollbackRefusedError | ConcurrentCreateError):
        return ExitCode.REFUSED
    if isinstance(exc, BackupNotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(exc, BackupValidationError | IntegrityError | BackupFormatError):
        return ExitCode.VALIDATION
    return ExitCode.ERROR


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, ConcurrentCreateError):
        return exc.message.replace("pass allow_concurrent=True", "pass --force")
    if isinstance(exc, BackupNotFoundError):
        # The library points Python callers at store.list(); people at a shell want the command.
        return exc.message.replace("list backups with store.list()", f"`{PROG} backup list` shows them")
    if isinstance(exc, SchemaSyncBackupError):
        return exc.message
    if isinstance(exc, ConfirmationRefused | logsetup.LogSettingsError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _setup_logging(ctx: Context, debug: bool, stderr: TextIO) -> logsetup.LogSetup:
    try:
        config: Config | None = ctx.config
    except ConfigError:
        config = None  # the command reports it; log with the defaults meanwhile
    settings = config.backup.logging if config is not None else None
    level = logsetup.resolve_level(debug, settings.level if settings else "info")
    file = None
    if settings is None or settings.file_logging:
        file = logsetup.choose_log_file(logsetup.log_file_candidates(settings.file if settings else None))
    return logsetup.configure(level=level, debug=debug, file=file, scrub=ctx.scrub, stderr=stderr)


@contextmanager
def _stdout_closed_ok() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:  # stdout closed early (| head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (see :class:`ExitCode`)."""
    out, err, inp = stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin
    parser = build_parser()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code or 0) if isinstance(exc.code, int) else ExitCode.USAGE
    debug = logsetup.debug_requested(args.debug)
    console = Console(out, err, inp, json=args.format == "json")
    ctx = Context(args, console)
    console.scrub = ctx.scrub  # labels, notes and questions reach the terminal scrubbed, like the results
    logs: logsetup.LogSetup | None = None
    try:
        logs = _setup_logging(ctx, debug, err)
        with logsetup.operation(args.operation, refused=(ConfirmationRefused, RollbackRefusedError)) as op:
            ctx.op = op
            outcome = args.handler(ctx)
            op.outcome = {ExitCode.OK: "ok", ExitCode.REFUSED: "refused"}.get(ExitCode(outcome.exit_code), "failed")
            if outcome.error:
                op.update(error=outcome.error)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if debug:
            err.write(ctx.scrub("".join(traceback.format_exception(exc))))
        err.write(f"Error: {ctx.scrub(_message(exc))}\n")
        err.flush()
        return classify(exc)
    finally:
        if logs is not None:
            logs.close()
    with _stdout_closed_ok():
        if ctx.json:
            out.write(json.dumps(outcome.data, indent=2, ensure_ascii=False, default=str) + "\n")
        elif outcome.text:
            if outcome.notice:
                err.write(ctx.scrub(outcome.notice).rstrip("\n") + "\n")
                err.flush()
            out.write(ctx.scrub(outcome.text).rstrip("\n") + "\n")
        out.flush()
    if outcome.error:
        err.write(f"Error: {ctx.scrub(outcome.error)}\n")
        err.flush()
    return int(outcome.exit_code)


# --- the CLI reference in docs/cli.md --------------------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    # argparse has no public way to walk sub-commands.
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, child in action.choices.items():
                yield from _walk(child, [*path, name])


def help_texts(width: int = HELP_WIDTH) -> list[tuple[str, str]]:
    """Every command's ``--help`` text, as a terminal ``width + 2`` columns wide shows it."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width + 2)
    try:
        parser = build_parser()
        return [(" ".join([PROG, *path]), sub.format_help()) for path, sub in _walk(parser, [])]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


BEGIN_MARK = ("<!-- BEGIN GENERATED HELP: edit cli/main.py, then run "
              "`python -m schemasync_backup.cli.main --update-docs` -->")
END_MARK = "<!-- END GENERATED HELP -->"


def reference_markdown() -> str:
    parts = [BEGIN_MARK, ""]
    for command, text in help_texts():
        parts += [f"### `{command}`", "", "```text", text.rstrip(), "```", ""]
    parts.append(END_MARK)
    return "\n".join(parts)


def replace_generated(document: str, begin: str, end: str, generated: str) -> str:
    """``document`` with the text from ``begin`` to ``end`` (markers included) replaced by ``generated``."""
    head, found, rest = document.partition(begin)
    _, closed, tail = rest.partition(end)
    if not found or not closed:
        raise InvalidInputError(f"markers {begin!r} ... {end!r} not found", subject=(begin, end))
    return head + generated + tail


def update_docs(docs: str | os.PathLike[str] = "docs") -> list[str]:
    """Regenerate the generated parts of docs/cli.md and docs/config.md; the names of the files changed."""
    from schemasync_backup.cli import config

    changed = []
    for name, begin, end, generated in (("cli.md", BEGIN_MARK, END_MARK, reference_markdown()),
                                        ("config.md", config.BEGIN_MARK, config.END_MARK,
                                         config.reference_markdown())):
        path = Path(docs) / name
        document = path.read_text(encoding="utf-8")
        updated = replace_generated(document, begin, end, generated)
        if updated != document:
            path.write_text(updated, encoding="utf-8")
            changed.append(str(path))
    return changed


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update-docs"]:
        print("updated: " + (", ".join(update_docs(*sys.argv[2:3])) or "nothing, all up to date"))
        raise SystemExit(0)
    raise SystemExit(main())
