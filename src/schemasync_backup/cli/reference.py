"""The CLI reference in docs/cli.md, generated from the parser's help texts."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

from schemasync_backup.cli.context import HELP_WIDTH, PROG
from schemasync_backup.cli.parser import build_parser
from schemasync_backup.errors import (
    InvalidInputError,
)

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


BEGIN_MARK = ("<!-- BEGIN GENERATED HELP: edit cli/parser.py, then run "
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

