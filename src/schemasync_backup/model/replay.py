"""A migration's statements replayed over the current schema: which current rows and values each destroys.

The replay follows every current table and column through renames (RENAME TABLE, CHANGE,
RENAME COLUMN, a move to another database) and through the changes before it, so that a
DROP TABLE of a renamed table, or a narrowing after a widening, counts against the data
that is there now; tables and columns the migration creates hold none of it. What a
statement does comes from ``sql.migration``; a statement it cannot read falls back to the
tables it names, or to every table when it names none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import attrs

from schemasync_backup.model.snapshot import Column, Snapshot
from schemasync_backup.model.type_change import holds_characters, losses
from schemasync_backup.sql import alter_table, migration
from schemasync_backup.sql.cursor import TableName
from schemasync_backup.sql.quoting import qualified, quote_identifier
from schemasync_backup.sql.script import Statement


@attrs.frozen
class Destroyed:
    """Current data a migration destroys: a whole table's rows, or one column's values (``column`` set)."""

    table: str
    column: str | None
    reason: str


@attrs.frozen
class Note:
    """A statement the analysis fell back on that turned out to name no current data: said, not hidden."""

    reason: str


def name_fold(current: Snapshot) -> Callable[[str], str]:
    """How the server compares table and database names: in lower case under lower_case_table_names 1 and 2."""
    return str.lower if current.server.lower_case_table_names else str


def changes(old: Column, new: Column, *, becomes_generated: bool) -> str:
    """How changing ``old`` into ``new`` loses values, for people ("" when it loses none)."""
    found = [str(loss) for loss in losses(old, new)]
    if becomes_generated:
        found.append("becomes a generated column, whose values are computed")
    return " and ".join(found)


@attrs.define
class _LiveColumn:
    #: Its definition now.
    column: Column
    #: The current column whose values it holds unchanged: None for one the migration added, for a generated
    #: one (its values are computed), and once a change has lost values. Every change is weighed against it:
    #: after changes that lose nothing the values are still the current ones, which a wider type in between
    #: does not widen (varchar(50) to varchar(100) to varchar(60) loses nothing).
    original: Column | None


@attrs.define
class _LiveTable:
    #: The current table whose rows it holds.
    origin: str
    #: The default character set, which a column defined without one takes.
    charset: str | None
    #: By lower-case name (column names never depend on the case).
    columns: dict[str, _LiveColumn]


def replay(current: Snapshot, statements: Iterable[Statement]) -> Iterator[Destroyed | Note]:
    """Everything of ``current`` the statements destroy, in the order they destroy it."""
    return _Replay(current).run(statements)


class _Replay:
    def __init__(self, current: Snapshot) -> None:
        self.current = current
        self.fold = name_fold(current)
        self.database = current.database
        self.tables = {(self.fold(current.database), self.fold(table.name)): _LiveTable(
            table.name, table.charset or current.charset,
            {column.name.lower(): _LiveColumn(column, None if column.generated else column)
             for column in table.columns}) for table in current.tables}
        #: Every table name the migration or the schema knows: a statement naming one of them names a table,
        #: even when that table holds no current data (any more).
        self.known = {key[1] for key in self.tables}
        self.routines = {routine.name.lower(): migration.program_effect(routine.body, f"procedure {routine.name}")
                         for routine in current.routines if routine.kind == "PROCEDURE"}
        self.lost: set[str] = set()
        #: The foreign keys (child, name) that carried a change already: cycles of ON UPDATE CASCADE end.
        self.carried: set[tuple[str, str]] = set()

    def run(self, statements: Iterable[Statement]) -> Iterator[Destroyed | Note]:
        for statement in statements:
            yield from self.apply(statement, migration.read(statement))

    def apply(self, statement: Statement, action: migration.Action | None) -> Iterator[Destroyed | Note]:
        match action:
            case migration.LosesRows(tables=tables, verb=verb, cascade=cascade):
                for name in tables:
                    yield from self.lose(name, f"{verb} {self.spell(name)}", cascade)
            case migration.CreateTable(table=name):
                self.known.add(self.fold(name.name))
            case migration.DropDatabase(database=database):
                yield from self.drop_database(database)
            case migration.RenameTables(renames=renames):
                for old, new in renames:
                    self.move(old, new)
            case migration.AlterTable(table=name, clauses=clauses):
                yield from self.alter(name, clauses)
            case migration.UseDatabase(database=database):
                self.database = database
            case migration.CreateRoutine(name=name, body=body):
                self.routines[name.lower()] = body
            case migration.CallRoutine(name=name):
                yield from self.call(statement, name)
            case migration.NotUnderstood(why=why, names=names):
                yield from self.fall_back(statement, why, names)

    def drop_database(self, database: str) -> Iterator[Destroyed | Note]:
        for origin in sorted({table.origin for key, table in self.tables.items() if key[0] == self.fold(database)}):
            yield from self.lose_table(origin, f"DROP DATABASE {quote_identifier(database)}")

    def move(self, old: TableName, new: TableName) -> None:
        self.known.add(self.fold(new.name))
        moved = self.tables.pop(self.key(old), None)
        if moved is not None:
            self.tables[self.key(new)] = moved

    def call(self, statement: Statement, name: str) -> Iterator[Destroyed | Note]:
        if name.lower() not in self.routines:
            yield from self.fall_back(statement, "it calls a procedure the analysis does not know", ())
        elif (body := self.routines[name.lower()]) is not None:
            yield from self.fall_back(statement, body.why, body.names)

    def key(self, name: TableName) -> tuple[str, str]:
        return self.fold(name.database or self.database), self.fold(name.name)

    def spell(self, name: TableName) -> str:
        """The name as the statement wrote it, and the current table it holds when that has another name."""
        written = qualified(name.database, name.name) if name.database else quote_identifier(name.name)
        table = self.tables.get(self.key(name))
        if table is None or self.fold(table.origin) == self.fold(name.name):
            return written
        return f"{written} (the current {quote_identifier(table.origin)})"

    def lose(self, name: TableName, reason: str, cascade: str | None) -> Iterator[Destroyed | Note]:
        self.known.add(self.fold(name.name))
        table = self.tables.get(self.key(name))
        if table is not None:
            yield from self.lose_table(table.origin, reason)
            if cascade is not None:
                yield from self.cascade(table.origin, cascade, None)

    def lose_table(self, origin: str, reason: str) -> Iterator[Destroyed | Note]:
        """All rows of ``origin``: nothing in it is current data any more, so it is followed no further."""
        self.lost.add(origin)
        self.tables = {key: table for key, table in self.tables.items() if table.origin != origin}
        yield Destroyed(origin, None, reason)

    def cascade(self, parent: str, event: str, columns: frozenset[str] | None) -> Iterator[Destroyed | Note]:
        """What the foreign keys of the current schema do to the rows that reference changed rows of ``parent``
        (``columns``: only those changed, None for all)."""
        for child in self.current.tables:
            for key in child.foreign_keys:
                referenced = {column.lower() for column in key.referenced_columns}
                if (key.referenced_schema not in (None, self.current.database)
                        or self.fold(key.referenced_table) != self.fold(parent) or child.name in self.lost
                        or (columns is not None and not columns & referenced)
                        or (child.name, key.name) in self.carried):
                    continue
                self.carried.add((child.name, key.name))
                action = key.on_delete if event == "DELETE" else key.on_update
                how = f"ON {event} {action} of {quote_identifier(child.name)} from {quote_identifier(parent)}"
                if event == "DELETE" and action == "CASCADE":
                    yield from self.lose_table(child.name, f"{how} deletes its rows")
                    yield from self.cascade(child.name, "DELETE", None)
                elif action in ("CASCADE", "SET NULL"):
                    for column in key.columns:
                        changed = child.column(column).name
                        yield Destroyed(child.name, changed, f"{how} changes {_q(child.name, changed)}")
                    yield from self.cascade(child.name, "UPDATE", frozenset(c.lower() for c in key.columns))

    def alter(self, name: TableName, clauses: tuple[alter_table.Clause, ...]) -> Iterator[Destroyed | Note]:
        table = self.tables.get(self.key(name))
        if table is None:
            return  # a table the migration created: none of its rows are current
        where = f"ALTER TABLE {self.spell(name)}"
        emptied = [clause.clause for clause in clauses if isinstance(clause, alter_table.EmptiesTable)]
        if emptied:
            yield from self.lose_table(table.origin, f"{where} {', '.join(emptied)}")
            return
        for clause in clauses:
            yield from self.change(table, where, clause)
        for clause in clauses:
            if isinstance(clause, alter_table.RenameTo):
                self.move(name, clause.table)  # after the other clauses, which name the table as it was
                name = clause.table

    def change(self, table: _LiveTable, where: str, clause: alter_table.Clause) -> Iterator[Destroyed | Note]:
        match clause:
            case alter_table.DropColumn(column=column):
                live = table.columns.pop(column.lower(), None)
                if live is not None and live.original is not None:
                    yield Destroyed(table.origin, live.original.name, f"{where} DROP COLUMN {quote_identifier(column)}")
            case alter_table.ModifyColumn(column=column, spec=spec):
                live = table.columns.pop(column.lower(), None)
                if live is None:
                    return  # the server refuses the statement
                charset = spec.charset or (spec.collation.split("_", 1)[0] if spec.collation else table.charset)
                new = Column(spec.name, spec.type, spec.nullable, charset=charset if holds_characters(spec.type)
                             else None, collation=spec.collation)
                yield from self.changed(table, live, new, becomes_generated=spec.generated)
                table.columns[spec.name.lower()] = live
            case alter_table.RenameColumn(column=column, new_name=new_name):
                live = table.columns.pop(column.lower(), None)
                if live is not None:
                    table.columns[new_name.lower()] = live
            case alter_table.AddColumn(spec=spec):
                table.columns.setdefault(spec.name.lower(), _LiveColumn(Column(spec.name, spec.type, spec.nullable),
                                                                        None))
            case alter_table.ConvertCharset(charset=charset):
                table.charset = charset
                for live in table.columns.values():
                    if holds_characters(live.column.type):
                        yield from self.changed(table, live, attrs.evolve(live.column, charset=charset, collation=None),
                                                becomes_generated=False)
            case alter_table.DefaultCharset(charset=charset):
                table.charset = charset

    def changed(self, table: _LiveTable, live: _LiveColumn, new: Column, *, becomes_generated: bool
                ) -> Iterator[Destroyed | Note]:
        """``live`` becomes ``new``: lost values are current ones only while it holds them unchanged."""
        original, live.column = live.original, new
        if original is None:
            return
        how = changes(original, new, becomes_generated=becomes_generated)
        if how:
            live.original = None
            yield Destroyed(table.origin, original.name, f"column {_q(table.origin, original.name)} {how}")

    def fall_back(self, statement: Statement, why: str, names: Iterable[str]) -> Iterator[Destroyed | Note]:
        """Every current table the statement names, or every table when it names none of the schema's."""
        folded = {self.fold(name) for name in names}
        named = sorted({table.origin for key, table in self.tables.items() if key[1] in folded})
        head = f"statement not understood ({why}): {_shortened(statement.text)}"
        if named:
            reason = f"{head}; backing up the tables it names ({', '.join(map(quote_identifier, named))})"
        elif folded & self.known:
            yield Note(f"{head}; it names only tables that hold no current data (any more)")
            return
        else:
            named = sorted({table.origin for table in self.tables.values()})
            reason = f"{head}; it names no table, so backing up every table"
        for origin in named:
            yield from self.lose_table(origin, reason)


def _q(table: str, column: str) -> str:
    return f"{quote_identifier(table)}.{quote_identifier(column)}"


def _shortened(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
