"""How result objects show themselves to people: a few lines of text (``str``) and HTML for notebooks.

The one owner of that rendering. A report describes itself as a :class:`Card` (a title, facts,
notes and tables of rows) and inherits ``__str__`` and ``_repr_html_`` from :class:`Shown`; this
module turns the card into text or HTML. Every value is escaped on its way into HTML: object names,
messages and tags are input (a table may be named ``<script>``), and only this module writes tags.
Both forms are cut to a few rows, and :func:`brief_repr` keeps ``repr`` to counts, so a report on
5,000 tables stays small in a notebook or a traceback. Imports nothing of the package, so every
layer can use it (the bottom of the layers, beside ``errors`` and ``converter``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

import attrs

__all__ = ["HTML_ROWS", "TEXT_ROWS", "Card", "Rows", "Shown", "brief_repr", "headline", "human_size", "yes_no"]

#: Rows of each table, and notes, that ``str`` shows; the rest are counted ("... and 12 more steps").
TEXT_ROWS = 5
#: The same for HTML, where a reader scrolls.
HTML_ROWS = 200
#: A cell longer than this (a step's SQL) is cut, in text and in HTML.
_TEXT_CELL = 72
_HTML_CELL = 400


def human_size(size: int | float | None) -> str:
    """Bytes for a person: ``512 B``, ``1.5 MiB``; ``-`` when unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def headline(shown: object) -> str:
    """The first line of ``str(shown)``: a report's title, to name it inside another's."""
    return str(shown).partition("\n")[0]


def brief_repr(obj: object, **values: object) -> str:
    """``Name(key=value, ...)`` with the values given (names and counts, never a collection's contents)."""
    return f"{type(obj).__name__}({', '.join(f'{key}={value!r}' for key, value in values.items())})"


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@attrs.frozen
class Rows:
    """A table of a card: what its rows are (``caption``, plural), its column headers, and every row.

    Rendering shows the first few and counts the rest, so a caller may give all of them.
    """

    caption: str
    headers: tuple[str, ...]
    rows: Sequence[Sequence[object]]


@attrs.frozen
class Card:
    """What a report shows: a title line, facts (label, value), notes (errors, warnings) and tables."""

    title: str
    facts: tuple[tuple[str, object], ...] = ()
    notes: tuple[str, ...] = ()
    tables: tuple[Rows, ...] = ()
    #: The CSS class of the HTML (``schemasync-<kind>``), for a notebook's stylesheet.
    kind: str = "report"

    def text(self, *, limit: int = TEXT_ROWS) -> str:
        lines = [self.title]
        lines += [f"  {label}: {_cell(value)}" for label, value in self.facts]
        lines += [f"  {note}" for note in self.notes[:limit]]
        if len(self.notes) > limit:
            lines.append(f"  ... and {len(self.notes) - limit} more")
        for table in self.tables:
            if table.rows:
                lines += _text_table(table, limit)
        return "\n".join(lines)

    def html(self, *, limit: int = HTML_ROWS) -> str:
        parts = [f"<div><strong>{escape(self.title)}</strong></div>"]
        if self.facts:
            parts.append("<table><tbody>" + "".join(
                f"<tr><th>{escape(label)}</th><td>{escape(_cell(value))}</td></tr>" for label, value in self.facts)
                + "</tbody></table>")
        parts += [f"<div>{escape(note)}</div>" for note in self.notes[:limit]]
        if len(self.notes) > limit:
            parts.append(f"<div>... and {len(self.notes) - limit} more</div>")
        parts += [_html_table(table, limit) for table in self.tables if table.rows]
        return f'<div class="schemasync schemasync-{escape(self.kind)}">{"".join(parts)}</div>'


def _more(table: Rows, limit: int) -> str | None:
    hidden = len(table.rows) - limit
    return f"... and {hidden} more {table.caption}" if hidden > 0 else None


def _text_table(table: Rows, limit: int) -> list[str]:
    shown = [[_clip(_cell(value), _TEXT_CELL) for value in row] for row in table.rows[:limit]]
    widths = [max(len(cells[i]) for cells in [list(table.headers), *shown]) for i in range(len(table.headers))]

    def line(cells: Iterable[str]) -> str:
        return "    " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [f"  {table.caption} ({len(table.rows)}):", line(table.headers), *map(line, shown)]
    more = _more(table, limit)
    return [*lines, f"    {more}"] if more else lines


def _html_table(table: Rows, limit: int) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_clip(_cell(value), _HTML_CELL))}</td>" for value in row) + "</tr>"
                   for row in table.rows[:limit])
    more = _more(table, limit)
    return (f"<details open><summary>{escape(table.caption)} ({len(table.rows)})</summary>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + (f"<div>{escape(more)}</div>" if more else "") + "</details>")


class Shown:
    """Mixin: ``str`` and the notebook's HTML of a report, both from its :meth:`_card`."""

    __slots__ = ()

    def _card(self) -> Card:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._card().text()

    def _repr_html_(self) -> str:
        return self._card().html()
