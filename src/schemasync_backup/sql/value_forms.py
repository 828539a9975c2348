"""How each column type's values travel exactly: what to select, and how to write them back.

Every value is read as the bytes ``CAST(... AS BINARY)`` gives (or, for long values, as the
text protocol sends it with ``character_set_results = binary``): text in its column's own
charset, numbers and times as the server prints them. A binary string is what LOAD DATA with
``CHARACTER SET binary`` stores into a column, and what ``_binary X'...'`` is in an INSERT, so
those bytes go back unchanged. The kinds below are where the plain value would not.
"""

from __future__ import annotations

import enum
import re

from schemasync_backup.errors import InvalidInputError
from schemasync_backup.sql.quoting import quote_string


class ValueKind(enum.StrEnum):
    #: Integers, DECIMAL, DOUBLE: the printed text is exact (DOUBLE's is the shortest that reads back).
    NUMBER = "number"
    #: FLOAT prints only 6 digits; widened to DOUBLE (exact) it prints every bit.
    FLOAT = "float"
    #: BIT, ENUM and SET travel as their number (the bits, the index, the bitmask). A BIT's bytes
    #: would do, but a label would not: the index-0 error value and a '' member both print ''
    #: and a label '2' hides index 2; and keys must compare the way ORDER BY sorts (by number).
    ORDINAL = "ordinal"
    #: Dates and times: ASCII in the session's time zone (zero dates and fractions included).
    TEMPORAL = "temporal"
    #: TEXT, BLOB, JSON and spatial values (SRID and WKB): the server's bytes, escaped by the client,
    #: because escaping on the server builds a string that must fit in max_allowed_packet.
    LONG = "long"
    #: CHAR, VARCHAR, BINARY, VARBINARY, INET4/6, UUID, ...: their bytes (INET6 and UUID the native
    #: 16, which a binary string stores back as such; their text could be 16 characters long too).
    BYTES = "bytes"


_KINDS = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
                     "double", "real"), ValueKind.NUMBER),
    "float": ValueKind.FLOAT,
    **dict.fromkeys(("bit", "enum", "set"), ValueKind.ORDINAL),
    **dict.fromkeys(("date", "datetime", "timestamp", "time", "year"), ValueKind.TEMPORAL),
    **dict.fromkeys(("tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob",
                     "json", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                     "multipolygon", "geometrycollection", "geomcollection"), ValueKind.LONG),
}
_TYPE_NAME = re.compile(r"\s*([a-z]+)")
#: What a NUMBER, FLOAT or ORDINAL value may look like before it is written into a statement bare.
_NUMERAL = re.compile(rb"[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?")


def value_kind(column_type: str) -> ValueKind:
    """The kind of a column of type ``column_type`` (as ``information_schema`` or SHOW CREATE TABLE spell it)."""
    name = _TYPE_NAME.match(column_type.lower())
    return _KINDS.get(name.group(1) if name else "", ValueKind.BYTES)


def value_expression(column: str, kind: ValueKind) -> str:
    """What to select for the (quoted) ``column``: the value in its exact form."""
    if kind is ValueKind.FLOAT:
        return f"CAST({column} AS DOUBLE)"
    if kind is ValueKind.ORDINAL:
        return f"({column} + 0)"
    return column


def numeral(value: bytes) -> str:
    """A number the server printed, as bare SQL; refuses anything else (it is written into a statement)."""
    if not _NUMERAL.fullmatch(value):
        raise InvalidInputError(f"a number was expected, not {value!r}", subject=value)
    return value.decode("ascii")


def key_literal(value: bytes, kind: ValueKind, *, charset: str | None, collation: str | None) -> str:
    """A literal that compares with the column the way ORDER BY on it sorts.

    Numbers bare (a quoted one would compare as a DOUBLE), times quoted, text in its own charset
    and collation (a plain binary string would compare byte by byte), bytes as bytes.
    """
    if kind in (ValueKind.NUMBER, ValueKind.FLOAT, ValueKind.ORDINAL):
        return numeral(value)
    if kind is ValueKind.TEMPORAL:
        return quote_string(value.decode("ascii"))
    if charset and charset != "binary":
        return f"_{charset} X'{value.hex()}'" + (f" COLLATE {collation}" if collation else "")
    return f"_binary X'{value.hex()}'"


def insert_literal(value: bytes | None, *, ordinal: bool) -> str:
    """A value of an INSERT's VALUES list: the same value LOAD DATA stores from the field."""
    if value is None:
        return "NULL"
    # An ordinal's number must reach the column as a number (LOAD DATA: CAST(@v AS UNSIGNED)).
    return numeral(value) if ordinal else f"_binary X'{value.hex()}'"
