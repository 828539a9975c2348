"""Migration text as tokens, and the tables a DELETE or UPDATE writes: what reading a migration asks of sqlglot.

With ``quoting``, the only module that imports sqlglot (lazily, it is slow to import), so a change
of its API touches these two files. sqlglot's tokenizer knows MySQL's quotes, escapes and
comments; it drops the versioned comments (``/*!50001 ... */``, MariaDB's ``/*M! ... */``) that
the server runs, so their text is tokenized here and put back in place.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs

#: Whitespace and comments between two tokens; ``code`` is the text of a comment the server runs.
_GAP = re.compile(r"\s+|--(?:[ \t\v\f\r][^\n]*)?(?:\n|$)|#[^\n]*(?:\n|$)"
                  r"|/\*(?:M?!\d{0,6}(?P<code>.*?)|.*?)\*/", re.DOTALL)
_WORD = re.compile(r"[\w$]+")
_WORDS = re.compile(r"[\w$]+(?:\s+[\w$]+)+")


class Kind(enum.StrEnum):
    WORD = "word"  # a keyword or an unquoted identifier, as written
    NAME = "name"  # a `quoted` identifier, unquoted
    STRING = "string"  # a string literal (also X'..', B'..', N'..'), unquoted
    NUMBER = "number"
    SYMBOL = "symbol"


@attrs.frozen
class Token:
    kind: Kind
    text: str
    #: Where the token lies in the text given to :func:`tokenize` (``end`` exclusive).
    start: int
    end: int

    def is_word(self, *words: str) -> bool:
        return self.kind == Kind.WORD and self.text.upper() in words

    @property
    def identifier(self) -> str | None:
        """The name this token can be, quoted or not; None for literals and symbols."""
        return self.text if self.kind in (Kind.WORD, Kind.NAME) else None


def tokenize(text: str) -> list[Token] | None:
    """The tokens of ``text``, with those of versioned comments; None when it ends inside a quote or comment."""
    from sqlglot.errors import TokenError

    try:
        raw = _tokenizer()().tokenize(text)
    except TokenError:
        return None
    found: list[Token] = []
    previous = 0
    for token in raw:
        executed = _executed(text, previous, token.start)
        if executed is None:
            return None
        found += executed
        found += _ours(text, token.token_type.name, token.text, token.start, token.end + 1)
        previous = token.end + 1
    tail = _executed(text, previous, len(text))
    return None if tail is None else found + tail


@functools.cache
def _tokenizer() -> Any:
    from sqlglot.dialects.mysql import MySQL

    class Tokenizer(MySQL.Tokenizer):
        # sqlglot reads what follows RENAME, REPLACE, CALL, EXECUTE, ... as one opaque string: here it is tokens.
        COMMANDS: ClassVar[set[Any]] = set()

    return Tokenizer


def _executed(text: str, start: int, end: int) -> list[Token] | None:
    """The tokens of the comments the server runs in ``text[start:end]``, which holds only whitespace and comments."""
    found: list[Token] = []
    for code_start, code in _codes(text, start, end):
        tokens = tokenize(code)
        if tokens is None:
            return None
        found += [attrs.evolve(token, start=token.start + code_start, end=token.end + code_start) for token in tokens]
    return found


def _codes(text: str, start: int, end: int) -> Iterator[tuple[int, str]]:
    at = start
    while at < end:
        match = _GAP.match(text, at, end)
        if match is None or not match.group(0):
            return
        if match.group("code") is not None:
            yield match.start("code"), match.group("code")
        at = match.end()


def _ours(text: str, token_type: str, token_text: str, start: int, end: int) -> list[Token]:
    kind = _kind(token_type, token_text)
    if kind != Kind.SYMBOL or not _WORDS.fullmatch(token_text):
        return [Token(kind, token_text, start, end)]
    # sqlglot reads some keyword pairs as one token (PRIMARY KEY, ORDER BY, SQL SECURITY): here they are words.
    return [Token(Kind.WORD, word.group(), word.start(), word.end()) for word in _WORD.finditer(text, start, end)]


def _kind(token_type: str, text: str) -> Kind:
    if token_type == "IDENTIFIER":
        return Kind.NAME
    if token_type.endswith("STRING"):
        return Kind.STRING
    if token_type == "NUMBER":
        return Kind.NUMBER
    return Kind.WORD if _WORD.fullmatch(text) else Kind.SYMBOL


def written_tables(statement: str) -> list[tuple[str | None, str]] | None:
    """The tables a DELETE or UPDATE changes rows of, as (database or None, table); None when sqlglot cannot
    read ``statement`` as one of those.

    Tables it only reads (joined, in subqueries) are left out; an UPDATE's unqualified SET column
    may belong to any table it joins, so then all of them count.
    """
    import sqlglot
    import sqlglot.errors
    from sqlglot import exp

    sqlglot_log = logging.getLogger("sqlglot")
    previous = sqlglot_log.level
    # sqlglot logs a warning when it falls back to an opaque Command; that is a plain "cannot read" here.
    sqlglot_log.setLevel(logging.ERROR)
    try:
        parsed = sqlglot.parse_one(statement, read="mysql")
    except sqlglot.errors.SqlglotError:
        return None
    finally:
        sqlglot_log.setLevel(previous)
    if not isinstance(parsed, exp.Delete | exp.Update):
        return None
    written = _joined(parsed.this)
    read = [table for using in parsed.args.get("using") or [] for table in _joined(using)]
    by_alias = {table.alias_or_name.lower(): table for table in [*written, *read]}
    if isinstance(parsed, exp.Delete) and parsed.args.get("tables"):
        # DELETE t1, t2 FROM ... names aliases (DELETE FROM t1, t2 USING ... deletes from all before USING).
        written = [by_alias.get(table.name.lower(), table) for table in parsed.args["tables"]]
    elif isinstance(parsed, exp.Update):
        owners = [by_alias.get(eq.this.table.lower()) if isinstance(eq.this, exp.Column) and eq.this.table else None
                  for eq in parsed.expressions]
        written = written if None in owners else list(filter(None, owners))
    unique = dict.fromkeys((table.db or None, table.name) for table in written)
    return list(unique) or None


def _joined(expression: object) -> list[Any]:
    """A table and those joined to it (not subqueries)."""
    from sqlglot import exp

    if not isinstance(expression, exp.Table):
        return []
    joined = [join.this for join in expression.args.get("joins") or []]
    return [expression, *(table for table in joined if isinstance(table, exp.Table))]
