"""Sample schemas shipped with the package, for the demo and for trying things out."""

from __future__ import annotations

import re
from importlib.resources import files

from schemasync_backup.capture.connection import Source, describe, open_source, translate_errors
from schemasync_backup.sql.quoting import quote_identifier

#: A sample file ends each statement with a ``;`` at the end of a line followed by a blank line
#: (compound bodies keep their inner ``;`` and have no blank lines).
_STATEMENT_END = re.compile(r";[ \t]*\n(?:[ \t]*\n)+|;\s*\Z")


def sample_sql(name: str = "shop") -> str:
    return files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def sample_statements(name: str = "shop") -> list[str]:
    """The sample's statements, one each: connections run one statement per query."""
    return [statement.strip() for statement in _STATEMENT_END.split(sample_sql(name)) if statement.strip()]


def load_sample(target: Source, database: str, name: str = "shop") -> None:
    """Create ``database`` on ``target`` and load a sample schema into it.

    Each statement goes as its own query (see :func:`sample_statements`).
    """
    with open_source(target) as connection:
        where = describe(connection)
        with translate_errors(where, database=database), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
            connection.select_db(database)
            for statement in sample_statements(name):
                cursor.execute(statement)
