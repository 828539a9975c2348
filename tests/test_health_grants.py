"""`backup health-check` says whether the configured user can back up (and roll back), and which GRANT to run.

The proof that its advice is right: a user with the troubleshooting guide's own GRANT list fails the
check, the GRANT statements it prints are run verbatim, and then the check passes and `backup create`
(and `rollback execute`) succeed for that user, on the real server.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import Ran, Session, in_process, migrate, write_config  # noqa: F401 - in_process: a fixture

from schemasync_backup.capture.privileges import backup_shortfalls, session_grants
from schemasync_backup.cli import health
from schemasync_backup.cli.config import load_config
from schemasync_backup.sql.quoting import quote_identifier, quote_string
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

PASSWORD = "Grant-me-pw-7"
#: The troubleshooting guide's "Access denied" section, word for word but for the account.
GUIDE_GRANTS = ("GRANT SELECT, SHOW DATABASES, SHOW VIEW, LOCK TABLES ON *.* TO {account}",
                "GRANT PROCESS ON *.* TO {account}")
_names = itertools.count()


@pytest.fixture
def shop(mariadb: ThrowawayServer, root: pymysql.connections.Connection) -> Iterator[str]:
    """The sample schema (a view, a function, a procedure, a trigger, an event) under a name with an underscore."""
    name = f"grants_{os.getpid()}_{next(_names)}"
    load_sample(mariadb.dsn, name)
    yield name
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


def _user(root: pymysql.connections.Connection, accounts: list[str], *grants: str, name: str | None = None) -> str:
    """A new user '<name>'@'%' holding ``grants`` (each with ``{account}`` where the account goes)."""
    name = name or f"hc_{os.getpid()}_{next(_names)}"
    account = f"{quote_string(name)}@'%'"
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER {account} IDENTIFIED BY {quote_string(PASSWORD)}")
        accounts.append(account)
        for grant in grants:
            cursor.execute(grant.format(account=account))
    return name


def _config(tmp_path: Path, server: ThrowawayServer, database: str, user: str, **backup: Any) -> Path:
    return write_config(tmp_path, server, database, tmp_path / "store", user=user, password=PASSWORD, **backup)


def _check(ran: Ran, name: str) -> dict[str, Any]:
    return next(check for check in ran.json()["checks"] if check["name"] == name)


def _run_verbatim(root: pymysql.connections.Connection, statements: list[str]) -> None:
    with root.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


# --- the guide's user, the printed GRANT, and then a backup --------------------------------------------------


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("backup", [{}, {"data": "all", "max_workers": 4}], ids=["schema-only", "data-on-4"])
def test_the_guides_grants_fail_and_the_printed_grant_makes_backup_work(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, accounts: list[str], shop: str, tmp_path: Path,
    backup: dict[str, Any],
) -> None:
    user = _user(root, accounts, *GUIDE_GRANTS)
    session = Session(_config(tmp_path, mariadb, shop, user, **backup))
    refused = session("backup", "create")  # every missing privilege at once: one round of GRANTs is enough
    assert refused.rc != 0 and "lacks TRIGGER, EVENT" in refused.err
    assert ("lacks RELOAD" in refused.err) == bool(backup)

    failed = session("backup", "health-check", "--format", "json")
    assert failed.rc == 3, failed.err
    check = _check(failed, "backup privileges")
    assert check["status"] == "error"
    escaped = shop.replace("_", "\\_")
    expected = [f"GRANT TRIGGER, EVENT ON `{escaped}`.* TO '{user}'@'%';"]
    if backup:  # a data backup on 4 connections starts them under FLUSH TABLES WITH READ LOCK
        expected.append(f"GRANT RELOAD ON *.* TO '{user}'@'%';")
    assert check["details"]["grants"] == expected
    assert [item["privileges"] for item in check["details"]["missing"]] == [["TRIGGER", "EVENT"], *[["RELOAD"]] * bool(
        backup)]
    assert check["details"]["account"] == f"'{user}'@'%'"
    text = session("backup", "health-check")
    assert text.rc == 3
    # The guide's cron recipe greps the log for ERROR; the GRANT to run is on the line.
    assert any(line.startswith("ERROR") and expected[0] in line for line in text.out.splitlines()), text.out
    assert "lacks TRIGGER, EVENT" in text.err

    _run_verbatim(root, check["details"]["grants"])
    passed = session("backup", "health-check", "--format", "json")
    assert _check(passed, "backup privileges")["status"] == "ok", passed.out
    assert passed.rc == 0, passed.out  # what rollback lacks is a warning only
    assert _check(passed, "rollback privileges")["status"] == "warning"
    created = session("backup", "create", "--format", "json")
    assert created.rc == 0, created.err
    assert created.json()["validation"]["valid"]


@pytest.mark.usefixtures("in_process")
def test_rollback_privileges_are_a_warning_with_their_grant_and_the_grant_makes_rollback_work(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, accounts: list[str], shop: str, tmp_path: Path,
) -> None:
    user = _user(root, accounts, *GUIDE_GRANTS, f"GRANT TRIGGER, EVENT ON {quote_identifier(shop)}.* TO {{account}}")
    session = Session(_config(tmp_path, mariadb, shop, user))
    ran = session("backup", "health-check", "--format", "json")
    assert ran.rc == 0, ran.out
    check = _check(ran, "rollback privileges")
    assert check["status"] == "warning"
    assert check["message"].startswith(f"user '{user}'@'%' can back up; cannot roll back: lacks ALTER, ")
    escaped = shop.replace("_", "\\_")
    steps, scratch = check["details"]["grants"]
    assert steps.startswith("GRANT ALTER, ") and steps.endswith(f" ON `{escaped}`.* TO '{user}'@'%';")
    assert scratch == f"GRANT ALL PRIVILEGES ON `\\_schemasync\\_rehearsal\\_%`.* TO '{user}'@'%';"
    # TRIGGER and EVENT are held through the pattern `grants_...` (its _ a wildcard): the exact grant
    # would hide that one, so it repeats them.
    assert "TRIGGER" not in check["details"]["missing"][0]["privileges"]
    assert check["details"]["missing"][0]["repeats"] == ["EVENT", "TRIGGER"]
    assert "EVENT, TRIGGER ON" in steps
    assert f"— {steps}" in check["message"]
    strict = session("backup", "health-check", "--require-rollback")
    assert strict.rc == 3 and "rollback privileges: " in strict.err

    _run_verbatim(root, check["details"]["grants"])
    ran = session("backup", "health-check", "--require-rollback", "--format", "json")
    assert ran.rc == 0 and _check(ran, "rollback privileges")["status"] == "ok", ran.out
    backup_id = session("backup", "create", "--format", "json").json()["backup_id"]
    migrate(mariadb, shop)
    executed = session("rollback", "execute", "--backup-id", backup_id, "--force", "--format", "json")
    assert executed.rc == 0, executed.err
    assert executed.json()["result"]["verified"]


@pytest.mark.usefixtures("in_process")
def test_full_privileges_pass_everything(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                         accounts: list[str], shop: str, tmp_path: Path) -> None:
    user = _user(root, accounts, "GRANT ALL PRIVILEGES ON *.* TO {account}")
    ran = Session(_config(tmp_path, mariadb, shop, user, data="all", max_workers=2))(
        "backup", "health-check", "--require-rollback", "--format", "json")
    assert ran.rc == 0, ran.out
    assert _check(ran, "backup privileges")["message"] == (
        f"user '{user}'@'%' may back up `{shop}` (schema and data, on 2 connections)")
    assert _check(ran, "rollback privileges")["status"] == "ok"


# --- where privileges come from ------------------------------------------------------------------------------


def _privilege_checks(tmp_path: Path, server: ThrowawayServer, database: str, user: str,
                      **backup: Any) -> dict[str, health.Check]:
    config = load_config(_config(tmp_path, server, database, user, **backup))
    return {check.name: check for check in health.check_privileges(config, database)}


def test_a_grant_on_the_database_only_counts(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                            accounts: list[str], shop: str, tmp_path: Path) -> None:
    user = _user(root, accounts,
                 f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON {quote_identifier(shop)}.* TO {{account}}",
                 "GRANT SELECT ON mysql.proc TO {account}")
    assert _privilege_checks(tmp_path, mariadb, shop, user)["backup privileges"].status == health.OK


def test_a_default_role_counts_and_a_role_not_set_does_not(mariadb: ThrowawayServer,
                                                          root: pymysql.connections.Connection,
                                                          accounts: list[str], shop: str, tmp_path: Path) -> None:
    role = f"hc_role_{os.getpid()}_{next(_names)}"
    with root.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role}")
        accounts.append(role)
        cursor.execute(f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON {quote_identifier(shop)}.* TO {role}")
        cursor.execute(f"GRANT SELECT ON mysql.proc TO {role}")
    # Table-level SELECT only lets the user connect to the database.
    idle = _user(root, accounts, f"GRANT {role} TO {{account}}", f"GRANT SELECT ON {quote_identifier(shop)}.product "
                 "TO {account}")
    active = _user(root, accounts, f"GRANT {role} TO {{account}}", f"SET DEFAULT ROLE {role} FOR {{account}}")
    assert _privilege_checks(tmp_path, mariadb, shop, active)["backup privileges"].status == health.OK
    refused = _privilege_checks(tmp_path, mariadb, shop, idle)["backup privileges"]
    assert refused.status == health.ERROR
    assert "lacks SELECT, SHOW VIEW, TRIGGER, EVENT" in refused.message  # a table grant is no database grant


def test_routines_another_account_defined_are_named(mariadb: ThrowawayServer, root: pymysql.connections.Connection,
                                                    accounts: list[str], shop: str, tmp_path: Path) -> None:
    # EXECUTE lists the routines; their definitions stay hidden: capture would refuse at SHOW CREATE.
    user = _user(root, accounts, f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, EXECUTE ON {quote_identifier(shop)}.* "
                 "TO {account}")
    check = _privilege_checks(tmp_path, mariadb, shop, user)["backup privileges"]
    assert check.status == health.ERROR
    assert "hides the definition of function `cents_to_text` (and of 1 more)" in check.message
    assert check.details["grants"] == [f"GRANT SELECT ON mysql.proc TO '{user}'@'%';"]


def test_a_data_backup_on_one_connection_needs_no_reload(mariadb: ThrowawayServer,
                                                         root: pymysql.connections.Connection,
                                                         accounts: list[str], shop: str, tmp_path: Path) -> None:
    user = _user(root, accounts, "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO {account}")
    assert _privilege_checks(tmp_path, mariadb, shop, user, data="all", max_workers=4,
                             parallel_operations=False)["backup privileges"].status == health.OK
    lacking = _privilege_checks(tmp_path, mariadb, shop, user, data="all", max_workers=4)["backup privileges"]
    assert lacking.details["grants"] == [f"GRANT RELOAD ON *.* TO '{user}'@'%';"]


# --- the connection, before any privilege --------------------------------------------------------------------


@pytest.mark.usefixtures("in_process")
def test_an_unreachable_database_is_a_connection_problem(mariadb: ThrowawayServer, shop: str,
                                                         tmp_path: Path) -> None:
    config = write_config(tmp_path, mariadb, shop, tmp_path / "store", port=1)
    ran = Session(config)("backup", "health-check", "--format", "json")
    assert ran.rc == 3
    checks = {check["name"]: check for check in ran.json()["checks"]}
    assert checks["database"]["message"].startswith("failed to connect to database")
    assert "backup privileges" not in checks and "rollback privileges" not in checks
    assert "privilege" not in ran.out.lower()


def test_no_database_configured_is_a_warning_not_a_guess(mariadb: ThrowawayServer, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, mariadb, "", tmp_path / "store"))
    [check] = health.check_privileges(config, None)
    assert check.status == health.WARNING and "--database" in check.message


# --- hostile names: the GRANT text means exactly this database and this account ------------------------------

_HOSTILE = st.text(st.sampled_from("ab_%`'\\\"@. -;"), min_size=1, max_size=12)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(database=_HOSTILE, user=_HOSTILE)
def test_hostile_names_get_a_grant_that_means_exactly_them(
    mariadb: ThrowawayServer, root: pymysql.connections.Connection, database: str, user: str
) -> None:
    # The server refuses a database name that ends in a space, and compares user names without trailing ones;
    database, user = database.rstrip(" "), user.rstrip(" ")
    # MariaDB 10.11 logs a client that sends the name '' (two quotes) in as the anonymous user ''.
    if not database or not user or user == "''":
        return
    made: list[str] = []
    sibling = database.replace("_", "x").replace("%", "y")
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
        cursor.execute(f"CREATE DATABASE {quote_identifier(database)}")
        cursor.execute(f"CREATE TABLE {quote_identifier(database)}.t (id int)")
    try:
        name = _user(root, made, f"GRANT SELECT ON {quote_identifier(database)}.t TO {{account}}", name=user)
        with contextlib.closing(pymysql.connect(host="127.0.0.1", port=mariadb.port, user=name, password=PASSWORD,
                                                database=database)) as connection:
            shortfalls = backup_shortfalls(connection, "mariadb", database)
            assert [s.privileges for s in shortfalls] == [("SELECT", "SHOW VIEW", "TRIGGER", "EVENT"), ("SELECT",)]
            _run_verbatim(root, [shortfall.grant for shortfall in shortfalls])
            assert backup_shortfalls(connection, "mariadb", database) == []
            grants = session_grants(connection, "mariadb")
            # The wildcards of a GRANT's database were escaped: nothing but this database was granted.
            if sibling != database:
                assert "TRIGGER" not in grants.privileges_on(sibling)
    finally:
        with root.cursor() as cursor:
            for account in made:
                cursor.execute(f"DROP USER IF EXISTS {account}")
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
