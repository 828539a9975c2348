"""A statement as it may appear in a log: one line, short, without table data or secrets.

The debug log shows every statement sent to the server, and a log is read by more people, and
kept longer, than the server's own data: so a multi-row ``INSERT`` shows its head and size (its
values are table rows), anything else is cut at :data:`MAX_SHOWN` characters, the string
literals of a statement that may carry a password or a key (``IDENTIFIED BY``, ``PASSWORD(...)``,
``MASTER_PASSWORD=``, ``AES_ENCRYPT``) are blanked, and the secrets the caller names never appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The most characters of a statement a log line shows.
MAX_SHOWN = 300
REDACTED = "***"
#: Secrets shorter than this are not searched for in the text: replacing every occurrence of a
#: 1-3 character string would blank half the statement (their literals are still blanked).
MIN_SEARCHABLE_SECRET = 4

#: Words of statements whose literals may be a password or a key (substrings: MASTER_PASSWORD too).
_CARRIES_SECRETS = re.compile(r"IDENTIFIED|PASSWORD|SECRET|CRYPT", re.IGNORECASE)
#: A quoted string, or one left unterminated (it runs to the end). Blanking too much is harmless
#: here (a "..." identifier under ANSI_QUOTES, a quote inside a comment); too little is not.
_LITERAL = re.compile(r"""'(?:[^'\\]|\\.?|'')*(?:'|\Z)|"(?:[^"\\]|\\.?|"")*(?:"|\Z)""", re.DOTALL)
#: An INSERT or REPLACE up to its row values.
_ROWS_HEAD = re.compile(r"\s*(?:INSERT|REPLACE)\b.*?\bVALUES?\s*(?=\()", re.IGNORECASE | re.DOTALL)


def loggable(statement: str, secrets: Iterable[str] = ()) -> str:
    """``statement`` on one line as a log may show it (see the module's docstring)."""
    searched = searchable(secrets)
    rows = _ROWS_HEAD.match(statement)
    text = statement[:rows.end()] if rows else statement
    if _CARRIES_SECRETS.search(text):
        text = _LITERAL.sub(f"'{REDACTED}'", text)
    # Before and after each step: joining lines can make a secret ("pass\nword"), cutting can
    # halve one, and the tail can complete one.
    text = without_secrets(" ".join(without_secrets(text, searched).split()), searched)
    if rows or len(text) > MAX_SHOWN:
        text = f"{text[:MAX_SHOWN]} … ({len(statement)} chars)"
    return without_secrets(text, searched)


def searchable(secrets: Iterable[str]) -> list[str]:
    """The secrets worth searching for in free text, longest first."""
    return sorted({secret for secret in secrets if len(secret) >= MIN_SEARCHABLE_SECRET}, key=len, reverse=True)


def without_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of the :func:`searchable` ``secrets`` replaced by ``***``, until none is left."""
    # Until none is left: a replacement can complete another occurrence ("ab" in "aabb"). Each
    # one shortens the text (a searchable secret is longer than the mark), so this ends.
    secrets = searchable(secrets)
    while any(secret in text for secret in secrets):
        for secret in secrets:
            text = text.replace(secret, REDACTED)
    return text
