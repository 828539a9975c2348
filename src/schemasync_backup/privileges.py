"""What the connected user may do on a database, as the server's privilege tables say."""

from __future__ import annotations

from .connection import Connection, query


def current_grantees(connection: Connection) -> list[str]:
    """The current user and active role, spelled as information_schema spells grantees."""
    row = query(connection, "SELECT CURRENT_USER() AS user, CURRENT_ROLE() AS role")[0]
    names = []
    for value in (row["user"], row["role"]):
        if value and value != "NONE":
            user, _, host = str(value).partition("@")
            names.append(f"'{user}'@'{host}'" if host else f"'{user}'")
    return names


def held_privileges(connection: Connection, database: str) -> set[str]:
    """Privileges held globally or on ``database`` (grant patterns match as LIKE does)."""
    names = current_grantees(connection)
    placeholders = ", ".join(["%s"] * len(names))
    rows = query(
        connection,
        f"SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE IN ({placeholders}) "
        f"UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        f"WHERE GRANTEE IN ({placeholders}) AND %s LIKE TABLE_SCHEMA",
        (*names, *names, database),
    )
    return {str(row["PRIVILEGE_TYPE"]) for row in rows}
