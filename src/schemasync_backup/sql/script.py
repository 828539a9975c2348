"""A migration script split into its statements, without the client's DELIMITER command.

A semicolon ends a statement unless it lies inside a compound statement: the body of a
procedure, function, trigger or event, or a BEGIN NOT ATOMIC / IF / CASE / LOOP / WHILE /
REPEAT / FOR block that MariaDB runs on its own. Inside one, BEGIN, CASE and the loop words
open a block and END closes it. That reading is a heuristic (IF is also a function, BEGIN and
END may be column names): a statement whose blocks do not close is marked ``balanced=False``,
and the reader falls back on it rather than trust a split that may have swallowed statements.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from schemasync_backup.sql.tokens import Kind, Token, tokenize

_PROGRAMS = ("PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE")
_BLOCKS = ("BEGIN", "IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR")
#: Words after which a statement inside a compound body starts (as after ";" or a label's ":"): a FOR
#: there opens a loop (not FOR EACH ROW, FOR UPDATE), an IF [NOT] EXISTS a test (not DROP TABLE IF EXISTS).
_STATEMENT_STARTS = ("BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT")


@attrs.frozen
class Statement:
    text: str
    tokens: tuple[Token, ...]
    #: False when the compound blocks did not close: the split around this statement is not to be trusted.
    balanced: bool = True
    #: Set when the text could not be tokenized (an unterminated quote or comment): then it is the whole rest.
    unreadable: bool = False


def split(text: str) -> list[Statement]:
    """The statements of ``text`` in order; empty ones (``;;``) are left out."""
    tokens = tokenize(text)
    if tokens is None:
        return [Statement(text.strip(), (), unreadable=True)] if text.strip() else []
    statements: list[Statement] = []
    start = 0
    while start < len(tokens):
        end, balanced = _end(tokens, start)
        if end > start:
            part = tokens[start:end]
            statements.append(Statement(text[part[0].start:part[-1].end], tuple(part), balanced))
        start = end + 1
    return statements


def _end(tokens: Sequence[Token], start: int) -> tuple[int, bool]:
    """The index of the semicolon that ends the statement at ``start`` (or the end), and whether its blocks closed."""
    compound = _is_compound(tokens, start)
    depth = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        if _is_symbol(token, ";") and depth == 0:
            return index, True
        if not compound or token.kind != Kind.WORD:
            continue
        if token.is_word("END"):
            if depth == 0:
                return len(tokens), False
            depth -= 1
        elif _opens(tokens, index):
            depth += 1
    return len(tokens), depth == 0


def _is_compound(tokens: Sequence[Token], start: int) -> bool:
    first = tokens[start]
    following: list[Token | None] = [*tokens[start + 1:start + 3], None, None]
    second, third = following[0], following[1]
    if first.is_word("CREATE"):
        return _creates_program(tokens, start + 1)
    if first.is_word("BEGIN"):
        return second is not None and second.is_word("NOT") and third is not None and third.is_word("ATOMIC")
    labelled = second is not None and _is_symbol(second, ":") and third is not None and third.is_word(*_BLOCKS)
    return first.is_word(*_BLOCKS[1:]) or labelled


def _creates_program(tokens: Sequence[Token], index: int) -> bool:
    """Whether CREATE [OR REPLACE] [DEFINER = account] [AGGREGATE] at ``index`` goes on with a stored program."""
    while index < len(tokens) and tokens[index].is_word("OR", "REPLACE", "AGGREGATE", "DEFINER"):
        if tokens[index].is_word("DEFINER"):
            index += 2  # DEFINER =
            # The account: user, user@host (each part quoted or not), CURRENT_USER or CURRENT_USER().
            index += 3 if index + 1 < len(tokens) and _is_symbol(tokens[index + 1], "@") else 1
            if index + 1 < len(tokens) and _is_symbol(tokens[index], "(") and _is_symbol(tokens[index + 1], ")"):
                index += 2
        else:
            index += 1
    return index < len(tokens) and tokens[index].is_word(*_PROGRAMS)


def _opens(tokens: Sequence[Token], index: int) -> bool:
    """Whether the word at ``index`` opens a block that an END closes."""
    token = tokens[index]
    before = tokens[index - 1] if index else None
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    if before is not None and before.is_word("END"):
        return False  # END IF, END LOOP, ...
    if token.is_word("BEGIN", "CASE", "LOOP", "WHILE"):
        return True
    if token.is_word("REPEAT"):
        return after is None or not _is_symbol(after, "(")  # REPEAT() is a string function
    starts_statement = before is not None and (_is_symbol(before, ";") or _is_symbol(before, ":")
                                               or before.is_word(*_STATEMENT_STARTS))
    if token.is_word("FOR"):
        return starts_statement
    if token.is_word("IF") and after is not None:
        if after.is_word("EXISTS", "NOT") and not starts_statement:
            return False  # DROP TABLE IF EXISTS, ADD COLUMN IF NOT EXISTS, ...
        return not (_is_symbol(after, "(") and _has_top_comma(tokens, index + 1))  # IF(a, b, c) is a function
    return False


def _is_symbol(token: Token, text: str) -> bool:
    return token.kind == Kind.SYMBOL and token.text == text


def _has_top_comma(tokens: Sequence[Token], open_index: int) -> bool:
    """Whether the parenthesized group opening at ``open_index`` has a comma of its own."""
    depth = 0
    for token in tokens[open_index:]:
        if token.kind != Kind.SYMBOL:
            continue
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
            if depth == 0:
                return False
        elif token.text == "," and depth == 1:
            return True
    return False
