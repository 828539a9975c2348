"""The argument parser: every command, option and help text (docs/cli.md is generated from it)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from typing import Any, NoReturn

from schemasync_backup import __version__
from schemasync_backup.cli.backup_commands import (
    cmd_backup_create,
    cmd_backup_delete,
    cmd_backup_export,
    cmd_backup_health_check,
    cmd_backup_import,
    cmd_backup_info,
    cmd_backup_integrity_check,
    cmd_backup_list,
    cmd_backup_move,
    cmd_backup_partial_recovery,
    cmd_backup_recalculate,
    cmd_backup_recovery_scan,
    cmd_backup_report,
    cmd_backup_restore_test,
    cmd_backup_rotate_key,
    cmd_backup_stats,
    cmd_backup_test_connection,
    cmd_backup_test_encryption,
    cmd_backup_validate,
    cmd_backup_validate_all,
    cmd_backup_validate_config,
)
from schemasync_backup.cli.config import (
    parse_duration,
)
from schemasync_backup.cli.context import HELP_WIDTH, PROG, Context, ExitCode, Outcome
from schemasync_backup.cli.rollback_commands import (
    cmd_rollback_compare,
    cmd_rollback_execute,
    cmd_rollback_list,
    cmd_rollback_manual_steps,
    cmd_rollback_plan,
    cmd_rollback_recovery_info,
    cmd_rollback_validate,
    cmd_test_connection,
)
from schemasync_backup.cli.storage_commands import (
    cmd_backup_cleanup,
    cmd_backup_storage_health,
    cmd_backup_storage_optimize,
    cmd_backup_storage_usage,
)
from schemasync_backup.errors import InvalidInputError
from schemasync_backup.formats.manifest import Status
from schemasync_backup.model.moments import moment

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
    """Checked here so a bad time is a usage error; the store reads it with the same grammar."""
    try:
        moment(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
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
    group.add_argument("--quiet", "-q", action="store_true", default=default(False),
                       help="no progress bars or activity indicators, even at a terminal (results and errors "
                            "are still printed)")


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
    create.add_argument("--data", metavar="WHAT",
                        help="table data to hold besides the schema: none, all, at-risk (what --migration would "
                             "destroy), or table names separated by commas (default: backup.data in the config)")
    create.add_argument("--migration", metavar="FILE",
                        help="the migration's SQL (- for stdin), for --data at-risk")
    listing = commands.add("list", "list backups, newest first", cmd_backup_list,
                           database="only backups of this database")
    listing.add_argument("--status", type=str.upper, metavar="STATUS",
                         choices=(Status.COMPLETED, Status.CREATING, Status.VALIDATING, Status.FAILED,
                                  Status.CORRUPTED, "ALL"),
                         help="only backups in this status: completed, creating, validating, failed, corrupted, all")
    listing.add_argument("--created-after", type=_time, metavar="TIME",
                         help="only backups created at or after TIME: ISO 8601 (UTC without a zone), a duration ago "
                              "(24h, 7d, 2w) or now, today, yesterday (UTC midnights)")
    listing.add_argument("--created-before", type=_time, metavar="TIME",
                         help="only backups created at or before TIME (the forms of --created-after)")
    listing.add_argument("--tag", action="append", default=[], metavar="KEY[=VALUE]",
                         help="only backups with this tag (repeatable; all must match)")
    listing.add_argument("--limit", type=_positive, metavar="N", help="at most N backups")
    commands.add("info", "show a backup's metadata and contents", cmd_backup_info, backup_id="required")
    commands.add("stats", "sizes and compression of one backup, or totals over all", cmd_backup_stats,
                 backup_id="one backup (default: totals over the store)", database="totals for this database only")
    validate = commands.add("validate", "fully validate a backup: checksums, decryption, snapshot, DDL",
                            cmd_backup_validate, backup_id="required")
    validate_all = commands.add("validate-all", "fully validate every backup", cmd_backup_validate_all,
                                database="only backups of this database")
    for command in (validate, validate_all):
        command.add_argument("--verbose", "-v", action="store_true",
                             help="list every statement sqlglot judged and could not parse (by default only "
                                  "counted)")
    restore_test = commands.add("restore-test", "restore a backup into a scratch database, compare it, drop it",
                                cmd_backup_restore_test, backup_id="required")
    restore_test.add_argument("--scratch-dsn", metavar="DSN",
                              help="server to restore on, as mysql://user:password@host:port (default: the "
                                   "configured database's server; a database named ssb_restore_test_* is created "
                                   "there and dropped)")
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
    check = commands.add("health-check", "config, database, privileges, storage, keys and the last backup in one "
                         "report", cmd_backup_health_check,
                         database="database whose privileges and last backup are checked")
    check.add_argument("--max-age", type=_duration, default=26 * 3600.0, metavar="DURATION",
                       help="the newest backup must be younger than this (default: 26h)")
    check.add_argument("--require-rollback", action="store_true",
                       help="fail, not warn, when the user may back up but not roll back (docs/rollback.md, "
                            "\"Privileges\")")
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


def _rehearsal_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-rehearsal", action="store_true",
                        help="do not rehearse the plan in a scratch database first (the summary says it was skipped)")


def _resume_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-resume", action="store_true",
                        help="plan from scratch: do not bring back the unfinished data steps of the latest failed run")


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
    _rehearsal_option(plan)
    _resume_option(plan)
    plan.add_argument("--show-sql", action="store_true",
                      help="print the SQL script for the mysql client on stdout, the summary on stderr")
    plan.add_argument("--output", metavar="FILE",
                      help="also save the plan to FILE for review (replacing it); `rollback execute --plan-file "
                           "FILE` runs it only while the backup and the live schema are as they were")
    plan.add_argument("--disable-fk-checks", action="store_true",
                      help="with --output: the saved plan runs with SET FOREIGN_KEY_CHECKS=0")
    execute = commands.add("execute", "roll the live schema back to the backup's", cmd_rollback_execute,
                           backup_id="the backup (required without --plan-file; with it, must be the file's)",
                           database=target,
                           force="do not ask; also run destructive steps, past preflight problems and a failed "
                                 "rehearsal")
    execute.add_argument("--plan-file", metavar="FILE",
                         help="run the plan `rollback plan --output FILE` saved, after review; refused when the "
                              "backup, the live schema or the file changed since")
    _target_database_option(execute)
    _rehearsal_option(execute)
    _resume_option(execute)
    execute.add_argument("--dry-run", action="store_true", help="plan and check everything, change nothing")
    execute.add_argument("--disable-fk-checks", action="store_true",
                         help="SET FOREIGN_KEY_CHECKS=0 for the rollback's session (a --plan-file saved with "
                              "it runs so without it)")
    execute.add_argument("--load-method", choices=("load_data", "insert"), default="load_data",
                         help="how data steps load the backup's rows: LOAD DATA LOCAL INFILE, or multi-row INSERTs")
    execute.add_argument("--batch-size", type=_positive, metavar="ROWS",
                         help="rows per INSERT with --load-method insert (default: 1000)")
    # Bare --parallel is 0: "pick for me", resolved by the library's default_parallel.
    execute.add_argument("--parallel", type=_positive, nargs="?", const=0, metavar="N",
                         help="load data steps on N connections at once; bare --parallel: backup.max_workers "
                              "when above 1, else the machine's CPU count, at most 8 (default: "
                              "backup.max_workers)")
    validate = commands.add("validate", "check that the live schema, and the data the backup holds, equal the "
                            "backup's", cmd_rollback_validate, backup_id="required", database=target)
    _target_database_option(validate)
    validate.add_argument("--no-data", action="store_true",
                          help="compare the schema only, not the rows a backup with data holds")
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
