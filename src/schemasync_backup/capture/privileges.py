"""What the connected session may do, as SHOW GRANTS says.

SHOW GRANTS, not information_schema: MariaDB lists only the user's own rows there, never
those of its active role (and the roles that role holds) or of PUBLIC.
"""

from __future__ import annotations

import re
from collections import defaultdict

import attrs

from schemasync_backup.capture.connection import Connection, query, text

#: What ``ALL PRIVILEGES`` on a database means.
ALL_PRIVILEGES = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER",
    "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE",
    "ALTER ROUTINE", "EVENT", "TRIGGER", "DELETE HISTORY",
})
_IDENTIFIER = r"(?:\*|`(?:[^`]|``)*`)"
_GRANT_LINE = re.compile(
    rf"GRANT (?P<privileges>.+?) ON (?P<schema>{_IDENTIFIER})\.(?P<table>{_IDENTIFIER}) TO ", re.DOTALL
)


def current_user(connection: Connection) -> str:
    value = text(query(connection, "SELECT CURRENT_USER() AS user")[0]["user"])
    # The host part never holds an @, the user name may.
    user, _, host = value.rpartition("@")
    return f"'{user}'@'{host}'"


@attrs.frozen
class Grants:
    """What SHOW GRANTS says the session holds: privileges by (database pattern, table)."""

    by_target: dict[tuple[str, str], frozenset[str]]

    def privileges_on(self, database: str) -> frozenset[str]:
        """Global privileges plus those of every database-level grant whose pattern matches."""
        held: set[str] = set()
        for (schema, table), privileges in self.by_target.items():
            if table == "*" and (schema == "*" or _grant_pattern(schema).fullmatch(database)):
                held |= privileges
        return frozenset(held)

    def reads_routines(self, flavor: str) -> bool:
        """Whether the session sees every routine's definition, whoever defined it."""
        if flavor == "mariadb":
            return "SELECT" in self.privileges_on("mysql") | self.by_target.get(("mysql", "proc"), frozenset())
        return bool({"SELECT", "SHOW_ROUTINE"} & self.by_target.get(("*", "*"), frozenset()))


def session_grants(connection: Connection, flavor: str) -> Grants:
    statement = "SHOW GRANTS"
    if flavor == "mysql":
        # MySQL lists a role's privileges only when asked to expand the active roles.
        role = str(query(connection, "SELECT CURRENT_ROLE() AS role")[0]["role"] or "NONE")
        if role != "NONE":
            statement = f"SHOW GRANTS FOR CURRENT_USER() USING {role}"
    by_target: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for row in query(connection, statement):
        match = _GRANT_LINE.match(str(next(iter(row.values()))))
        if match:
            target = (_unquote(match["schema"]), _unquote(match["table"]))
            by_target[target] |= _privilege_names(match["privileges"])
    return Grants({target: frozenset(names) for target, names in by_target.items()})


def _privilege_names(text: str) -> set[str]:
    names = {name.strip().upper() for name in text.split(",")}
    return set(ALL_PRIVILEGES) if "ALL PRIVILEGES" in names or "ALL" in names else names


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _grant_pattern(schema: str) -> re.Pattern[str]:
    """A database-level grant names a LIKE pattern: ``_`` and ``%`` are wildcards, ``\\`` escapes."""
    parts = []
    for escaped, wildcard, other in re.findall(r"\\(.)|([%_])|([^%_\\]+|\\)", schema, re.DOTALL):
        if escaped:
            parts.append(re.escape(escaped))
        elif wildcard:
            parts.append(".*" if wildcard == "%" else ".")
        else:
            parts.append(re.escape(other))
    return re.compile("".join(parts), re.DOTALL)


