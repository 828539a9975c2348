"""A position in a statement's tokens, and the small moves a hand-written statement reader makes.

Tokens the readers do not expect raise UnrecognisedDefinitionError, which ``migration.read`` turns into a
NotUnderstood statement: the analysis falls back, callers never see the error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

from schemasync_backup.errors import UnrecognisedDefinitionError
from schemasync_backup.sql.tokens import Kind, Token

T = TypeVar("T")


@attrs.frozen
class TableName:
    name: str
    #: Set only when the statement qualifies the name.
    database: str | None = None


@attrs.define
class Cursor:
    tokens: Sequence[Token]
    at: int = 0

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def done(self) -> bool:
        return self.at >= len(self.tokens)

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise UnrecognisedDefinitionError("the statement ends too early", subject=None)
        self.at += 1
        return token

    def word(self, *words: str) -> bool:
        """Take the next token if it is one of ``words``."""
        token = self.peek()
        if token is None or not token.is_word(*words):
            return False
        self.at += 1
        return True

    def words(self, *sequence: str) -> bool:
        """Take the next tokens if they are ``sequence``, in order."""
        if all((token := self.peek(ahead)) is not None and token.is_word(word) for ahead, word in enumerate(sequence)):
            self.at += len(sequence)
            return True
        return False

    def expect_word(self, word: str) -> None:
        if not self.word(word):
            raise UnrecognisedDefinitionError(f"expected {word} at {self._here()}", subject=word)

    def word_text(self) -> str:
        """The next token, which must be a word, in capitals."""
        token = self.take()
        if token.kind != Kind.WORD:
            raise UnrecognisedDefinitionError(f"expected a keyword at {token.text!r}", subject=token.text)
        return token.text.upper()

    def name(self) -> str:
        """The next token, which must be an identifier (quoted or not)."""
        token = self.take()
        if token.identifier is None:
            raise UnrecognisedDefinitionError(f"expected a name at {token.text!r}", subject=token.text)
        return token.identifier

    def table(self) -> TableName:
        """``name`` or ``database.name``."""
        first = self.name()
        return TableName(self.name(), first) if self.symbol(".") else TableName(first)

    def tables(self) -> tuple[TableName, ...]:
        """Comma-separated table names."""
        found = [self.table()]
        while self.symbol(","):
            found.append(self.table())
        return tuple(found)

    def value(self) -> str:
        """One value: a word, name, literal or parenthesized group, as text."""
        if self.is_symbol("("):
            return "(" + " ".join(token.text for token in self.group()) + ")"
        token = self.take()
        if token.kind == Kind.SYMBOL:
            raise UnrecognisedDefinitionError(f"expected a value at {token.text!r}", subject=token.text)
        return token.text

    def account(self) -> None:
        """Skip a DEFINER account: user, user@host (each part quoted or not), CURRENT_USER[()]."""
        self.take()
        if self.symbol("@"):
            self.take()
        elif self.is_symbol("(") and self.is_symbol(")", ahead=1):
            self.at += 2

    def symbol(self, text: str) -> bool:
        if self.is_symbol(text):
            self.at += 1
            return True
        return False

    def is_symbol(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token is not None and token.kind == Kind.SYMBOL and token.text == text

    def ahead_words(self, *sequence: str) -> bool:
        """Whether the words ``sequence`` (in capitals) come somewhere later in the statement; nothing is taken."""
        words = [token.text.upper() if token.kind == Kind.WORD else None for token in self.tokens[self.at:]]
        return any(tuple(words[index:index + len(sequence)]) == sequence for index in range(len(words)))

    def group(self) -> list[Token]:
        """Take a parenthesized group; the tokens inside it."""
        if not self.symbol("("):
            raise UnrecognisedDefinitionError(f"expected ( at {self._here()}", subject="(")
        start, depth = self.at, 1
        while depth:
            token = self.take()
            if token.kind == Kind.SYMBOL and token.text in ("(", ")"):
                depth += 1 if token.text == "(" else -1
        return list(self.tokens[start:self.at - 1])

    def each_in_group(self, read: Callable[[Cursor], T]) -> list[T]:
        """``read`` each comma-separated item of a parenthesized group."""
        if not self.symbol("("):
            raise UnrecognisedDefinitionError(f"expected ( at {self._here()}", subject="(")
        items = [read(self)]
        while self.symbol(","):
            items.append(read(self))
        if not self.symbol(")"):
            raise UnrecognisedDefinitionError(f"expected ) at {self._here()}", subject=")")
        return items

    def skip_item(self) -> None:
        """Skip to the next comma or closing parenthesis outside groups (or the end)."""
        while not self.done() and not self.is_symbol(",") and not self.is_symbol(")"):
            if self.is_symbol("("):
                self.group()
            else:
                self.at += 1

    def skip_to_word(self, word: str, *, required: bool = True) -> bool:
        """Take everything up to and including ``word`` outside groups."""
        while not self.done():
            if self.is_symbol("("):
                self.group()
            elif self.take().is_word(word):
                return True
        if required:
            raise UnrecognisedDefinitionError(f"expected {word}", subject=word)
        return False

    def _here(self) -> str:
        token = self.peek()
        return "the end" if token is None else repr(token.text)
