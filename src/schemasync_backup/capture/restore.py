"""Apply a Snapshot's DDL to a live server: the way a backup's schema comes back."""

from __future__ import annotations

from schemasync_backup.capture.connection import Source, describe, open_source, translate_errors
from schemasync_backup.errors import QueryError
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.sql.quoting import quote_identifier

_PARSE_ERROR = 1064  # ER_PARSE_ERROR
_COMPOUND = ("BEGIN", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT")


def _more_than_one_statement(statement: str) -> bool:
    """Whether a ``;`` ends a plain statement early (compound bodies hold ``;`` of their own)."""
    head, semicolon, _ = statement.partition(";")
    return bool(semicolon) and not any(word in head.upper() for word in _COMPOUND)


def restore_snapshot(snapshot: Snapshot, target: Source, database: str, *, create_database: bool = True,
                     progress: ProgressCallback | None = None) -> int:
    """Recreate ``snapshot`` as ``database`` on ``target``; returns the number of statements run.

    With ``create_database`` the database must not exist yet; otherwise it must exist and be
    empty of the snapshot's objects. ``progress`` is told stage ``"statements"``: statements run of
    all, before the first and after each.
    """
    statements = snapshot.to_statements(database=database, create_database=create_database)

    def tell(done: int) -> None:
        if progress is not None:
            progress(ProgressUpdate("statements", done, len(statements)))

    with open_source(target, None if create_database else database) as connection:
        where = describe(connection)
        with connection.cursor() as cursor:
            tell(0)
            for number, statement in enumerate(statements, start=1):
                try:
                    with translate_errors(where, database=database):
                        cursor.execute(statement)
                except QueryError as exc:
                    hint = ""
                    if exc.code == _PARSE_ERROR and _more_than_one_statement(statement):
                        hint = ("; the statement text holds more than one statement (after a ';'), which never "
                                "runs: each query runs one statement, so the backup's DDL may have been tampered "
                                "with; validate the backup")
                    raise QueryError(
                        f"restore of {quote_identifier(database)} failed at statement {number} of "
                        f"{len(statements)}: {exc.message}{hint}\n  statement: {statement[:300]}",
                        subject=statement,
                        code=exc.code,
                    ) from exc
                tell(number)
    return len(statements)
