"""The text format of table rows that ``LOAD DATA`` reads: fields, lines, escapes.

A row is one line: its fields joined by a tab and ended by a newline. A field is the value's
bytes with the five bytes that would end it or change its meaning escaped by a backslash
(``\\`` ``\\0`` ``\\t`` ``\\n`` ``\\r``); NULL is ``\\N``. Nothing else is escaped and no
field is quoted, so an empty string is an empty field, and a field holding the two characters
``\\N`` is written ``\\\\N``. The statement clause that reads exactly this is :data:`FORMAT`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: NULL, as a field.
NULL = b"\\N"
#: The bytes a field escapes and what each becomes, the backslash first: the other escapes add
#: backslashes of their own, which must not be escaped again.
_ESCAPES = ((b"\\", b"\\\\"), (b"\0", b"\\0"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))
#: What LOAD DATA makes of a backslash and the byte after it; any byte not listed stands for itself.
_UNESCAPES = {escaped[1:]: raw for raw, escaped in _ESCAPES} | {b"b": b"\b", b"Z": b"\x1a"}
_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)
#: Every delimiter spelled out, in hex: the session's sql_mode (NO_BACKSLASH_ESCAPES) cannot
#: change what they mean, and no default of the server is left to apply.
FORMAT = ("CHARACTER SET binary FIELDS TERMINATED BY X'09' ENCLOSED BY '' ESCAPED BY X'5C' "
          "LINES STARTING BY '' TERMINATED BY X'0A'")


def escape(value: bytes | None) -> bytes:
    """``value`` as a field."""
    if value is None:
        return NULL
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return value


def escape_on_server(expression: str) -> str:
    """An SQL expression that escapes the binary string ``expression`` on the server as :func:`escape` does.

    Hex literals, so that no sql_mode changes what the backslashes mean.
    """
    for raw, escaped in _ESCAPES:
        expression = f"REPLACE({expression}, X'{raw.hex()}', X'{escaped.hex()}')"
    return expression


def unescape(field: bytes) -> bytes | None:
    """The value a field stands for, as LOAD DATA reads it."""
    if field == NULL:
        return None
    if b"\\" not in field:
        return field
    return _ESCAPED.sub(lambda match: _UNESCAPES.get(match.group(1), match.group(1)), field)


def rows(data: bytes) -> Iterator[list[bytes | None]]:
    """The values of each row in ``data`` (whole lines, each ended by a newline)."""
    # A raw tab or newline never occurs inside a field: splitting on them is exact.
    for text in data.split(b"\n")[:-1]:
        yield [unescape(field) for field in text.split(b"\t")]
