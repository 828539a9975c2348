"""What each statement of a migration does to tables, rows and columns, read from its tokens.

sqlglot's MySQL grammar lacks much of MariaDB's DDL (ALTER TABLE's CONVERT TO, DROP PARTITION,
IGNORE, RENAME TABLE, many column types) and turns such statements into opaque commands, so
DDL is read here and in ``alter_table``; DELETE and UPDATE go through sqlglot's parser
(:func:`tokens.written_tables`), which tells the tables they write from those they only read.
Statements that change no stored row (SELECT, CREATE VIEW, CREATE INDEX, ...) read as None;
whatever lies outside this grammar reads as :class:`NotUnderstood`, never as None.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from schemasync_backup.errors import UnrecognisedDefinitionError
from schemasync_backup.sql import alter_table
from schemasync_backup.sql.cursor import Cursor, TableName
from schemasync_backup.sql.script import Statement
from schemasync_backup.sql.tokens import Kind, Token, tokenize, written_tables


@attrs.frozen
class LosesRows:
    """Rows of ``tables`` are destroyed (DROP, TRUNCATE, DELETE, UPDATE, ...); ``verb`` says how, for people.

    ``cascade`` is the foreign-key event the lost rows fire in the tables that reference them:
    "DELETE" or "UPDATE"; None where the server fires none (DROP, TRUNCATE)."""

    tables: tuple[TableName, ...]
    verb: str
    cascade: str | None = None


@attrs.frozen
class CreateTable:
    """A table (or a temporary one) that holds no current data: a statement naming it later names a table."""

    table: TableName


@attrs.frozen
class DropDatabase:
    database: str


@attrs.frozen
class RenameTables:
    renames: tuple[tuple[TableName, TableName], ...]


@attrs.frozen
class AlterTable:
    table: TableName
    clauses: tuple[alter_table.Clause, ...]


@attrs.frozen
class UseDatabase:
    database: str


@attrs.frozen
class CreateRoutine:
    """A procedure or function; ``body`` is what it does when called (None: nothing that destroys data)."""

    name: str
    body: NotUnderstood | None


@attrs.frozen
class CallRoutine:
    name: str


@attrs.frozen
class NotUnderstood:
    why: str
    #: Every identifier the statement holds: the tables it may touch are among them.
    names: tuple[str, ...]


Action = (LosesRows | CreateTable | DropDatabase | RenameTables | AlterTable | UseDatabase | CreateRoutine | CallRoutine
          | NotUnderstood)
_Reader = Callable[[Cursor, Statement], Action | None]

#: Statements that change no stored row (ANALYZE and SET are read: they may run another statement).
_HARMLESS = frozenset({
    "SELECT", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "HELP", "DO", "START", "COMMIT",
    "ROLLBACK", "SAVEPOINT", "RELEASE", "XA", "LOCK", "UNLOCK", "FLUSH", "OPTIMIZE", "CHECK", "CHECKSUM",
    "GRANT", "REVOKE", "PREPARE", "DEALLOCATE", "SIGNAL", "RESIGNAL", "GET", "HANDLER", "BACKUP", "KILL",
})
#: Words that mark a stored program's body as one that may destroy data.
_DESTRUCTIVE = ("DELETE", "UPDATE", "REPLACE", "DROP", "TRUNCATE", "ALTER", "RENAME", "CALL", "EXECUTE", "LOAD",
                "CREATE")
#: Statements that MariaDB runs as compound blocks outside stored programs.
_BLOCKS = frozenset({"IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR"})
#: Objects that hold no rows.
_ROWLESS = frozenset({"VIEW", "INDEX", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "USER", "ROLE", "SERVER",
                      "PACKAGE"})
_WORDS = re.compile(r"`((?:[^`]|``)+)`|([^\W\d][\w$]*)")


def read(statement: Statement) -> Action | None:
    """What ``statement`` does; None when it destroys nothing."""
    if statement.unreadable:
        return NotUnderstood("it ends inside a quoted string or a comment", _words(statement.text))
    if not statement.balanced:
        return _unknown(statement.tokens, "its BEGIN ... END blocks do not close, so where it ends is unclear")
    try:
        return _statement(Cursor(statement.tokens), statement)
    except UnrecognisedDefinitionError as exc:
        return _unknown(statement.tokens, str(exc))


def _body_effect(tokens: tuple[Token, ...], what: str) -> NotUnderstood | None:
    """What a stored program's body may do when it runs: nothing, unless it holds a statement that may destroy
    data (the analysis does not follow a body's branches)."""
    found = sorted({token.text.upper() for token in tokens if token.is_word(*_DESTRUCTIVE)})
    return _unknown(tokens, f"{what} holds {', '.join(found)} statements") if found else None


def program_effect(body: str, what: str) -> NotUnderstood | None:
    """What a stored program may do when it runs (see ``_body_effect``), from its text: a captured procedure's."""
    tokens = tokenize(body)
    if tokens is None:
        return NotUnderstood(f"{what} ends inside a quoted string or a comment", _words(body))
    return _body_effect(tuple(tokens), what)


def _words(text: str) -> tuple[str, ...]:
    """The identifiers of text that cannot be tokenized, as well as a pattern finds them."""
    return tuple(dict.fromkeys(quoted.replace("``", "`") or word for quoted, word in _WORDS.findall(text)))


def _unknown(tokens: tuple[Token, ...], why: str) -> NotUnderstood:
    names = (token.identifier for token in tokens)
    return NotUnderstood(why, tuple(dict.fromkeys(name for name in names if name is not None)))


def _statement(cursor: Cursor, statement: Statement) -> Action | None:
    if cursor.is_symbol(":", ahead=1):
        return _body_effect(statement.tokens, "the labelled block")
    verb = cursor.word_text()
    if verb in _HARMLESS or (verb == "BEGIN" and not cursor.words("NOT", "ATOMIC")):
        return None  # BEGIN alone starts a transaction
    if verb in _BLOCKS or verb == "BEGIN":
        return _body_effect(statement.tokens, f"the {verb} block")
    reader = _READERS.get(verb)
    if reader is None:
        raise UnrecognisedDefinitionError(f"no rule for {verb} statements", subject=verb)
    return reader(cursor, statement)


def _drop(cursor: Cursor, _statement: Statement) -> Action | None:
    if cursor.word("TEMPORARY"):
        return None  # drops only temporary tables
    kind = cursor.word_text()
    if kind in ("TABLE", "TABLES", "SEQUENCE"):
        cursor.words("IF", "EXISTS")
        return LosesRows(cursor.tables(), "DROP SEQUENCE" if kind == "SEQUENCE" else "DROP TABLE")
    if kind in ("DATABASE", "SCHEMA"):
        cursor.words("IF", "EXISTS")
        return DropDatabase(cursor.name())
    if kind in _ROWLESS:
        return None
    raise UnrecognisedDefinitionError(f"no rule for DROP {kind}", subject=kind)


def _truncate(cursor: Cursor, _statement: Statement) -> Action:
    cursor.word("TABLE")
    return LosesRows((cursor.table(),), "TRUNCATE TABLE")


def _create(cursor: Cursor, statement: Statement) -> Action | None:
    replace = cursor.words("OR", "REPLACE")
    _skip_create_options(cursor)
    temporary = cursor.word("TEMPORARY")  # creates (or replaces) only a temporary table
    kind = cursor.word_text()
    if kind in ("VIEW", "INDEX", "USER", "ROLE", "SERVER"):
        return None
    cursor.words("IF", "NOT", "EXISTS")
    if kind in ("TABLE", "SEQUENCE"):
        table = cursor.table()
        return LosesRows((table,), f"CREATE OR REPLACE {kind}") if replace and not temporary else CreateTable(table)
    if kind in ("DATABASE", "SCHEMA"):
        return DropDatabase(cursor.name()) if replace else None
    if kind in ("PROCEDURE", "FUNCTION"):
        name = cursor.table().name
        return CreateRoutine(name, _body_effect(statement.tokens[cursor.at:], f"{kind.lower()} {name}"))
    if kind == "TRIGGER":
        # The body follows FOR EACH ROW [FOLLOWS|PRECEDES other]: the event before it is no statement.
        cursor.skip_to_word("EACH")
        cursor.expect_word("ROW")
        if cursor.word("FOLLOWS", "PRECEDES"):
            cursor.name()
        return _body_effect(statement.tokens[cursor.at:], "the trigger's body")
    if kind == "EVENT":
        cursor.skip_to_word("DO")
        return _body_effect(statement.tokens[cursor.at:], "the event's body")
    raise UnrecognisedDefinitionError(f"no rule for CREATE {kind}", subject=kind)


def _skip_create_options(cursor: Cursor) -> None:
    """ALGORITHM=, DEFINER=, SQL SECURITY, AGGREGATE and the kinds of index, before the object's kind."""
    while True:
        if cursor.word("ALGORITHM"):
            cursor.symbol("=")
            cursor.value()
        elif cursor.word("DEFINER"):
            cursor.symbol("=")
            cursor.account()
        elif cursor.words("SQL", "SECURITY"):
            cursor.value()
        elif not cursor.word("AGGREGATE", "UNIQUE", "FULLTEXT", "SPATIAL", "VECTOR", "ONLINE", "OFFLINE"):
            return


def _alter(cursor: Cursor, statement: Statement) -> Action | None:
    cursor.word("ONLINE")
    ignore = cursor.word("IGNORE")
    _skip_create_options(cursor)
    kind = cursor.word_text()
    if kind == "EVENT":
        return _body_effect(statement.tokens[cursor.at:], "the event's body") if cursor.skip_to_word(
            "DO", required=False) else None
    if kind in ("DATABASE", "SCHEMA", "VIEW", "PROCEDURE", "FUNCTION", "SEQUENCE", "USER", "SERVER"):
        return None
    if kind != "TABLE":
        raise UnrecognisedDefinitionError(f"no rule for ALTER {kind}", subject=kind)
    cursor.words("IF", "EXISTS")
    table = cursor.table()
    _skip_wait(cursor)
    return AlterTable(table, alter_table.clauses(cursor, ignore=ignore))


def _skip_wait(cursor: Cursor) -> None:
    if cursor.word("WAIT"):
        cursor.take()
    cursor.word("NOWAIT")


def _rename(cursor: Cursor, _statement: Statement) -> Action | None:
    kind = cursor.word_text()
    if kind == "USER":
        return None
    if kind not in ("TABLE", "TABLES"):
        raise UnrecognisedDefinitionError(f"no rule for RENAME {kind}", subject=kind)
    cursor.words("IF", "EXISTS")
    renames = []
    while True:
        old = cursor.table()
        _skip_wait(cursor)
        cursor.expect_word("TO")
        renames.append((old, cursor.table()))
        if not cursor.symbol(","):
            return RenameTables(tuple(renames))


def _insert_target(cursor: Cursor) -> TableName:
    while cursor.word("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"):
        pass
    return cursor.table()


def _replace(cursor: Cursor, _statement: Statement) -> Action:
    # REPLACE deletes the rows a new one clashes with, which fires ON DELETE actions.
    return LosesRows((_insert_target(cursor),), "REPLACE INTO", cascade="DELETE")


def _insert(cursor: Cursor, _statement: Statement) -> Action | None:
    target = _insert_target(cursor)
    if not cursor.ahead_words("ON", "DUPLICATE", "KEY", "UPDATE"):
        return None
    return LosesRows((target,), "INSERT ... ON DUPLICATE KEY UPDATE", cascade="UPDATE")


def _written(cursor: Cursor, statement: Statement) -> Action:
    """The tables a DELETE or UPDATE writes, read by sqlglot without MariaDB's modifiers, which it lacks."""
    modifiers: list[Token] = []
    while (token := cursor.peek()) is not None and token.is_word("LOW_PRIORITY", "QUICK", "IGNORE"):
        modifiers.append(cursor.take())
    offset, text = statement.tokens[0].start, statement.text
    for token in reversed(modifiers):
        text = text[: token.start - offset] + text[token.end - offset:]
    return _written_by(text, statement.tokens[0].text.upper())


def _with(_cursor: Cursor, statement: Statement) -> Action | None:
    """WITH ... SELECT reads; MySQL's WITH ... DELETE and WITH ... UPDATE write."""
    depth = 0
    for token in statement.tokens:
        depth += {"(": 1, ")": -1}.get(token.text, 0) if token.kind == Kind.SYMBOL else 0
        if depth == 0 and token.is_word("DELETE", "UPDATE"):
            return _written_by(statement.text, token.text.upper())
    return None


def _written_by(text: str, verb: str) -> Action:
    written = written_tables(text)
    if written is None:
        raise UnrecognisedDefinitionError(f"sqlglot cannot read this {verb}", subject=text)
    tables = tuple(TableName(name, database) for database, name in written)
    return LosesRows(tables, "DELETE FROM" if verb == "DELETE" else "UPDATE", cascade=verb)


def _use(cursor: Cursor, _statement: Statement) -> Action:
    return UseDatabase(cursor.name())


def _call(cursor: Cursor, _statement: Statement) -> Action:
    return CallRoutine(cursor.table().name)


def _prefixed(cursor: Cursor, statement: Statement) -> Action | None:
    """SET STATEMENT ... FOR <statement> and ANALYZE [FORMAT=...] <statement> run the statement; other SET
    statements and ANALYZE TABLE change no row."""
    if statement.tokens[0].is_word("SET"):
        if not cursor.word("STATEMENT"):
            return None
        cursor.skip_to_word("FOR")
    elif cursor.word("TABLE", "TABLES", "NO_WRITE_TO_BINLOG", "LOCAL"):
        return None
    elif cursor.word("FORMAT"):
        cursor.symbol("=")
        cursor.value()
    rest = statement.tokens[cursor.at:]
    if not rest:
        raise UnrecognisedDefinitionError("nothing to run after it", subject=statement.text)
    inner = Statement(statement.text[rest[0].start - statement.tokens[0].start:], rest)
    return _statement(Cursor(rest), inner)


_READERS: dict[str, _Reader] = {
    "DROP": _drop, "TRUNCATE": _truncate, "CREATE": _create, "ALTER": _alter, "RENAME": _rename,
    "DELETE": _written, "UPDATE": _written, "WITH": _with, "REPLACE": _replace, "INSERT": _insert, "USE": _use,
    "CALL": _call, "SET": _prefixed, "ANALYZE": _prefixed,
}
