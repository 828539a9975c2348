"""The debug log of the statements sent to the server: one line each, with its time and rows.

``schemasync_backup.sql`` at DEBUG gets, for every statement on a connection this package opened
and every pipelined one::

    sql SELECT `TABLE_NAME`, ... FROM information_schema.TABLES WHERE ... duration=0.003s rows=12

The text is :func:`~schemasync_backup.sql.loggable.loggable`'s (short, no data values, no
password). Callers check :func:`enabled` before timing anything, so with the log off a statement
costs one cached level check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote

from schemasync_backup.sql.loggable import loggable, without_secrets

SQL_LOGGER = logging.getLogger("schemasync_backup.sql")


def enabled() -> bool:
    return SQL_LOGGER.isEnabledFor(logging.DEBUG)


def password_forms(password: str | bytes) -> tuple[str, ...]:
    """A connection's password as a statement could hold it: as is, and percent-encoded (a DSN's form)."""
    # PyMySQL keeps the password as Latin-1 bytes.
    text = password.decode("latin-1") if isinstance(password, bytes) else password
    return (text, quote(text, safe="")) if text else ()


def log_statement(statement: str | bytes, duration: float, *, rows: int | None = None, how: str = "",
                  sent: int | None = None, failed: BaseException | None = None,
                  secrets: Iterable[str] = ()) -> None:
    """One line for a statement that took ``duration`` seconds: ``rows`` it returned or changed,
    ``how`` it ran (pipelined, streamed), the bytes ``sent`` besides it (LOAD DATA LOCAL), and the
    error type if it ``failed`` (not its message, which may quote row values)."""
    text = statement.decode("utf-8", "replace") if isinstance(statement, bytes) else statement
    fields = [f"duration={duration:.3f}s"]
    if rows is not None:
        fields.append(f"rows={rows}")
    if sent is not None:
        fields.append(f"sent_bytes={sent}")
    if how:
        fields.append(how)
    if failed is not None:
        fields.append(f"failed={type(failed).__name__}")
    secrets = tuple(secrets)
    SQL_LOGGER.debug("%s", without_secrets(f"sql {loggable(text, secrets)} {' '.join(fields)}", secrets))
