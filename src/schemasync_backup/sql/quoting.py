"""SQL text helpers: identifier and literal quoting, and DDL parsing with sqlglot.

With ``tokens`` (which reads migrations), the only module that imports sqlglot (lazily), so a change
of its API touches two files.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re

#: The DEFINER clause of a CREATE statement as SHOW CREATE prints it: ``user``@``host``, a MariaDB
#: role (no host), or CURRENT_USER (what the "rewrite" definer policy leaves). Group 1 is everything
#: before the clause; ``definer`` the account. The one rule the planner and the preflight read.
DEFINER_CLAUSE = re.compile(
    r"^(CREATE (?:OR REPLACE )?(?:ALGORITHM=\w+ )?)"
    r"DEFINER=(?P<definer>`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)?|CURRENT_USER(?:\(\))?) "
)


def quote_identifier(name: str) -> str:
    """Quote a MySQL identifier whatever it contains (backticks are doubled)."""
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str, *, backslash_escapes: bool = True) -> str:
    """A single-quoted MySQL string literal that means ``value``.

    Backslashes are escapes unless the sql_mode has NO_BACKSLASH_ESCAPES: pass
    ``backslash_escapes=False`` for a literal that will run under that mode.
    """
    if not backslash_escapes:
        return "'" + value.replace("'", "''") + "'"
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0")
    return "'" + escaped + "'"


def definer_of(create_sql: str) -> str | None:
    """The account in the DEFINER clause of ``create_sql`` (``CURRENT_USER`` as such), or None without one."""
    match = DEFINER_CLAUSE.match(create_sql)
    if match is None:
        return None
    definer = match.group("definer")
    return "CURRENT_USER" if definer.startswith("CURRENT_USER") else definer


def qualified(*names: str) -> str:
    return ".".join(quote_identifier(name) for name in names)


def parser_version() -> str:
    """The SQL parser parse checks run on, with its version: verdicts of another version are not reused."""
    return f"sqlglot {importlib.metadata.version('sqlglot')}"


def parse_problem(statement: str) -> tuple[bool, str | None]:
    """Whether sqlglot's MySQL dialect has a grammar for ``statement``, and why it cannot parse it.

    ``(True, None)``: parsed into real statements; ``(True, problem)``: sqlglot judged it and
    failed (``problem`` is the first line of its error); ``(False, None)``: sqlglot fell back to an
    opaque Command (it has no grammar for the statement: triggers, events, routine bodies, some
    MariaDB table options), which judges nothing. The warning sqlglot logs for that is silenced.
    """
    # Imported here: sqlglot takes a sixth of a second to import, and only validation needs it.
    import sqlglot
    import sqlglot.errors
    from sqlglot import exp

    sqlglot_log = logging.getLogger("sqlglot")
    previous = sqlglot_log.level
    sqlglot_log.setLevel(logging.ERROR)
    try:
        parsed = sqlglot.parse(statement, read="mysql")
    except sqlglot.errors.SqlglotError as exc:
        return True, str(exc).splitlines()[0]
    finally:
        sqlglot_log.setLevel(previous)
    return not any(isinstance(expression, exp.Command) for expression in parsed), None
