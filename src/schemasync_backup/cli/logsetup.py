"""Logging for the command line: level, log file, one line per operation, secrets scrubbed.

Each operation writes one line when it ends, carrying what the grep recipes users keep look for::

    2026-11-25T14:00:00.123Z INFO backup.create ok backup_id=backup-20261125-140000-1a2b3c4d
        database=shop duration=0.412s raw_size=48213 stored_size=9120 storage=s3://bucket/backups

(one line in the file). A failure is logged at ERROR with ``failed`` and the error, so
``grep -i "error\\|fail"``, ``grep duration`` and ``grep storage`` all work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs

from schemasync_backup.errors import LogSettingsError as LogSettingsError  # noqa: PLC0414 - re-export

LOGGER_NAME = "mysql_schema_sync"
#: The library logs under its module names, below this one.
LIBRARY_LOGGER = "schemasync_backup"
DEBUG_ENV_VAR = "MYSQL_SCHEMA_SYNC_DEBUG"
LEVEL_ENV_VAR = "MYSQL_SCHEMA_SYNC_LOG_LEVEL"
FILE_ENV_VAR = "MYSQL_SCHEMA_SYNC_LOG_FILE"
SYSTEM_LOG_FILE = Path("/var/log/mysql-schema-sync/backup.log")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

logger = logging.getLogger(LOGGER_NAME)
#: Whether failures carry their traceback into the log (set by :func:`configure` at debug level).
_tracebacks = {"enabled": False}


def debug_requested(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """``--debug``, ``MYSQL_SCHEMA_SYNC_DEBUG=true`` or ``MYSQL_SCHEMA_SYNC_LOG_LEVEL=debug``."""
    environ = os.environ if environ is None else environ
    return (flag or environ.get(DEBUG_ENV_VAR, "").strip().lower() in _TRUE
            or environ.get(LEVEL_ENV_VAR, "").strip().lower() == "debug")


def resolve_level(debug: bool, configured: str = "info", environ: Mapping[str, str] | None = None, *,
                  strict: bool = True) -> int:
    """--debug / MYSQL_SCHEMA_SYNC_DEBUG, then MYSQL_SCHEMA_SYNC_LOG_LEVEL, then the config, then info.

    An invalid MYSQL_SCHEMA_SYNC_LOG_LEVEL raises :class:`LogSettingsError`, or with ``strict=False``
    is passed over (:func:`environment_problems` says what is wrong with it)."""
    environ = os.environ if environ is None else environ
    if debug:
        return logging.DEBUG
    named = environ.get(LEVEL_ENV_VAR, "").strip().lower()
    if named in LEVELS:
        return LEVELS[named]
    if named and strict:
        raise LogSettingsError(_level_problem(named))
    return LEVELS.get(configured, logging.INFO)


def _level_problem(named: str) -> str:
    return f"{LEVEL_ENV_VAR}={named!r} is not a log level; allowed: {', '.join(LEVELS)}"


def environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """What is wrong with the values of MYSQL_SCHEMA_SYNC_DEBUG and MYSQL_SCHEMA_SYNC_LOG_LEVEL, one
    sentence each naming the values allowed; a variable with a wrong value is read as unset."""
    environ = os.environ if environ is None else environ
    problems = []
    debug = environ.get(DEBUG_ENV_VAR, "").strip().lower()
    if debug and debug not in _TRUE + _FALSE:
        problems.append(f"{DEBUG_ENV_VAR}={debug!r} is not true or false; allowed: {', '.join(_TRUE + _FALSE)}; "
                        "debug stays off")
    level = environ.get(LEVEL_ENV_VAR, "").strip().lower()
    if level and level not in LEVELS:
        problems.append(f"{_level_problem(level)}; the configured level is used")
    return problems


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's state directory for this tool (XDG: ``$XDG_STATE_HOME`` or ``~/.local/state``)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "mysql-schema-sync"


def _writable(path: Path) -> bool:
    """Whether ``path`` can be appended to, creating its folder if needed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError:
        return False
    return True


def log_file_candidates(configured: str | None, environ: Mapping[str, str] | None = None,
                        system: Path = SYSTEM_LOG_FILE) -> list[Path]:
    """Where the log file may go, best first: $MYSQL_SCHEMA_SYNC_LOG_FILE, the configured path, the system
    path, the user's state directory."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(FILE_ENV_VAR) or configured
    if explicit:
        return [Path(os.path.expanduser(explicit))]
    return [system, state_dir(environ) / "backup.log"]


def choose_log_file(candidates: list[Path]) -> Path | None:
    for candidate in candidates:
        if _writable(candidate):
            return candidate
    return None


class ScrubbingFormatter(logging.Formatter):
    """A formatter whose output, tracebacks included, passes through ``scrub`` (which removes secrets)."""

    def __init__(self, fmt: str, scrub: Callable[[str], str], *, utc: bool = True) -> None:
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S")
        self._scrub = scrub
        if utc:
            self.converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{super().formatTime(record, datefmt)}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return self._scrub(super().format(record))


class _ConsoleFormatter(ScrubbingFormatter):
    """Leaves out the traceback of a record marked :data:`TRACEBACK_SHOWN_BY_CLI`: the command line
    prints that one itself, with its ``Error:`` line, so it reaches stderr once."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and getattr(record, "traceback_shown_by_cli", False):
            # A copy: the record's other handlers (the file) still show the traceback.
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


#: Pass as ``extra=`` with ``exc_info`` when the command line prints the exception's traceback itself.
TRACEBACK_SHOWN_BY_CLI = {"traceback_shown_by_cli": True}


class _ForPeople(logging.Filter):
    """Without --debug, stderr shows only records logged with ``extra=TO_CONSOLE`` (warnings for people)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(getattr(record, "to_console", False))


#: Pass as ``extra=`` to show a record on stderr even without --debug.
TO_CONSOLE = {"to_console": True}


class _Ours(logging.Filter):
    """Our records at any level; other libraries' (sqlglot, fsspec, botocore, ...) from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith((LOGGER_NAME, LIBRARY_LOGGER)) or record.levelno >= logging.WARNING


@attrs.define
class LogSetup:
    level: int
    file: Path | None
    handlers: list[logging.Handler] = attrs.field(factory=list)
    _root_level: int = logging.WARNING

    def close(self) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        self.handlers.clear()
        root.setLevel(self._root_level)
        _tracebacks["enabled"] = False


def configure(*, level: int, debug: bool, file: Path | None, scrub: Callable[[str], str],
              stderr: TextIO | None = None) -> LogSetup:
    """Send the log to ``file`` (at ``level``) and to stderr: everything under debug, else only records
    meant for people. Handlers sit on the root logger, so other libraries' warnings land in the file
    too instead of on the terminal."""
    root = logging.getLogger()
    setup = LogSetup(level=level, file=file, root_level=root.level)
    logger.setLevel(logging.DEBUG)
    _tracebacks["enabled"] = level <= logging.DEBUG
    logger.propagate = True
    if file is not None:
        try:
            handler: logging.Handler = logging.FileHandler(file, encoding="utf-8", delay=False)
        except OSError:
            setup.file = None
        else:
            handler.setLevel(level)
            handler.addFilter(_Ours())
            handler.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s %(message)s", scrub))
            root.addHandler(handler)
            setup.handlers.append(handler)
    console = logging.StreamHandler(stderr or sys.stderr)
    if debug:
        console.setLevel(logging.DEBUG)
        console.addFilter(_Ours())
        console.setFormatter(_ConsoleFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", scrub))
    else:
        console.setLevel(logging.WARNING)
        console.addFilter(_ForPeople())
        console.setFormatter(ScrubbingFormatter("Warning: %(message)s", scrub))
    root.addHandler(console)
    setup.handlers.append(console)
    # No lower than a handler takes: the library checks its loggers' level before it formats or
    # times anything (every statement at debug), so at info that work is never done.
    root.setLevel(min(handler.level for handler in setup.handlers))
    return setup


# --- one line per operation --------------------------------------------------------------------------


def _field(value: Any) -> str:
    text = str(value)
    if not text or any(char.isspace() or char in "\"=" for char in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_fields(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={_field(value)}" for key, value in fields.items() if value is not None and value != "")


@attrs.define
class Operation:
    """What an operation learned on the way (backup id, sizes, ...), logged when it ends."""

    name: str
    fields: dict[str, Any]
    started: float = attrs.field(factory=time.monotonic)
    outcome: str = "ok"

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)

    @property
    def duration(self) -> float:
        return time.monotonic() - self.started


@contextlib.contextmanager
def operation(name: str, fields: Mapping[str, Any] | None = None, *,
              refused: tuple[type[BaseException], ...] = ()) -> Iterator[Operation]:
    """Log ``name`` with its fields and duration when it ends; failures at ERROR with the error,
    exceptions of the ``refused`` types at WARNING as refused."""
    op = Operation(name, dict(fields or {}))
    logger.debug("%s started%s", name, f" {format_fields(op.fields)}" if op.fields else "")
    try:
        yield op
    except BaseException as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, refused):
            op.fields["duration"] = f"{op.duration:.3f}s"
            logger.warning("%s refused: %s %s", name, message, format_fields(op.fields))
            raise
        op.fields["duration"] = f"{op.duration:.3f}s"
        logger.error("%s failed: %s %s", name, message, format_fields({**op.fields, "error_type": type(exc).__name__}),
                     exc_info=_tracebacks["enabled"], extra=TRACEBACK_SHOWN_BY_CLI)
        raise
    op.fields["duration"] = f"{op.duration:.3f}s"
    level = {"ok": logging.INFO, "refused": logging.WARNING}.get(op.outcome, logging.ERROR)
    logger.log(level, "%s %s %s", name, op.outcome, format_fields(op.fields))
