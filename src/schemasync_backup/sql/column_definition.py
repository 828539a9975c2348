"""A column definition in ALTER TABLE, read from tokens into what decides whether values survive.

The type comes out spelled as the server reports it (``INTEGER`` is ``int``, ``BOOL``
``tinyint(1)``, ``NUMERIC`` ``decimal``, ``JSON`` ``longtext``), so it compares with a
captured column's; attributes that change no stored value (DEFAULT, COMMENT, keys, ...) are
skipped.
"""

from __future__ import annotations

import attrs

from schemasync_backup.sql.cursor import Cursor
from schemasync_backup.sql.quoting import quote_string
from schemasync_backup.sql.tokens import Kind

#: One-word aliases, and what the server reports for each.
_ALIASES = {
    "integer": "int", "int1": "tinyint", "int2": "smallint", "int3": "mediumint", "middleint": "mediumint",
    "int4": "int", "int8": "bigint", "bool": "tinyint(1)", "boolean": "tinyint(1)", "dec": "decimal",
    "numeric": "decimal", "fixed": "decimal", "real": "double", "float4": "float", "float8": "double",
    "character": "char", "json": "longtext", "long": "mediumtext",
}
#: Types of two words (the first may also stand alone).
_PAIRS = {
    ("double", "precision"): "double", ("char", "varying"): "varchar", ("character", "varying"): "varchar",
    ("long", "varchar"): "mediumtext", ("long", "varbinary"): "mediumblob",
}
#: NATIONAL CHAR, NCHAR and NVARCHAR are utf8mb3 unless told otherwise.
_NATIONAL_CHARSET = "utf8mb3"


@attrs.frozen
class ColumnSpec:
    name: str
    #: As the server would report it: ``int unsigned``, ``varchar(10)``, ``enum('a','b')``.
    type: str
    nullable: bool = True
    #: Set only when the definition names one (a NATIONAL type names utf8mb3).
    charset: str | None = None
    collation: str | None = None
    #: A generated column: its values are computed, not stored from what it held.
    generated: bool = False


def column_spec(cursor: Cursor) -> ColumnSpec:
    """Read ``name type [attributes] [FIRST | AFTER col]`` up to the next comma or closing parenthesis."""
    name = cursor.name()
    column_type = _type(cursor)
    nullable, charset, collation, generated = not column_type.not_null, column_type.charset, None, False
    while not cursor.done() and not cursor.is_symbol(",") and not cursor.is_symbol(")"):
        if cursor.words("NOT", "NULL"):
            nullable = False
        elif cursor.word("NULL"):
            nullable = True
        elif cursor.word("DEFAULT") or cursor.words("ON", "UPDATE"):
            _skip_expression(cursor)
        elif cursor.word("CHARSET") or cursor.words("CHARACTER", "SET"):
            charset = cursor.value().lower()
        elif cursor.word("ASCII", "UNICODE"):
            charset = "latin1" if cursor.tokens[cursor.at - 1].is_word("ASCII") else "ucs2"
        elif cursor.word("COLLATE"):
            collation = cursor.value().lower()
        elif cursor.word("AS") or cursor.words("GENERATED", "ALWAYS", "AS"):
            generated = True
        elif cursor.is_symbol("("):
            cursor.group()
        else:
            cursor.take()  # keys, AUTO_INCREMENT, COMMENT, REFERENCES, INVISIBLE, FIRST, AFTER, ...
    return ColumnSpec(name, column_type.text, nullable, charset, collation, generated)


@attrs.frozen
class _Type:
    text: str
    #: The character set a NATIONAL type implies.
    charset: str | None = None
    #: SERIAL is BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE.
    not_null: bool = False


def _type(cursor: Cursor) -> _Type:
    word = cursor.word_text().lower()
    charset = None
    if word == "national":
        word, charset = cursor.word_text().lower(), _NATIONAL_CHARSET
    elif word in ("nchar", "nvarchar"):
        word, charset = word[1:], _NATIONAL_CHARSET
    if word == "serial":
        return _Type("bigint unsigned", not_null=True)
    following = cursor.peek()
    paired = _PAIRS.get((word, following.text.lower())) if following is not None and following.kind == Kind.WORD \
        else None
    if paired is not None:
        cursor.take()
    word = paired or _ALIASES.get(word, word)
    if cursor.is_symbol("("):
        args = [quote_string(token.text) if token.kind == Kind.STRING else token.text
                for token in cursor.group() if not (token.kind == Kind.SYMBOL and token.text == ",")]
        if "(" not in word:  # BOOL(1) is tinyint(1) still
            word += f"({','.join(args)})"
    modifiers = set()
    while cursor.word("UNSIGNED", "SIGNED", "ZEROFILL"):
        modifiers.add(cursor.tokens[cursor.at - 1].text.lower())
    if modifiers & {"unsigned", "zerofill"}:
        word += " unsigned"  # ZEROFILL implies UNSIGNED
    if "zerofill" in modifiers:
        word += " zerofill"
    return _Type(word, charset)


def _skip_expression(cursor: Cursor) -> None:
    """Skip a DEFAULT or ON UPDATE value: a literal, a signed number, a function call or a parenthesized one."""
    if not cursor.symbol("-"):
        cursor.symbol("+")
    if cursor.is_symbol("("):
        cursor.group()
        return
    token = cursor.take()
    following = cursor.peek()
    if token.kind == Kind.WORD and token.text.startswith("_") and following is not None \
            and following.kind == Kind.STRING:
        cursor.take()  # a character set introducer: _utf8mb4'text'
    elif cursor.is_symbol("("):
        cursor.group()  # CURRENT_TIMESTAMP(6), NOW()
