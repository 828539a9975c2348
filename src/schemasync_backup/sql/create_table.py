"""SHOW CREATE TABLE text taken apart into its definition lines.

The server prints one definition per line (newlines inside literals come escaped), so a
column, key, CHECK or FOREIGN KEY can be lifted out verbatim and reused in ALTER TABLE: the
rollback then writes exactly what the server wrote, and the server prints it back the same.
"""

from __future__ import annotations

import re

import attrs

from schemasync_backup.errors import UnrecognisedDefinitionError as UnrecognisedDefinitionError  # noqa: PLC0414 - re-export

_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")
_IDENTIFIER = re.compile(r"`((?:[^`]|``)*)`")
_VERSIONED = " WITH SYSTEM VERSIONING"
#: A partition's name in a PARTITION BY clause as the server prints it (after "(" or ","; not SUBPARTITION).
_PARTITION_NAME = re.compile(r"[(,]\s*PARTITION (`(?:[^`]|``)+`|\w+)")
_KEY_PREFIXES = ("UNIQUE KEY ", "KEY ", "FULLTEXT KEY ", "SPATIAL KEY ", "VECTOR KEY ")


@attrs.frozen
class TableParts:
    header: str
    columns: tuple[tuple[str, str], ...]
    keys: tuple[tuple[str, str], ...]
    checks: tuple[tuple[str, str], ...]
    foreign_keys: tuple[tuple[str, str], ...]
    #: Lines of other kinds (PERIOD FOR SYSTEM_TIME, ...), kept verbatim.
    other: tuple[str, ...]
    #: Table options after the closing parenthesis, without the AUTO_INCREMENT counter and
    #: WITH SYSTEM VERSIONING (which ``versioned`` says).
    options: str
    partitioning: str | None
    versioned: bool = False
    #: Every definition line in the server's order, and everything from the closing parenthesis on.
    body: tuple[str, ...] = ()
    tail: str = ""

    def column_line(self, name: str) -> str:
        return dict(self.columns)[name]


def first_identifier(text: str) -> str:
    match = _IDENTIFIER.search(text)
    if match is None:
        raise UnrecognisedDefinitionError(f"no identifier in {text[:80]!r}")
    return match.group(1).replace("``", "`")


def partition_names(partitioning: str) -> list[str]:
    """The partitions a table's PARTITION BY clause lists by name (none for ``PARTITIONS n``)."""
    return [name[1:-1].replace("``", "`") if name.startswith("`") else name
            for name in _PARTITION_NAME.findall(partitioning)]


def without_auto_increment(create_sql: str) -> str:
    return _AUTO_INCREMENT.sub("", create_sql)


def _physical_lines(text: str) -> list[str]:
    """Split at newlines outside identifiers and string literals (MariaDB prints those raw)."""
    lines, start, quote, index = [], 0, "", 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and quote == "'":
                index += 1
            elif char == quote:
                if text[index + 1 : index + 2] == quote:
                    index += 1
                else:
                    quote = ""
        elif char in "`'\"":
            quote = char
        elif char == "\n":
            lines.append(text[start:index])
            start = index + 1
        index += 1
    lines.append(text[start:])
    return lines


def parse(create_sql: str) -> TableParts:
    lines = _physical_lines(create_sql)
    closing = next((i for i, line in enumerate(lines) if line.startswith(")")), None)
    if closing is None or not lines[0].rstrip().endswith("("):
        raise UnrecognisedDefinitionError(f"not a CREATE TABLE text: {create_sql[:80]!r}")
    columns, keys, checks, fks, other = [], [], [], [], []
    body = [raw.strip().removesuffix(",") for raw in lines[1:closing]]
    for line in body:
        if line.startswith("`"):
            columns.append((first_identifier(line), line))
        elif line.startswith("PRIMARY KEY "):
            keys.append(("PRIMARY", line))
        elif line.startswith(_KEY_PREFIXES):
            keys.append((first_identifier(line), line))
        elif line.startswith("CONSTRAINT ") and " FOREIGN KEY " in line:
            fks.append((first_identifier(line), line))
        elif line.startswith("CONSTRAINT ") and " CHECK " in line:
            checks.append((first_identifier(line), line))
        else:
            other.append(line)
    tail = "\n".join(lines[closing:])
    options, _, partition = tail.partition("\n PARTITION BY ")
    if not partition and "\n/*!50100 PARTITION BY " in tail:
        options, _, partition = tail.partition("\n/*!50100 PARTITION BY ")
        partition = partition.removesuffix(" */")
    options = _AUTO_INCREMENT.sub("", options.removeprefix(")").strip())
    versioned = options.endswith(_VERSIONED)
    return TableParts(
        header=lines[0],
        columns=tuple(columns),
        keys=tuple(keys),
        checks=tuple(checks),
        foreign_keys=tuple(fks),
        other=tuple(other),
        options=options.removesuffix(_VERSIONED).rstrip(),
        partitioning=("PARTITION BY " + partition.strip()) if partition else None,
        versioned=versioned,
        body=tuple(body),
        tail=tail,
    )


def without_foreign_keys(parts: TableParts) -> str:
    """The CREATE TABLE text with its FOREIGN KEY lines left out, otherwise as the server wrote it."""
    foreign = {line for _, line in parts.foreign_keys}
    kept = [line for line in parts.body if line not in foreign]
    return "\n".join([parts.header, ",\n".join(f"  {line}" for line in kept), parts.tail])
