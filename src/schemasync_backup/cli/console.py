"""Terminal output for the command line, on rich: tables, sizes, progress bars and confirmation prompts.

Progress bars and activity indicators appear only for a person: stdout and stderr are terminals,
the output format is ``table``, ``--quiet`` is not given and ``TERM`` is not ``dumb``. They draw on
stderr through a rich console bound to it, so stdout holds only the command's result; without a terminal nothing of the
kind is created, so piped output carries no control characters. Colours appear only on a terminal
and never when ``NO_COLOR`` is set. Prompts read stdin; when stdin is not a terminal the answer is
"no" and the caller is told to pass ``--force``.

Every label, note and question is passed through ``Console.scrub`` before rich sees it (the CLI sets
it to the configuration's secret scrubber), and is rendered as plain text, never as rich markup.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

import attrs
from rich.console import Console as RichConsole
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from schemasync_backup.display import human_size as human_size  # noqa: PLC0414 - re-export
from schemasync_backup.errors import ConfirmationRefused as ConfirmationRefused  # noqa: PLC0414 - re-export
from schemasync_backup.model.progress import ProgressUpdate

_TABLE_WIDTH = 10_000  # wide enough that no cell is ever wrapped (a wrapped secret would escape scrubbing)


def _plain_console(file: TextIO) -> RichConsole:
    """A rich console that writes text only: no colours, no control codes, no markup, no wrapping."""
    return RichConsole(file=file, width=_TABLE_WIDTH, force_terminal=False, force_interactive=False,
                       color_system=None, no_color=True, markup=False, emoji=False, highlight=False,
                       legacy_windows=False, soft_wrap=False)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """The rows as a rich table without a box: columns two spaces apart, trailing spaces stripped.

    Plain text (no escape sequences) whatever the terminal, so scripts can split the lines; no cell
    is wrapped or cut."""
    grid = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="none",
                 show_header=True)
    for header in headers:
        grid.add_column(Text(str(header)), no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    buffer = io.StringIO()
    _plain_console(buffer).print(grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n"))


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key + ':':<{width + 1}} {'' if value is None else value}" for key, value in pairs)


def _no_scrub(text: str) -> str:
    return text


@attrs.define
class Console:
    """Where output goes and whether a person is watching."""

    stdout: TextIO
    stderr: TextIO
    stdin: TextIO
    json: bool = False
    scrub: Callable[[str], str] = _no_scrub
    #: ``--quiet``: no progress bars or activity indicators, only the result.
    quiet: bool = False
    _terminal: RichConsole | None = attrs.field(default=None, init=False, repr=False)

    @property
    def interactive(self) -> bool:
        """A person at a terminal: progress bars are drawn."""
        return (not self.json and not self.quiet and _isatty(self.stdout) and _isatty(self.stderr)
                and os.environ.get("TERM", "") != "dumb")

    @property
    def terminal(self) -> RichConsole:
        """The rich console on stderr; only used when :attr:`interactive` (or to ask at a terminal)."""
        if self._terminal is None:
            tty = _isatty(self.stderr)
            self._terminal = RichConsole(
                file=self.stderr, force_terminal=tty, force_interactive=tty and self.interactive,
                no_color="NO_COLOR" in os.environ or not tty, color_system="auto" if tty else None,
                markup=False, emoji=False, highlight=False, legacy_windows=False)
        return self._terminal

    def progress(self, total: int, label: str, *, total_bytes: int | None = None) -> ProgressBar:
        """A bar of ``done/total`` items (and transferred bytes when ``total_bytes`` is given)."""
        if not self.interactive or total <= 0:
            return ProgressBar(None, total, label)
        columns: list[ProgressColumn] = [
            TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
            TaskProgressColumn(),
        ]
        if total_bytes is not None:
            columns.append(_BytesColumn())
        columns += [TimeElapsedColumn(), TextColumn("{task.fields[note]}")]
        bar = Progress(*columns, console=self.terminal, transient=False, redirect_stdout=False,
                       redirect_stderr=False, refresh_per_second=10)
        return ProgressBar(bar, total, self.scrub(label), total_bytes=total_bytes, scrub=self.scrub)

    @contextlib.contextmanager
    def activity(self, label: str) -> Iterator[None]:
        """A spinner and the time elapsed while work of unknown length runs (only on a terminal)."""
        if not self.interactive:
            yield
            return
        spinner = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                           console=self.terminal, transient=True, redirect_stdout=False, redirect_stderr=False,
                           refresh_per_second=10)
        with spinner:
            spinner.add_task(self.scrub(label), total=None)
            yield

    def confirm(self, question: str, *, force: bool, action: str) -> None:
        """Return when the action may go ahead: ``force``, or a person answered yes; raise otherwise."""
        if force:
            return
        if not _isatty(self.stdin):
            raise ConfirmationRefused(
                f"refusing to {action} without confirmation: stdin is not a terminal; pass --force to proceed"
            )
        prompt = Text.assemble((self.scrub(question), "bold"), " [y/N] ")
        self.terminal.print(prompt, end="", soft_wrap=True)  # the terminal wraps it, not rich
        self.stderr.flush()
        answer = self.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            raise ConfirmationRefused(f"{action}: cancelled (answer was not yes)")

    def out(self, text: str = "") -> None:
        self.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
        self.stdout.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _BytesColumn(ProgressColumn):
    """``1.2 MiB/3.4 MiB``: the bytes transferred so far of those announced."""

    def render(self, task: Task) -> Text:
        done, total = task.fields.get("bytes_done", 0), task.fields.get("bytes_total")
        return Text(f"{human_size(done)}/{human_size(total)}", style="progress.download")


@attrs.define
class ProgressBar:
    """``label ━━━━━━━━━━ 3/10 30% 0:00:01 note`` on a rich progress display; does nothing without one."""

    display: Progress | None
    total: int
    label: str
    total_bytes: int | None = None
    scrub: Callable[[str], str] = _no_scrub
    done: int = 0
    bytes_done: int = 0
    #: The note the finished bar keeps (what was done in all, e.g. rows restored); none by default.
    summary: str = ""
    _task: Any = None

    def advance(self, step: int = 1, note: str = "", *, nbytes: int = 0) -> None:
        """``step`` more items done (and ``nbytes`` more bytes transferred)."""
        self.update(self.done + step, note, bytes_done=self.bytes_done + nbytes)

    def update(self, done: int, note: str = "", *, bytes_done: int | None = None) -> None:
        self.done = min(self.total, done)
        if bytes_done is not None:
            self.bytes_done = bytes_done if self.total_bytes is None else min(self.total_bytes, bytes_done)
        if self.display is not None and self._task is not None:
            self.display.update(self._task, completed=self.done, note=self.scrub(note), bytes_done=self.bytes_done)

    def close(self) -> None:
        if self.display is not None and self._task is not None:
            self.display.update(self._task, completed=self.done, note=self.scrub(self.summary))
            self.display.stop()
            self._task = None

    def __enter__(self) -> ProgressBar:
        if self.display is not None and self._task is None:
            self._task = self.display.add_task(self.label, total=self.total, note="", bytes_done=self.bytes_done,
                                               bytes_total=self.total_bytes)
            self.display.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What ``done`` counts in each stage of the library's progress (:mod:`schemasync_backup.model.progress`).
_STAGE_LABELS = {"objects": "objects captured", "data": "tables read", "writing": "frames written",
                 "frames": "frames validated", "parse checks": "statements parse-checked", "rows": "chunks restored",
                 "archiving": "objects archived", "importing": "objects imported", "statements": "statements run",
                 "comparing": "tables compared", "salvage": "frames salvaged", "backups": "backups checked"}


def progress_note(update: ProgressUpdate) -> str:
    """``3/10 objects, 1,234 rows, 5.0 MiB``: what an update says besides its bar."""
    parts = [f"{update.objects_done}/{update.objects_total} objects"] if update.objects_total else []
    if update.rows_done:
        parts.append(f"{update.rows_done:,} rows")
    if update.bytes_done and not update.bytes_total:
        parts.append(human_size(update.bytes_done))
    return ", ".join(parts)


class StageBars:
    """One bar per stage of a library call's progress (``title: objects captured ━━ 3/10``), on a terminal only.

    Pass :meth:`update` as the call's ``progress=``; it may be called from worker threads."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.bar: ProgressBar | None = None
        self.stage = ""
        self._lock = threading.Lock()

    def update(self, update: ProgressUpdate) -> None:
        with self._lock:
            if update.stage != self.stage:
                self._close()
                self.stage = update.stage
                label = f"{self.title}: {_STAGE_LABELS.get(update.stage, update.stage)}"
                self.bar = self.console.progress(update.total, label,
                                                 total_bytes=update.bytes_total or None).__enter__()
            if self.bar is not None:
                self.bar.summary = progress_note(update)  # the stage's counts stay on its finished bar
                self.bar.update(update.done, self.bar.summary, bytes_done=update.bytes_done)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._close()
