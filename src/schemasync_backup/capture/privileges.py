"""What the connected session may do, as SHOW GRANTS says, and what a backup needs: the one rule.

SHOW GRANTS, not information_schema: MariaDB lists only the user's own rows there, never
those of its active role (and the roles that role holds) or of PUBLIC.

:func:`backup_shortfalls` is the rule capture refuses by and ``backup health-check`` reports
by; each :class:`Shortfall` carries the GRANT statement that ends it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import attrs

from schemasync_backup.capture.connection import Connection, query, text
from schemasync_backup.errors import PrivilegeError
from schemasync_backup.sql.quoting import quote_identifier, quote_string

#: What ``ALL PRIVILEGES`` on a database means.
ALL_PRIVILEGES = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER",
    "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE",
    "ALTER ROUTINE", "EVENT", "TRIGGER", "DELETE HISTORY",
})
#: What ``ALL PRIVILEGES ON *.*`` adds: the privileges that exist only server-wide.
GLOBAL_ONLY_PRIVILEGES = frozenset({
    "RELOAD", "SHUTDOWN", "PROCESS", "FILE", "SHOW DATABASES", "SUPER", "REPLICATION SLAVE", "REPLICATION CLIENT",
    "CREATE USER", "CREATE TABLESPACE", "BINLOG ADMIN", "BINLOG MONITOR", "BINLOG REPLAY", "CONNECTION ADMIN",
    "FEDERATED ADMIN", "READ_ONLY ADMIN", "REPLICATION MASTER ADMIN", "SLAVE MONITOR", "SET USER",
})
#: On the database: without any one of them the server silently hides objects from a capture.
CAPTURE_PRIVILEGES = ("SELECT", "SHOW VIEW", "TRIGGER", "EVENT")
#: Any one of these on the database makes the server list all of its routines; it shows their
#: definitions only to their definer.
ROUTINE_PRIVILEGES = frozenset({"EXECUTE", "ALTER ROUTINE", "CREATE ROUTINE"})
#: Server-wide: the FLUSH TABLES WITH READ LOCK that starts a data backup's connections at one moment.
SNAPSHOT_LOCK_PRIVILEGE = "RELOAD"
_IDENTIFIER = r"(?:\*|`(?:[^`]|``)*`)"
_GRANT_LINE = re.compile(
    rf"GRANT (?P<privileges>.+?) ON (?P<schema>{_IDENTIFIER})\.(?P<table>{_IDENTIFIER}) "
    r"TO (?P<grantee>`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)?|'(?:[^']|'')*'(?:@'(?:[^']|'')*')?|\S+)",
    re.DOTALL,
)


def current_user(connection: Connection) -> str:
    """The account the server checks privileges against, quoted as a GRANT's TO names it."""
    value = text(query(connection, "SELECT CURRENT_USER() AS user")[0]["user"])
    # The host part never holds an @, the user name may.
    user, _, host = value.rpartition("@")
    return f"{quote_string(user)}@{quote_string(host)}"


def database_target(database: str) -> str:
    """``database``.* as a GRANT names exactly this database.

    A GRANT's database is a LIKE pattern: unescaped, a ``_`` or ``%`` in the name would grant on
    other databases too (a database named ``%`` on all of them).
    """
    return quote_identifier(re.sub(r"([\\_%])", r"\\\1", database)) + ".*"


@attrs.frozen
class Shortfall:
    """Privileges the session lacks for one purpose, where they are lacking, and the GRANT that gives them."""

    privileges: tuple[str, ...]
    #: Where they are lacking, as the message says it: ```shop```, ``mysql.proc``, ``the server``.
    scope: str
    #: The GRANT's ON clause: ```shop`.*``, ``mysql.proc``, ``*.*``.
    target: str
    #: CURRENT_USER(), quoted as the GRANT's TO names it.
    account: str
    #: What goes wrong without them ("so the server would hide part of the schema").
    consequence: str
    #: The object the shortfall is about: the database, a routine, the account.
    subject: str
    #: Privileges the GRANT repeats: held now through a pattern grant, which the server stops
    #: using for this database once an exact grant exists (see :class:`Grants`).
    keeps: tuple[str, ...] = ()

    @property
    def grant(self) -> str:
        return f"GRANT {', '.join(self.privileges + self.keeps)} ON {self.target} TO {self.account};"

    @property
    def lack(self) -> str:
        """What is lacking where, and what for, without the account: ``lacks EVENT on `shop`, so ...``."""
        repeats = f" (the GRANT repeats {', '.join(self.keeps)}, held now through a pattern grant that a grant on " \
                  "exactly this database hides)" if self.keeps else ""
        return f"lacks {', '.join(self.privileges)} on {self.scope}, {self.consequence}{repeats}"

    @property
    def message(self) -> str:
        return f"user {self.account} {self.lack}; run {self.grant}"


@attrs.frozen
class Grants:
    """What SHOW GRANTS says the session holds: privileges by (grantee, database pattern, table).

    The grantees are the user, its active role (and the roles that role holds) and PUBLIC; each
    one's privileges on a database are its global ones plus those of its *most specific*
    database-level grant that matches: the server uses only that one (an exact name before a
    pattern, a longer text before the first wildcard first), so a pattern grant adds nothing
    where an exact grant of the same grantee exists.
    """

    by_target: dict[tuple[str, str, str], frozenset[str]]

    @property
    def global_privileges(self) -> frozenset[str]:
        return frozenset().union(*(privileges for (_, schema, table), privileges in self.by_target.items()
                                   if (schema, table) == ("*", "*")))

    def privileges_on(self, database: str) -> frozenset[str]:
        """What the session may do in ``database``: every grantee's global and effective database privileges."""
        held = set(self.global_privileges)
        for grantee in {grantee for grantee, _, _ in self.by_target}:
            held |= self._effective(grantee, database)[1]
        return frozenset(held)

    def table_privileges(self, schema: str, table: str) -> frozenset[str]:
        return frozenset().union(*(privileges for (_, on_schema, on_table), privileges in self.by_target.items()
                                   if (on_schema, on_table) == (schema, table)))

    def hidden_by_exact_grant(self, database: str) -> frozenset[str]:
        """What the user holds on ``database`` through a pattern grant, which a GRANT on exactly
        ``database`` would hide (the server then uses that one alone)."""
        users = {grantee for grantee, _, _ in self.by_target if _is_user(grantee)}
        hidden: set[str] = set()
        for user in users:
            pattern, privileges = self._effective(user, database)
            if pattern is not None and _has_wildcard(pattern):
                hidden |= privileges
        return frozenset(hidden)

    def reads_routines(self, flavor: str) -> bool:
        """Whether the session sees every routine's definition, whoever defined it."""
        if flavor == "mariadb":
            return "SELECT" in self.privileges_on("mysql") | self.table_privileges("mysql", "proc")
        return bool({"SELECT", "SHOW_ROUTINE"} & self.global_privileges)

    def _effective(self, grantee: str, database: str) -> tuple[str | None, frozenset[str]]:
        """The grantee's database-level grant the server uses for ``database``, and its privileges."""
        matching = [(schema, privileges) for (who, schema, table), privileges in self.by_target.items()
                    if who == grantee and table == "*" and schema != "*" and _grant_pattern(schema).fullmatch(database)]
        if not matching:
            return None, frozenset()
        return min(matching, key=lambda entry: _specificity(entry[0]))


def session_grants(connection: Connection, flavor: str) -> Grants:
    statement = "SHOW GRANTS"
    if flavor == "mysql":
        # MySQL lists a role's privileges only when asked to expand the active roles.
        role = str(query(connection, "SELECT CURRENT_ROLE() AS role")[0]["role"] or "NONE")
        if role != "NONE":
            statement = f"SHOW GRANTS FOR CURRENT_USER() USING {role}"
    by_target: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
    for row in query(connection, statement):
        match = _GRANT_LINE.match(str(next(iter(row.values()))))
        if match:
            target = (match["grantee"], _unquote(match["schema"]), _unquote(match["table"]))
            by_target[target] |= _privilege_names(match["privileges"], server_wide=target[1:] == ("*", "*"))
    return Grants({target: frozenset(names) for target, names in by_target.items()})


def database_shortfall(grants: Grants, database: str, needed: Iterable[str], account: str,
                       consequence: str) -> Shortfall | None:
    """The ``needed`` privileges the session lacks on ``database`` (held there or server-wide), or None."""
    held = grants.privileges_on(database)
    lacking = tuple(privilege for privilege in needed if privilege not in held)
    if not lacking:
        return None
    kept = grants.hidden_by_exact_grant(database) - set(lacking)
    keeps = ("ALL PRIVILEGES",) if kept >= ALL_PRIVILEGES else tuple(sorted(kept))
    return Shortfall(lacking, quote_identifier(database), database_target(database), account, consequence, database,
                     keeps)


def routine_shortfall(flavor: str, account: str, consequence: str, subject: str) -> Shortfall:
    """Reading every routine's definition, whoever defined it: SELECT on mysql.proc, or MySQL's SHOW_ROUTINE."""
    if flavor == "mariadb":
        return Shortfall(("SELECT",), "mysql.proc", "mysql.proc", account, consequence, subject)
    return Shortfall(("SHOW_ROUTINE",), "the server", "*.*", account, consequence, subject)


def snapshot_lock_shortfall(account: str, workers: int) -> Shortfall:
    return Shortfall((SNAPSHOT_LOCK_PRIVILEGE,), "the server", "*.*", account,
                     f"which a consistent snapshot on {workers} connections needs (for a moment's FLUSH TABLES WITH "
                     "READ LOCK); or read on one connection, which needs no lock", account)


def hidden_definition(flavor: str, account: str, kind: str, name: str, *, others: int = 0) -> Shortfall:
    """The definition of routine ``name`` (and of ``others`` more), hidden from all but its definer."""
    more = f" (and of {others} more)" if others else ""
    return routine_shortfall(flavor, account, f"so the server hides the definition of {kind.lower()} "
                             f"{quote_identifier(name)}{more} from all but its definer (or connect as the definer)",
                             name)


def backup_shortfalls(connection: Connection, flavor: str, database: str, *, data: bool = False,
                      workers: int = 1) -> list[Shortfall]:
    """What the session lacks to back ``database`` up, each with its GRANT; empty when it may.

    - :data:`CAPTURE_PRIVILEGES` on the database: without them the server hides objects.
    - Every routine's definition: the server lists routines only to a user who can read their
      definitions server-wide or holds one of :data:`ROUTINE_PRIVILEGES` on the database, and
      shows a definition (information_schema's ROUTINE_DEFINITION, SHOW CREATE) only to its
      definer or to who reads them server-wide.
    - With ``data`` on more than one connection (``workers``), RELOAD server-wide.
    """
    grants = session_grants(connection, flavor)
    account = current_user(connection)
    found = [database_shortfall(grants, database, CAPTURE_PRIVILEGES, account,
                                "so the server would hide part of the schema")]
    if not grants.reads_routines(flavor):
        if not grants.privileges_on(database) & ROUTINE_PRIVILEGES:
            found.append(routine_shortfall(flavor, account, f"so the server would hide the stored routines of "
                                           f"{quote_identifier(database)}", database))
        else:
            hidden = query(connection, "SELECT ROUTINE_TYPE AS kind, ROUTINE_NAME AS name FROM information_schema."
                                       "ROUTINES WHERE ROUTINE_SCHEMA = %s AND ROUTINE_DEFINITION IS NULL "
                                       "ORDER BY ROUTINE_TYPE, ROUTINE_NAME", (database,))
            if hidden:
                found.append(hidden_definition(flavor, account, text(hidden[0]["kind"]), text(hidden[0]["name"]),
                                               others=len(hidden) - 1))
    if data and workers > 1 and SNAPSHOT_LOCK_PRIVILEGE not in grants.global_privileges:
        found.append(snapshot_lock_shortfall(account, workers))
    return [shortfall for shortfall in found if shortfall is not None]


def refuse(shortfalls: Sequence[Shortfall], where: str) -> None:
    """Raise one PrivilegeError naming every shortfall with its GRANT: one round of GRANTs is enough."""
    if shortfalls:
        raise PrivilegeError(f"missing privilege on {where}: " + " and ".join(s.message for s in shortfalls),
                             subject=shortfalls[0].subject)


def _privilege_names(text: str, *, server_wide: bool) -> set[str]:
    names = {name.strip().upper() for name in text.split(",")}
    if "ALL PRIVILEGES" not in names and "ALL" not in names:
        return names
    return set(ALL_PRIVILEGES | GLOBAL_ONLY_PRIVILEGES) if server_wide else set(ALL_PRIVILEGES)


def _is_user(grantee: str) -> bool:
    """An account (user@host), not a role or PUBLIC."""
    return re.fullmatch(r"(`(?:[^`]|``)*`|'(?:[^']|'')*')@.+", grantee, re.DOTALL) is not None


def _has_wildcard(pattern: str) -> bool:
    return re.search(r"(?<!\\)(?:\\\\)*[%_]", pattern) is not None


def _specificity(pattern: str) -> tuple[int, int]:
    """How the server orders database grants: an exact name first, then the longer text before the first wildcard."""
    literal = re.match(r"(?:\\.|[^%_\\])*", pattern, re.DOTALL)
    prefix = len(literal.group(0)) if literal else 0
    return (1, -prefix) if _has_wildcard(pattern) else (0, 0)


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


