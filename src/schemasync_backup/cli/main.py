"""mysql-schema-sync: the reference command line, a thin consumer of the public API.

Parse arguments, load the configuration, call the library, render the result as a table for
people or as stable JSON for scripts (docs/cli.md documents every field and exit code)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any, TextIO

from schemasync_backup.cli import logsetup
from schemasync_backup.cli.config import (
    Config,
    ConfigError,
)
from schemasync_backup.cli.console import ConfirmationRefused, Console
from schemasync_backup.cli.context import Context, ExitCode
from schemasync_backup.cli.parser import build_parser
from schemasync_backup.errors import (
    BackupFormatError,
    BackupNotFoundError,
    ConcurrentCreateError,
    DatabaseMismatchError,
    IntegrityError,
    InvalidBackupIdError,
    InvalidSourceError,
    RollbackRefusedError,
    SchemaSyncBackupError,
)
from schemasync_backup.validate.validator import BackupValidationError

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


#: What a library message tells its caller to pass, as the command line says it: one table, checked against
#: every message in the package (tests/test_messages.py).
CLI_WORDING = {
    "pass allow_concurrent=True": "pass --force",
    "plan with resume=False": "plan with --no-resume",
    "open the store with accept_unsealed=True (config: backup.encryption.accept_unsealed: true)":
        "set backup.encryption.accept_unsealed: true in the config",
    "pass encryption_keys=, e.g. EncryptionKey.from_env('BACKUP_ENCRYPTION_KEY')":
        "set BACKUP_ENCRYPTION_KEY (backup.encryption.key_env_var)",
    "data= names table(s)": "--data names table(s)",
    "data= as a list must name at least one table, each by a non-empty string": "--data must name at least one table",
    " (or pass wait= seconds)": "",
    "pass new_key= or configure one": "configure one in backup.encryption",
}


def cli_wording(message: str) -> str:
    """``message`` with each library phrase of :data:`CLI_WORDING` in the command line's words."""
    for phrase, words in CLI_WORDING.items():
        message = message.replace(phrase, words)
    return message


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, SchemaSyncBackupError):
        return cli_wording(exc.message)
    if isinstance(exc, ConfirmationRefused | logsetup.LogSettingsError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _error_document(exc: BaseException, message: str, code: ExitCode, scrub: Callable[[str], str]) -> dict[str, Any]:
    """``{"error": {"type", "message", "subject"}, "exit_code": N}``: what ``--format json`` prints on a failure."""
    subject = getattr(exc, "subject", None)
    return {"error": {"type": type(exc).__name__, "message": message,
                      "subject": None if subject is None else scrub(str(subject))},
            "exit_code": int(code)}


def _setup_logging(ctx: Context, debug: bool, stderr: TextIO) -> logsetup.LogSetup:
    try:
        config: Config | None = ctx.config
    except ConfigError:
        config = None  # the command reports it; log with the defaults meanwhile
    settings = config.backup.logging if config is not None else None
    level = logsetup.resolve_level(debug, settings.level if settings else "info", strict=False)
    file = None
    if settings is None or settings.file_logging:
        file = logsetup.choose_log_file(logsetup.log_file_candidates(settings.file if settings else None))
    setup = logsetup.configure(level=level, debug=debug, file=file, scrub=ctx.scrub, stderr=stderr)
    for problem in logsetup.environment_problems():  # a typo in a variable is no reason to refuse the command
        logsetup.logger.warning("%s", problem, extra=logsetup.TO_CONSOLE)
    return setup


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
    console = Console(out, err, inp, json=args.format == "json", quiet=args.quiet)
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
        if debug:  # the one traceback on stderr: the operation's log record leaves it to this
            err.write(ctx.scrub("".join(traceback.format_exception(exc))))
        message, code = ctx.scrub(_message(exc)), classify(exc)
        err.write(f"Error: {message}\n")
        err.flush()
        if args.format == "json":  # a program reading stdout gets the failure in the form it reads
            with _stdout_closed_ok():
                out.write(json.dumps(_error_document(exc, message, code, ctx.scrub), indent=2, ensure_ascii=False)
                          + "\n")
                out.flush()
        return code
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update-docs"]:
        from schemasync_backup.cli.reference import update_docs

        print("updated: " + (", ".join(update_docs(*sys.argv[2:3])) or "nothing, all up to date"))
        raise SystemExit(0)
    raise SystemExit(main())
