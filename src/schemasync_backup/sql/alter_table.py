"""ALTER TABLE's clauses, read from tokens into the changes that touch stored values or names.

Clauses that change no stored value (keys, checks, defaults, options, partitioning that keeps
every row) read as nothing; a clause outside this grammar raises UnrecognisedDefinitionError, so the whole
statement falls back rather than lose a clause.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from schemasync_backup.errors import UnrecognisedDefinitionError
from schemasync_backup.sql.column_definition import ColumnSpec, column_spec
from schemasync_backup.sql.cursor import Cursor, TableName
from schemasync_backup.sql.quoting import quote_identifier


@attrs.frozen
class DropColumn:
    column: str


@attrs.frozen
class ModifyColumn:
    """MODIFY (``column`` is the spec's name) or CHANGE ``column`` into the spec."""

    column: str
    spec: ColumnSpec


@attrs.frozen
class RenameColumn:
    column: str
    new_name: str


@attrs.frozen
class AddColumn:
    spec: ColumnSpec


@attrs.frozen
class ConvertCharset:
    """CONVERT TO CHARACTER SET: every character column is converted (and the table's default changes)."""

    charset: str


@attrs.frozen
class DefaultCharset:
    """The table's default character set, which columns defined without one take."""

    charset: str


@attrs.frozen
class RenameTo:
    table: TableName


@attrs.frozen
class EmptiesTable:
    """A clause that destroys rows; ``clause`` says which, for people."""

    clause: str


Clause = (DropColumn | ModifyColumn | RenameColumn | AddColumn | ConvertCharset | DefaultCharset | RenameTo
          | EmptiesTable)

#: ADD of parts that are not columns.
_NOT_COLUMNS = ("INDEX", "KEY", "FULLTEXT", "SPATIAL", "VECTOR", "CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN",
                "CHECK", "PERIOD", "SYSTEM", "PARTITION")
#: Table options that may go without "=" (engines define more, always written with one).
_OPTIONS = frozenset({
    "AUTO_INCREMENT", "AVG_ROW_LENGTH", "CHECKSUM", "TABLE_CHECKSUM", "COMMENT", "COMPRESSION", "CONNECTION", "DATA",
    "INDEX", "DELAY_KEY_WRITE", "ENCRYPTED", "ENCRYPTION_KEY_ID", "ENGINE", "IETF_QUOTES", "INSERT_METHOD",
    "KEY_BLOCK_SIZE", "MAX_ROWS", "MIN_ROWS", "PACK_KEYS", "PAGE_CHECKSUM", "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL", "PASSWORD", "ROW_FORMAT", "SEQUENCE", "STATS_AUTO_RECALC", "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES", "TABLESPACE", "TRANSACTIONAL", "UNION",
})


def clauses(cursor: Cursor, *, ignore: bool) -> tuple[Clause, ...]:
    """Every clause from the cursor to the end (``ignore``: the statement is ALTER IGNORE TABLE)."""
    found: list[Clause] = []
    while not cursor.done():
        start = cursor.at
        verb = cursor.word_text()
        reader = _READERS.get(verb)
        if reader is None:
            cursor.at = start
            found += _option(cursor)
        else:
            found += reader(cursor, ignore)
        # Table options may follow each other without commas.
        cursor.symbol(",")
    return tuple(found)


def _add(cursor: Cursor, ignore: bool) -> list[Clause]:
    column = cursor.word("COLUMN")
    following = cursor.peek()
    if not column and following is not None and following.is_word(*_NOT_COLUMNS):
        # PRIMARY KEY, UNIQUE, or CONSTRAINT [name] PRIMARY KEY / UNIQUE
        head = [cursor.peek(ahead) for ahead in range(3)] if following.is_word("CONSTRAINT") else [following]
        unique = any(token is not None and token.is_word("PRIMARY", "UNIQUE") for token in head)
        cursor.skip_item()
        if ignore and unique:
            return [EmptiesTable("ADD a PRIMARY or UNIQUE key under IGNORE, which deletes the rows it finds duplicate")]
        return []
    cursor.words("IF", "NOT", "EXISTS")
    if cursor.is_symbol("("):
        return [AddColumn(spec) for spec in cursor.each_in_group(column_spec)]
    return [AddColumn(column_spec(cursor))]


def _drop(cursor: Cursor, _ignore: bool) -> list[Clause]:
    if cursor.words("SYSTEM", "VERSIONING"):
        return [EmptiesTable("DROP SYSTEM VERSIONING, which deletes the history rows")]
    if cursor.word("PARTITION"):
        cursor.words("IF", "EXISTS")
        return [EmptiesTable(f"DROP PARTITION {_partitions(cursor)}")]
    if cursor.word("PRIMARY", "INDEX", "KEY", "FOREIGN", "CONSTRAINT", "CHECK", "PERIOD"):
        cursor.skip_item()
        return []
    cursor.word("COLUMN")
    cursor.words("IF", "EXISTS")
    column = cursor.name()
    cursor.word("RESTRICT", "CASCADE")
    return [DropColumn(column)]


def _modify(cursor: Cursor, _ignore: bool) -> list[Clause]:
    cursor.word("COLUMN")
    cursor.words("IF", "EXISTS")
    spec = column_spec(cursor)
    return [ModifyColumn(spec.name, spec)]


def _change(cursor: Cursor, _ignore: bool) -> list[Clause]:
    cursor.word("COLUMN")
    cursor.words("IF", "EXISTS")
    old = cursor.name()
    return [ModifyColumn(old, column_spec(cursor))]


def _rename(cursor: Cursor, _ignore: bool) -> list[Clause]:
    if cursor.word("COLUMN"):
        old = cursor.name()
        cursor.expect_word("TO")
        return [RenameColumn(old, cursor.name())]
    if cursor.word("INDEX", "KEY"):
        cursor.skip_item()
        return []
    if not cursor.word("TO", "AS"):
        cursor.symbol("=")
    return [RenameTo(cursor.table())]


def _convert(cursor: Cursor, _ignore: bool) -> list[Clause]:
    if not cursor.word("TO"):
        cursor.skip_item()  # CONVERT PARTITION ... TO TABLE, CONVERT TABLE ... TO PARTITION: the rows move
        return []
    if not cursor.words("CHARACTER", "SET"):
        cursor.expect_word("CHARSET")
    charset = cursor.value().lower()
    if cursor.word("COLLATE"):
        cursor.value()
    return [ConvertCharset(charset)]


def _truncate(cursor: Cursor, _ignore: bool) -> list[Clause]:
    cursor.expect_word("PARTITION")
    return [EmptiesTable(f"TRUNCATE PARTITION {_partitions(cursor)}")]


def _partitions(cursor: Cursor) -> str:
    """ALL, or partition names: a comma followed by anything but another lone name starts the next clause."""
    if cursor.word("ALL"):
        return "ALL"
    names = [cursor.name()]
    while cursor.is_symbol(",") and (cursor.peek(2) is None or cursor.is_symbol(",", ahead=2)):
        cursor.symbol(",")
        names.append(cursor.name())
    return ", ".join(map(quote_identifier, names))


def _discard(cursor: Cursor, _ignore: bool) -> list[Clause]:
    cursor.skip_item()
    return [EmptiesTable("DISCARD TABLESPACE")]


def _order_by(cursor: Cursor, _ignore: bool) -> list[Clause]:
    """ORDER BY a [ASC|DESC], b ...: a comma followed by anything but another column starts the next clause."""
    cursor.expect_word("BY")
    while True:
        cursor.name()
        cursor.word("ASC", "DESC")
        after = cursor.peek(2)
        another = after is None or cursor.is_symbol(",", ahead=2) or after.is_word("ASC", "DESC")
        if not (cursor.is_symbol(",") and another):
            return []
        cursor.symbol(",")


def _keeps_rows(cursor: Cursor, _ignore: bool) -> list[Clause]:
    cursor.skip_item()
    return []


def _option(cursor: Cursor) -> list[Clause]:
    """A table option: ``[DEFAULT] CHARSET [=] x``, ``[DEFAULT] COLLATE [=] x``, ``ENGINE [=] x``, ..."""
    cursor.word("DEFAULT")
    if cursor.word("CHARSET") or cursor.words("CHARACTER", "SET"):
        cursor.symbol("=")
        return [DefaultCharset(cursor.value().lower())]
    if cursor.word("COLLATE"):
        cursor.symbol("=")
        return [DefaultCharset(cursor.value().lower().split("_", 1)[0])]
    name = cursor.word_text()
    if name in ("DATA", "INDEX"):
        cursor.expect_word("DIRECTORY")
    if not cursor.symbol("=") and name not in _OPTIONS:
        raise UnrecognisedDefinitionError(f"no rule for the ALTER TABLE clause {name}", subject=name)
    value = cursor.value()
    return [EmptiesTable("ENGINE=BLACKHOLE, which keeps no rows")] if (name, value.upper()) == (
        "ENGINE", "BLACKHOLE") else []


_READERS: dict[str, Callable[[Cursor, bool], list[Clause]]] = {
    "ADD": _add, "DROP": _drop, "MODIFY": _modify, "CHANGE": _change, "RENAME": _rename, "CONVERT": _convert,
    "TRUNCATE": _truncate, "DISCARD": _discard, "ORDER": _order_by,
    # Defaults and visibility, the tablespace, how the server runs it, partitioning that keeps every row (it
    # refuses rather than drops rows that fit no partition).
    **dict.fromkeys(("ALTER", "IMPORT", "FORCE", "ENABLE", "DISABLE", "ALGORITHM", "LOCK", "COALESCE", "REORGANIZE",
                     "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REMOVE", "PARTITION"), _keeps_rows),
}
