"""Terminal output for the command line: tables, sizes, progress bars and confirmation prompts.

Progress bars and activity indicators appear only for a person: stdout and stderr are terminals,
the output format is ``table`` and ``TERM`` is not ``dumb``. They draw on stderr, so stdout holds
only the command's result. Prompts read stdin; when stdin is not a terminal the answer is "no"
and the caller is told to pass ``--force``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import attrs

from schemasync_backup.errors import ConfirmationRefused as ConfirmationRefused  # noqa: PLC0414 - re-export


def human_size(size: int | float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table; the last column is not padded."""
    cells = [[str(header) for header in headers]]
    cells += [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[index]) if index < len(row) - 1 else cell for index, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key + ':':<{width + 1}} {'' if value is None else value}" for key, value in pairs)


@attrs.define
class Console:
    """Where output goes and whether a person is watching."""

    stdout: TextIO
    stderr: TextIO
    stdin: TextIO
    json: bool = False

    @property
    def interactive(self) -> bool:
        """A person at a terminal: progress bars are drawn."""
        return (not self.json and _isatty(self.stdout) and _isatty(self.stderr)
                and os.environ.get("TERM", "") != "dumb")

    def progress(self, total: int, label: str) -> ProgressBar:
        return ProgressBar(self.stderr if self.interactive and total > 0 else None, total, label)

    @contextlib.contextmanager
    def activity(self, label: str) -> Iterator[None]:
        """An animated indicator while work of unknown length runs (only on a terminal)."""
        if not self.interactive:
            yield
            return
        stop = threading.Event()
        stream = self.stderr

        def spin() -> None:
            started = time.monotonic()
            for frame in itertools.cycle("|/-\\"):
                elapsed = time.monotonic() - started
                stream.write(f"\r{label} [{frame}] {elapsed:.0f}s ")
                stream.flush()
                if stop.wait(0.1):
                    break

        thread = threading.Thread(target=spin, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            stream.write("\r" + " " * (len(label) + 12) + "\r")
            stream.flush()

    def confirm(self, question: str, *, force: bool, action: str) -> None:
        """Return when the action may go ahead: ``force``, or a person answered yes; raise otherwise."""
        if force:
            return
        if not _isatty(self.stdin):
            raise ConfirmationRefused(
                f"refusing to {action} without confirmation: stdin is not a terminal; pass --force to proceed"
            )
        self.stderr.write(f"{question} [y/N] ")
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


@attrs.define
class ProgressBar:
    """``[#####.....] 3/10 label`` redrawn in place; does nothing without a stream."""

    stream: TextIO | None
    total: int
    label: str
    done: int = 0
    _last_draw: float = 0.0

    def advance(self, step: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + step)
        self._draw(note, force=self.done >= self.total)

    def update(self, done: int, note: str = "") -> None:
        self.done = min(self.total, done)
        self._draw(note, force=self.done >= self.total)

    def _draw(self, note: str, *, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.05:
            return
        self._last_draw = now
        columns = shutil.get_terminal_size((80, 24)).columns
        width = max(10, min(40, columns - 40))
        filled = int(width * self.done / self.total) if self.total else width
        percent = int(100 * self.done / self.total) if self.total else 100
        line = f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {percent:3d}% {note}"
        self.stream.write("\r" + line[: columns - 1].ljust(columns - 1))
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self._draw("", force=True)
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        self._draw("", force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
