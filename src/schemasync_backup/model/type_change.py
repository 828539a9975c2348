"""Whether changing a column's definition loses values, and how: the one owner of that rule.

The rollback planner counts the rows each loss touches; the at-risk analysis backs up the
columns that have one. Only the changes listed here keep every value; any other type change
converts values and counts as a loss. Types are compared as the server reports them
(``int(11) unsigned``, ``enum('a','b')``): display widths of integers mean nothing.
"""

from __future__ import annotations

import re

import attrs

from schemasync_backup.model.snapshot import Column

_INT_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "bigint": 8}
#: Length-typed strings: characters for char/varchar, bytes for binary/varbinary.
_SIZED = {"char": "text", "varchar": "text", "binary": "bytes", "varbinary": "bytes"}
#: The capacity of the TEXT and BLOB types, in bytes.
_LOBS = {
    "tinytext": ("text", 255), "text": ("text", 65535), "mediumtext": ("text", 16777215),
    "longtext": ("text", 4294967295), "tinyblob": ("bytes", 255), "blob": ("bytes", 65535),
    "mediumblob": ("bytes", 16777215), "longblob": ("bytes", 4294967295),
}
#: Types whose one argument is a precision that may only grow (fractional seconds, bits).
_PRECISION = {"time": 0, "datetime": 0, "timestamp": 0, "bit": 1}
#: The most bytes one character takes; a charset not listed counts as 4 (the most any takes).
_CHAR_BYTES = {"ascii": 1, "latin1": 1, "binary": 1, "ucs2": 2, "utf8mb3": 3, "utf8": 3}
#: Character sets that hold every character of every other one (except bytes of ``binary``).
_UNICODE = frozenset({"utf8mb4", "utf16", "utf16le", "utf32"})
#: What each narrower character set is known to fit into, besides the Unicode ones.
_SUBSETS = {"ascii": frozenset({"latin1", "utf8mb3", "utf8"}), "latin1": frozenset({"utf8mb3", "utf8"}),
            "utf8mb3": frozenset({"utf8"}), "utf8": frozenset({"utf8mb3"}), "ucs2": frozenset({"utf8mb3", "utf8"})}
#: Types whose values are characters in a character set.
_CHARACTER = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})
_TYPE = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?(.*)$", re.DOTALL)
_ARGUMENT = re.compile(r"\s*('(?:[^'\\]|''|\\.)*'|[^,]+)\s*(?:,|$)", re.DOTALL)


@attrs.frozen
class NullsRejected:
    """The column becomes NOT NULL: its NULLs are replaced (or the change refused)."""

    def __str__(self) -> str:
        return "becomes NOT NULL"


@attrs.frozen
class CharsetNarrowed:
    """The column's characters are converted to a character set that may lack some of them."""

    old_charset: str
    new_charset: str

    def __str__(self) -> str:
        return f"changes character set from {self.old_charset} to {self.new_charset}"


@attrs.frozen
class Shortened:
    """Values longer than ``length`` are truncated (characters, or bytes when ``in_bytes``)."""

    old_type: str
    new_type: str
    length: int
    in_bytes: bool = False

    def __str__(self) -> str:
        return f"narrows from {self.old_type} to {self.new_type}"


@attrs.frozen
class ValuesRemoved:
    """An ENUM or SET loses ``values`` (SQL literals, as in the type)."""

    kind: str  # "enum" or "set"
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"loses {self.kind.upper()} values {', '.join(self.values)}"


@attrs.frozen
class OutOfRange:
    """Integers outside ``low``..``high`` do not fit the new type."""

    old_type: str
    new_type: str
    low: int
    high: int

    def __str__(self) -> str:
        return f"narrows from {self.old_type} to {self.new_type}"


@attrs.frozen
class Converted:
    """Values are converted to another type; ``narrows`` when it is the same kind with less room."""

    old_type: str
    new_type: str
    narrows: bool = False

    def __str__(self) -> str:
        verb = "narrows" if self.narrows else "changes type"
        return f"{verb} from {self.old_type} to {self.new_type}"


Loss = NullsRejected | CharsetNarrowed | Shortened | ValuesRemoved | OutOfRange | Converted


@attrs.frozen
class _Type:
    base: str
    args: tuple[str, ...]
    unsigned: bool


def losses(old: Column, new: Column) -> tuple[Loss, ...]:
    """How changing ``old`` into ``new`` loses values: nothing (empty) when every value survives."""
    found: list[Loss] = []
    if old.nullable and not new.nullable:
        found.append(NullsRejected())
    old_charset, new_charset = charset_of(old), charset_of(new)
    if old_charset and new_charset and not _fits(old_charset, new_charset):
        found.append(CharsetNarrowed(old_charset, new_charset))
    loss = _type_loss(old.type, new.type, new_charset)
    return (*found, loss) if loss is not None else tuple(found)


def charset_of(column: Column) -> str | None:
    """The character set of a character column (from its collation if need be), None for other types."""
    if column.charset:
        return column.charset.lower()
    return column.collation.split("_", 1)[0].lower() if column.collation else None


def holds_characters(column_type: str) -> bool:
    """Whether the type's values are characters (in the column's, or else the table's, character set)."""
    return _parse(column_type).base in _CHARACTER


def _fits(old: str, new: str) -> bool:
    return old == new or (new in _UNICODE and old != "binary") or new in _SUBSETS.get(old, frozenset())


def _parse(column_type: str) -> _Type:
    match = _TYPE.match(column_type)
    if match is None:
        return _Type(column_type.strip().lower(), (), False)
    base, inside, rest = match.group(1).lower(), match.group(2), match.group(3).lower()
    args = tuple(arg.strip() for arg in _ARGUMENT.findall(inside)) if inside else ()
    if base in _INT_BYTES or base == "year":
        args = ()  # a display width, not a range
    elif base in ("bool", "boolean"):
        base, args = "tinyint", ()
    elif base == "decimal":
        args = args + ("10", "0")[len(args):]  # DECIMAL means (10,0), DECIMAL(p) means (p,0)
    elif base in ("char", "binary") and not args:
        args = ("1",)
    # ZEROFILL implies UNSIGNED.
    return _Type(base, args, "unsigned" in rest or "zerofill" in rest)


def _type_loss(old_text: str, new_text: str, new_charset: str | None) -> Loss | None:
    old, new = _parse(old_text), _parse(new_text)
    if old == new:
        return None
    try:
        return _measured_loss(old, new, old_text, new_text, new_charset)
    except ValueError:  # a length or precision that is no number: a type the server refuses, whatever it means
        return Converted(old_text, new_text)


def _measured_loss(old: _Type, new: _Type, old_text: str, new_text: str, new_charset: str | None) -> Loss | None:
    if old.base in _INT_BYTES and new.base in _INT_BYTES:
        return _integer_loss(old, new, old_text, new_text)
    if old.base in ("enum", "set") and old.base == new.base:
        removed = tuple(value for value in old.args if value not in new.args)
        return ValuesRemoved(old.base, removed) if removed else None
    if _nature(old) is not None and _nature(old) == _nature(new):
        return _string_loss(old, new, old_text, new_text, new_charset)
    if old.base == new.base == "decimal":
        (old_digits, old_scale), (new_digits, new_scale) = map(int, old.args), map(int, new.args)
        # Both the digits after the point and those before it must fit.
        kept = (new_scale >= old_scale and new_digits - new_scale >= old_digits - old_scale
                and (old.unsigned or not new.unsigned))
        return None if kept else Converted(old_text, new_text, narrows=True)
    if old.base == new.base and old.base in _PRECISION:
        default = str(_PRECISION[old.base])
        kept = int((new.args or (default,))[0]) >= int((old.args or (default,))[0])
        return None if kept else Converted(old_text, new_text, narrows=True)
    if (old.base, new.base) == ("float", "double") and not old.args and not new.args:
        return None
    return Converted(old_text, new_text)


def _integer_loss(old: _Type, new: _Type, old_text: str, new_text: str) -> OutOfRange | None:
    old_low, old_high = _int_range(old)
    low, high = _int_range(new)
    return None if low <= old_low and old_high <= high else OutOfRange(old_text, new_text, low, high)


def _int_range(column_type: _Type) -> tuple[int, int]:
    bits = 8 * _INT_BYTES[column_type.base]
    return (0, 2**bits - 1) if column_type.unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _nature(column_type: _Type) -> str | None:
    """What a string type this module measures holds ("text" or "bytes"); None for any other type."""
    if column_type.base in _SIZED and column_type.args:
        return _SIZED[column_type.base]
    # TEXT(n) means the smallest TEXT type that holds n characters, which depends on the charset.
    if column_type.base in _LOBS and not column_type.args:
        return _LOBS[column_type.base][0]
    return None


def _string_loss(old: _Type, new: _Type, old_text: str, new_text: str, charset: str | None) -> Loss | None:
    """Whether the new type holds the longest value of the old one (both text, or both bytes)."""
    if new.base in _SIZED:
        length = int(new.args[0])
        longest = int(old.args[0]) if old.base in _SIZED else _LOBS[old.base][1]  # a LOB's bytes bound its chars
        if longest > length:
            return Shortened(old_text, new_text, length)
        # CHAR drops the trailing spaces of the values that have them; BINARY pads values with zero bytes.
        fixed = new.base in ("char", "binary") and (old.base != new.base or new.base == "binary")
        return Converted(old_text, new_text) if fixed else None
    capacity = _LOBS[new.base][1]
    per_char = 1 if new.base.endswith("blob") else _CHAR_BYTES.get(charset or "", 4)
    longest = int(old.args[0]) * per_char if old.base in _SIZED else _LOBS[old.base][1]
    return None if longest <= capacity else Shortened(old_text, new_text, capacity, in_bytes=True)
