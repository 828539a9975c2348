"""Sample schemas shipped with the package, for the demo and for trying things out."""

from __future__ import annotations

from importlib.resources import files

from ..connection import Source, describe, open_source, translate_errors
from ..sql import quote_identifier


def sample_sql(name: str = "shop") -> str:
    return files(__package__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def load_sample(target: Source, database: str, name: str = "shop") -> None:
    """Create ``database`` on ``target`` and load a sample schema into it.

    The server parses compound statements itself, so the file goes as one multi-statement
    query with no client-side DELIMITER handling.
    """
    with open_source(target) as connection:
        where = describe(connection)
        with translate_errors(where, database=database), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE {quote_identifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
            connection.select_db(database)
            cursor.execute(sample_sql(name))
            while cursor.nextset():
                pass
