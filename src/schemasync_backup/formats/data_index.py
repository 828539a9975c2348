"""What data a backup holds: which tables, which of their columns, in which chunks.

A manifest of a backup with data carries one ``DataIndex`` (``"data"`` in its body; a backup
without data has none, so older manifests read and checksum as before). Each chunk is a stored
object of its own, listed among the manifest's objects and found there by its address (the
sha256 of its plaintext, which is also the chunk's checksum): validation, copy, export, import
and prune handle chunks like any other object, and an unchanged chunk is stored once.
"""

from __future__ import annotations

import enum

import attrs


class DataMode(enum.StrEnum):
    """What a backup was asked to hold: no rows, every table's, a migration's at-risk data, or named tables'."""

    NONE = "none"
    ALL = "all"
    AT_RISK = "at-risk"
    TABLES = "tables"


class DataScope(enum.StrEnum):
    """A table's rows (all its stored columns), or only some columns' values with the key to put them back by."""

    ROWS = "rows"
    COLUMNS = "columns"


@attrs.frozen
class ChunkRecord:
    #: The chunk's stored object (sha256 of its plaintext: also the checksum a restore compares).
    address: str
    rows: int
    size: int
    #: The first and last key of the chunk (in the key columns' order), None for a table without a key.
    first_key: tuple[str | None, ...] | None = None
    last_key: tuple[str | None, ...] | None = None


@attrs.frozen
class TableData:
    table: str
    scope: DataScope = attrs.field(converter=DataScope)
    #: The stored columns, key columns first, in the order of every chunk's fields.
    columns: tuple[str, ...]
    #: The columns rows are put back by (PRIMARY KEY, or a UNIQUE key of NOT NULL columns); () for none.
    key: tuple[str, ...]
    rows: int
    size: int
    chunks: tuple[ChunkRecord, ...]
    #: Why the table is held (a migration's statement, for at-risk data).
    reason: str = ""


@attrs.frozen
class BinlogPosition:
    """Where the data's consistent snapshot lies in the binary log (None when binary logging is off)."""

    file: str | None = None
    position: int | None = None
    gtid: str | None = None


@attrs.frozen
class DataIndex:
    mode: DataMode = attrs.field(converter=DataMode)
    tables: tuple[TableData, ...] = ()
    position: BinlogPosition = BinlogPosition()
    #: For people: non-transactional tables (not point-in-time), statements not understood, ...
    warnings: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)

    @property
    def size(self) -> int:
        return sum(table.size for table in self.tables)

    def table(self, name: str) -> TableData | None:
        return next((table for table in self.tables if table.table == name), None)


@attrs.frozen
class DataSummary:
    """What ``list`` and ``info`` show of a backup's data."""

    mode: DataMode = attrs.field(converter=DataMode)
    tables: int = 0
    rows: int = 0
    size: int = 0

    @classmethod
    def of(cls, index: DataIndex) -> DataSummary:
        return cls(index.mode, len(index.tables), index.rows, index.size)

    def __str__(self) -> str:
        if self.mode == DataMode.NONE:
            return "schema only"
        return f"{self.mode} data: {self.tables} table(s), {self.rows:,} rows, {self.size:,} bytes"
