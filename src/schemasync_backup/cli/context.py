"""What every command shares: exit codes, the outcome a command returns, the context it runs in."""

from __future__ import annotations

import argparse
import enum
from typing import TYPE_CHECKING, Any

import attrs

from schemasync_backup.cli import logsetup, notify
from schemasync_backup.cli.config import (
    Config,
    ConfigError,
    find_config_path,
    load_config,
    open_store,
)
from schemasync_backup.cli.console import Console
from schemasync_backup.plugins.manager import Registry, default_registry

if TYPE_CHECKING:
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
