"""Statements as a script for the mysql/mariadb command-line client, so that it sends exactly them.

The client does not pass a script through: it reads it line by line, runs ``\\x`` commands it
finds outside quotes and ``/* */`` comments (``\\!`` runs a shell command), runs a line that
starts with one of its command words (``use``, ``source``, ...), splits on the delimiter,
drops comments unless started with ``--comments``, turns CR LF into LF, and drops the line
break after a line that starts with ``delimiter``. ``lex`` follows its reading of a statement
(client/mysql.cc, ``add_line``) so that ``to_sql`` can prove the client sends each statement
unchanged, or refuse.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

import attrs

from schemasync_backup.errors import UnsafeScriptError

#: The client's own command words; a statement starting with one would run as that command.
CLIENT_COMMANDS = frozenset({
    "?", "charset", "clear", "connect", "delimiter", "edit", "ego", "exit", "go", "help", "nopager", "notee",
    "nowarning", "pager", "print", "prompt", "query_attributes", "quit", "rehash", "resetconnection", "source",
    "ssl_session_data_print", "status", "system", "tee", "use", "warnings",
})
#: Read by the client as NULL, and copied to the server as it is: not a command.
_NULL_ESCAPE = "N"
#: What may follow "--" for the client to read a comment ("" is the end of the line).
_COMMENT_ENDS = ("", " ", "\t", "\x0b", "\x0c", "\r")
#: sql_mode words that turn "..." into identifiers (the combination modes include ANSI_QUOTES).
_ANSI_QUOTES = frozenset({"ANSI_QUOTES", "ANSI", "DB2", "MAXDB", "MSSQL", "ORACLE", "POSTGRESQL"})
_SQL_MODE = re.compile(r"^SET SESSION sql_mode = '([A-Z_,]*)'$")


@attrs.frozen
class Lexed:
    """How the client reads one statement."""

    #: Why the client would not send the text unchanged (runs a command, ...), or "".
    problem: str
    #: The text has comments, which the client drops unless started with ``--comments``.
    comments: bool
    #: The last line ends inside a ``--`` or ``#`` comment: a delimiter there would be comment.
    open_line_comment: bool


def lex(statement: str, *, backslash_escapes: bool, ansi_quotes: bool) -> Lexed:
    """Read ``statement`` as the client does under the given sql_mode (it asks the server which)."""
    if "\0" in statement:
        return Lexed("it contains a NUL byte, which the client refuses", False, False)
    if "\r\n" in statement:
        return Lexed("it contains CR LF line breaks, which the client turns into LF", False, False)
    words = statement.split(None, 1)
    if not words or not statement[0].isalpha() or words[0].lower().rstrip(";") in CLIENT_COMMANDS:
        return Lexed("it does not start with an SQL keyword, or starts with a client command word", False, False)
    reader = _Reader(backslash_escapes=backslash_escapes, ansi_quotes=ansi_quotes)
    for line in statement.split("\n"):
        if line[:9].lower() == "delimiter":
            return Lexed("a line starts with 'delimiter': the client drops the line break after it", False, False)
        reader.read(line)
        if reader.problem:
            return Lexed(reader.problem, False, False)
    if reader.quote or reader.block:
        return Lexed("it ends inside a quoted string or a /* comment */", False, False)
    return Lexed("", reader.comments, reader.line_comment)


@attrs.define
class _Reader:
    """The client's state between characters: in which quote, in a comment, what it found."""

    backslash_escapes: bool
    ansi_quotes: bool
    quote: str = ""
    block: bool = False
    comments: bool = False
    line_comment: bool = False
    problem: str = ""

    def read(self, line: str) -> None:
        self.line_comment = False
        position = 0
        while position < len(line) and not self.problem and not self.line_comment:
            position += self._step(line[position], line[position + 1:position + 4])

    def _step(self, char: str, ahead: str) -> int:
        """Take ``char`` (``ahead`` are the next three on the line); how many characters it used."""
        following = ahead[:1]
        if self.block:
            if char == "*" and following == "/":
                self.block = False
                if ahead[1:2] and not ahead[1:2].isspace():
                    self.problem = "a /* comment */ touches what follows it: the client puts a space there"
                return 2
        elif char == "\\" and self._escapes():
            if not following:
                self.problem = "a line ends in a backslash, which the client drops"
            elif not self.quote and following != _NULL_ESCAPE:
                self.problem = f"the client would run \\{following} as a command"
            return 2
        elif self.quote:
            if char == self.quote:
                self.quote = ""
        elif char == "#" or (char == "-" and following == "-" and ahead[1:2] in _COMMENT_ENDS):
            self.comments = self.line_comment = True
        elif char == "/" and following == "*" and not ahead[1:].startswith(("!", "M!")):
            # /*! and /*M! are executable comments: the client reads (and keeps) them as code.
            self.comments = self.block = True
            return 2
        elif char in "'\"`":
            self.quote = char
        return 1

    def _escapes(self) -> bool:
        """Whether a backslash here escapes (in strings) or starts a command (outside them)."""
        if self.quote == "`" or (self.quote == '"' and self.ansi_quotes):
            return False
        return not (self.quote and not self.backslash_escapes)


def sql_mode_of(statement: str) -> str | None:
    """The sql_mode a ``SET SESSION sql_mode = '...'`` statement sets, else None."""
    match = _SQL_MODE.match(statement)
    return match.group(1) if match else None


def delimiters() -> Iterator[str]:
    yield from (";", ";;", "$$", "//")
    yield from (f"$${number}" for number in itertools.count(1))


def delimiter_for(statement: str) -> str:
    """The first delimiter the statement cannot contain, even where it meets the statement's end."""
    return next(d for d in delimiters() if d not in statement + d[:-1])


def comment(text: str) -> str:
    """``text`` as one ``--`` comment line: line breaks, controls and backslashes escaped."""
    return "-- " + "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def check(statement: str, sql_mode: str | None) -> Lexed:
    """How the client reads ``statement``; raises when it would not send it unchanged.

    ``sql_mode`` is the session's when known; otherwise the statement must read the same under
    every mode the client distinguishes (NO_BACKSLASH_ESCAPES, ANSI_QUOTES).
    """
    modes = [sql_mode.split(",")] if sql_mode is not None else [[], ["NO_BACKSLASH_ESCAPES", "ANSI_QUOTES"],
                                                                ["NO_BACKSLASH_ESCAPES"], ["ANSI_QUOTES"]]
    readings = {lex(statement, backslash_escapes="NO_BACKSLASH_ESCAPES" not in mode,
                    ansi_quotes=not _ANSI_QUOTES.isdisjoint(mode)) for mode in modes}
    problems = sorted({reading.problem for reading in readings if reading.problem})
    if problems or len(readings) > 1:
        raise UnsafeScriptError(
            "the mysql client would not send this statement unchanged ("
            + ("; ".join(problems) or "it reads differently under different sql_modes")
            + "); run the rollback with `rollback execute` instead:\n" + statement[:500],
            subject=statement,
        )
    return readings.pop()


def checked(statements: Iterable[str], sql_mode: str | None = None) -> Iterator[tuple[str, Lexed, str | None]]:
    """Each statement with how the client reads it, and the sql_mode it runs under (None: unknown).

    The mode is the one the last ``SET SESSION sql_mode`` before it set, else ``sql_mode``.
    Raises UnsafeScriptError for a statement the client would not send unchanged.
    """
    for statement in statements:
        yield statement, check(statement, sql_mode), sql_mode
        mode = sql_mode_of(statement)
        sql_mode = sql_mode if mode is None else mode


def statement_lines(statement: str, lexed: Lexed) -> list[str]:
    """``statement`` ended by a delimiter it cannot contain, on a line of its own after a ``--`` comment."""
    delimiter = delimiter_for(statement)
    end = ("\n" if lexed.open_line_comment else "") + delimiter
    if delimiter == ";":
        return [statement + end]
    return [f"DELIMITER {delimiter}", statement + end, "DELIMITER ;"]


#: Stops a script when the client drops comments (it defaults to --skip-comments): the
#: statement reads its own text back from the server and fails unless its comment is there.
COMMENTS_GUARD = (
    "SET SESSION sql_mode = IF((SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID())"
    " LIKE CONCAT('%/', '* the client keeps comments *', '/%'), @@SESSION.sql_mode,"
    " 'run this script with mysql --comments: without it the client drops the comments of routine bodies')"
    " /* the client keeps comments */;",
)
