"""Apply a Snapshot's DDL to a live server: the way a backup's schema comes back."""

from __future__ import annotations

from .connection import Source, describe, open_source, translate_errors
from .errors import QueryError
from .snapshot import Snapshot
from .sql import quote_identifier


def restore_snapshot(snapshot: Snapshot, target: Source, database: str, *, create_database: bool = True) -> int:
    """Recreate ``snapshot`` as ``database`` on ``target``; returns the number of statements run.

    With ``create_database`` the database must not exist yet; otherwise it must exist and be
    empty of the snapshot's objects.
    """
    statements = snapshot.to_statements(database=database, create_database=create_database)
    with open_source(target, None if create_database else database) as connection:
        where = describe(connection)
        with connection.cursor() as cursor:
            for number, statement in enumerate(statements, start=1):
                try:
                    with translate_errors(where, database=database):
                        cursor.execute(statement)
                except QueryError as exc:
                    raise QueryError(
                        f"restore of {quote_identifier(database)} failed at statement {number} of "
                        f"{len(statements)}: {exc.message}\n  statement: {statement[:300]}",
                        subject=statement,
                        code=exc.code,
                    ) from exc
    return len(statements)
