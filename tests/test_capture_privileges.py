"""Who may capture: non-root users with database-level grants, wildcard grants, roles (also
nested, also PUBLIC), and the routines MariaDB hides from users who did not define them.

Capture must either see the whole schema or refuse with a PrivilegeError that names the GRANT;
it must never return a snapshot with objects silently missing.
"""

from __future__ import annotations

import contextlib

import pymysql
import pytest
from test_snapshot_support import execute, unique_name

from schemasync_backup import PrivilegeError, Snapshot
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

PASSWORD = "pw-for-capture"
CAPTURE_GRANTS = "SELECT, SHOW VIEW, TRIGGER, EVENT"


@pytest.fixture
def schema(mariadb: ThrowawayServer, fresh_db: str) -> str:
    """A database with one object of every kind, all defined by root."""
    execute(
        mariadb, fresh_db,
        "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE VIEW v AS SELECT id FROM t",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id",
        "CREATE PROCEDURE p() SELECT 1",
        "CREATE FUNCTION f() RETURNS int RETURN 1",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM t",
    )
    return fresh_db


def _make_user(root: pymysql.connections.Connection, accounts: list[str], *grants: str,
               default_role: str | None = None) -> str:
    name = unique_name("cap")
    account = f"'{name}'@'%'"
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER {account} IDENTIFIED BY '{PASSWORD}'")
        accounts.append(account)
        for grant in grants:
            cursor.execute(f"GRANT {grant} TO {account}")
        if default_role:
            cursor.execute(f"SET DEFAULT ROLE {default_role} FOR {account}")
    return name


def _make_role(root: pymysql.connections.Connection, accounts: list[str], *grants: str) -> str:
    name = unique_name("role")
    with root.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name}")
        accounts.append(name)
        for grant in grants:
            cursor.execute(f"GRANT {grant} TO {name}")
    return name


def _capture(server: ThrowawayServer, user: str, database: str) -> Snapshot:
    return Snapshot.capture(f"mysql://{user}:{PASSWORD}@127.0.0.1:{server.port}/", database)


def _assert_complete(snapshot: Snapshot) -> None:
    kinds = sorted(kind for kind, _ in snapshot.objects())
    assert kinds == ["event", "function", "procedure", "table", "trigger", "view"]


def _refusal(server: ThrowawayServer, user: str, database: str) -> PrivilegeError:
    with pytest.raises(PrivilegeError) as caught:
        _capture(server, user, database)
    assert isinstance(caught.value, PermissionError)
    assert PASSWORD not in str(caught.value)
    return caught.value


def test_root_sees_everything(mariadb: ThrowawayServer, schema: str) -> None:
    _assert_complete(Snapshot.capture(mariadb.dsn, schema))


def test_database_level_grants_with_routine_read_access(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                                        accounts: list[str], schema: str) -> None:
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON `{schema}`.*", "SELECT ON mysql.proc")
    snapshot = _capture(mariadb, user, schema)
    _assert_complete(snapshot)
    assert snapshot.schema_hash == Snapshot.capture(mariadb.dsn, schema).schema_hash


def test_wildcard_database_grant(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                 accounts: list[str], schema: str) -> None:
    # `t123_%` names every database that starts with the fixture's prefix: _ and % are wildcards.
    pattern = schema.rsplit("_", 1)[0] + "_%"
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON `{pattern}`.*", "SELECT ON mysql.proc")
    _assert_complete(_capture(mariadb, user, schema))


def test_escaped_underscore_is_literal(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                      accounts: list[str], schema: str) -> None:
    escaped = schema.replace("_", "\\_")
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON `{escaped}`.*", "SELECT ON mysql.proc")
    _assert_complete(_capture(mariadb, user, schema))


def test_an_exact_grant_hides_a_pattern_grant(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                              accounts: list[str], schema: str) -> None:
    # The server uses a grantee's most specific database grant alone: privileges do not add up.
    pattern = schema.rsplit("_", 1)[0] + "_%"
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON `{pattern}`.*", "SELECT ON mysql.proc",
                      f"INSERT ON `{schema.replace('_', chr(92) + '_')}`.*")
    assert "lacks SELECT, SHOW VIEW, TRIGGER, EVENT" in str(_refusal(mariadb, user, schema))
    with root.cursor() as cursor:
        cursor.execute(f"GRANT {CAPTURE_GRANTS} ON `{schema.replace('_', chr(92) + '_')}`.* TO '{user}'@'%'")
    _assert_complete(_capture(mariadb, user, schema))


def test_escaped_percent_matches_only_a_percent(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                               accounts: list[str], schema: str) -> None:
    # Table-level SELECT lets the user in; the database-level grant names `<prefix>%` literally.
    prefix = schema.rsplit("_", 1)[0]
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON `{prefix}\\_\\%`.*", "SELECT ON mysql.proc",
                      f"SELECT ON `{schema}`.t")
    assert "lacks SELECT, SHOW VIEW, TRIGGER, EVENT" in str(_refusal(mariadb, user, schema))


def test_global_grants(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                       accounts: list[str], schema: str) -> None:
    # Global SELECT also reads mysql.proc, so it shows every routine's definition.
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON *.*")
    _assert_complete(_capture(mariadb, user, schema))


def test_missing_grants_are_named(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                  accounts: list[str], schema: str) -> None:
    user = _make_user(root, accounts, f"SELECT, TRIGGER ON `{schema}`.*")
    error = _refusal(mariadb, user, schema)
    assert f"user '{user}'@'%' lacks SHOW VIEW, EVENT on `{schema}`" in str(error)
    # The grant names `t123_4`, a pattern (its _ is a wildcard): the GRANT on exactly the database
    # repeats what that one gives, since the server uses only the exact grant once it exists.
    escaped = schema.replace("_", "\\_")
    assert f"GRANT SHOW VIEW, EVENT, SELECT, TRIGGER ON `{escaped}`.* TO '{user}'@'%';" in str(error)


def test_routines_the_user_cannot_see_are_refused_not_skipped(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, accounts: list[str], schema: str
) -> None:
    # MariaDB leaves routines out of information_schema for such a user: capture used to succeed
    # with no procedures and no functions.
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS} ON `{schema}`.*")
    error = _refusal(mariadb, user, schema)
    assert "would hide the stored routines" in str(error)
    assert f"GRANT SELECT ON mysql.proc TO '{user}'@'%'" in str(error)


def test_definer_hidden_routine(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                accounts: list[str], schema: str) -> None:
    # EXECUTE lists the routines, but MariaDB 10.11 shows a routine's body only to its definer
    # or to who may read mysql.proc: SHOW CREATE FUNCTION answers with a NULL text.
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS}, EXECUTE ON `{schema}`.*")
    error = _refusal(mariadb, user, schema)
    assert "hides the definition of function `f`" in str(error)
    assert f"GRANT SELECT ON mysql.proc TO '{user}'@'%'" in str(error)
    assert error.subject == "f"


def test_routines_the_user_defined(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                   accounts: list[str], fresh_db: str) -> None:
    user = _make_user(root, accounts, f"{CAPTURE_GRANTS}, CREATE ROUTINE, ALTER ROUTINE ON `{fresh_db}`.*")
    with contextlib.closing(pymysql.connect(host="127.0.0.1", port=mariadb.port, user=user, password=PASSWORD,
                                            database=fresh_db, autocommit=True)) as connection, \
            connection.cursor() as cursor:
        cursor.execute("CREATE PROCEDURE mine() SELECT 1")
    snapshot = _capture(mariadb, user, fresh_db)
    assert [r.name for r in snapshot.routines] == ["mine"]


def test_privileges_through_nested_roles(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                         accounts: list[str], schema: str) -> None:
    inner = _make_role(root, accounts, f"{CAPTURE_GRANTS} ON `{schema}`.*", "SELECT ON mysql.proc")
    outer = _make_role(root, accounts, inner)
    user = _make_user(root, accounts, outer, default_role=outer)
    _assert_complete(_capture(mariadb, user, schema))


def test_a_role_that_is_not_active_grants_nothing(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                                  accounts: list[str], schema: str) -> None:
    role = _make_role(root, accounts, f"{CAPTURE_GRANTS} ON `{schema}`.*", "SELECT ON mysql.proc")
    user = _make_user(root, accounts, role, f"SELECT ON `{schema}`.t")
    error = _refusal(mariadb, user, schema)
    assert "lacks" in str(error)


def test_role_without_routine_access(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                     accounts: list[str], schema: str) -> None:
    role = _make_role(root, accounts, f"{CAPTURE_GRANTS} ON `{schema}`.*")
    user = _make_user(root, accounts, role, default_role=role)
    assert "would hide the stored routines" in str(_refusal(mariadb, user, schema))


def test_grants_to_public(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                          accounts: list[str], schema: str) -> None:
    user = _make_user(root, accounts, "SELECT ON mysql.proc")
    with root.cursor() as cursor:
        cursor.execute(f"GRANT {CAPTURE_GRANTS} ON `{schema}`.* TO PUBLIC")
    try:
        _assert_complete(_capture(mariadb, user, schema))
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"REVOKE {CAPTURE_GRANTS} ON `{schema}`.* FROM PUBLIC")
