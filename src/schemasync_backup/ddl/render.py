"""How a stored routine, view, trigger or event is (re)created: the one renderer that restore,
rollback and every script use.

An object is created under the session settings it recorded: its sql_mode (string literals and
the body's meaning depend on it), its time zone (an event's STARTS, ENDS and AT), its
collation_connection (the body's string literals), and its character_set_client.

The character set needs care. Our texts are Unicode and go to the server as utf8mb4, so
``SET NAMES latin1`` before them would make the server read utf8mb4 bytes as latin1 and garble
every non-ASCII character (``pé`` comes back as ``pÃ©``). Instead, on MariaDB, the text is put
in a user variable while the client character set is still utf8mb4, the session switches to the
object's character_set_client and collation_connection, and ``EXECUTE IMMEDIATE`` runs the
variable: the server converts the text into that character set itself, parses it there and
records it, so the object comes back byte for byte with the character set it had. Where that
cannot work (MySQL has no ``EXECUTE IMMEDIATE`` and prepares no CREATE PROCEDURE; or the text
holds a character the object's character set lacks), the text is sent as utf8mb4 under the
object's collation_connection: the same SHOW CREATE text and schema hash, with utf8mb4 recorded as
the client character set (which the schema hash ignores).

Every rendering leaves the session's names utf8mb4 and its time zone as it found them (the
sql_mode is the object's: whatever comes next sets its own).
"""

from __future__ import annotations

import attrs

from schemasync_backup.model.snapshot import Event, Routine, Trigger, View
from schemasync_backup.sql import client_script
from schemasync_backup.sql.quoting import DEFINER_CLAUSE, quote_identifier, quote_string

#: The character set our texts are sent in; the session is left in it after every object.
CLIENT_CHARSET = "utf8mb4"
#: The sql_mode for tables and views: lenient enough for the zero dates old schemas carry
#: as defaults, strict about engines so nothing is silently created as MyISAM.
TABLE_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
#: The user variable that carries a text to EXECUTE IMMEDIATE.
DDL_VARIABLE = "@schemasync_ddl"
_ZONE_VARIABLE = "@schemasync_zone_was"
DEFINER_POLICIES = ("keep", "rewrite", "strip")
#: Modes recorded under a name SET sql_mode refuses: MariaDB's information_schema.ROUTINES reads
#: mysql.proc, whose sql_mode column calls ALLOW_INVALID_DATES INVALID_DATES.
_SETTABLE_MODES = {"INVALID_DATES": "ALLOW_INVALID_DATES"}
#: Python codecs that encode exactly what the server's character set holds (or less: MySQL's
#: latin1 is cp1252 plus five control characters cp1252 refuses, so those fall back to utf8mb4).
#: A character set not here is sent as utf8mb4 (see the module docstring).
_CODECS = {
    "latin1": "cp1252", "ascii": "ascii", "latin2": "iso8859_2", "latin5": "iso8859_9", "latin7": "iso8859_13",
    "greek": "iso8859_7", "hebrew": "iso8859_8", "koi8r": "koi8_r", "koi8u": "koi8_u", "cp1250": "cp1250",
    "cp1251": "cp1251", "cp1256": "cp1256", "cp1257": "cp1257", "cp850": "cp850", "cp852": "cp852",
    "cp866": "cp866",
}

Program = View | Routine | Trigger | Event


@attrs.frozen
class Rendered:
    """One object's CREATE, and every statement that creates it, in order."""

    #: The CREATE text the object is created from (after the definer policy).
    ddl: str
    #: What is sent, in order: the session settings, the CREATE (or what runs it), the reset.
    statements: tuple[str, ...]
    #: The statements before the one that creates the object: its session settings.
    session: tuple[str, ...]
    #: The client character set the server records for the object.
    charset_client: str


def apply_definer_policy(create_sql: str, policy: str) -> str:
    """``keep`` the DEFINER clause, ``rewrite`` it to CURRENT_USER, or ``strip`` it."""
    if policy == "rewrite":
        return DEFINER_CLAUSE.sub(r"\1DEFINER=CURRENT_USER ", create_sql, count=1)
    if policy == "strip":
        return DEFINER_CLAUSE.sub(r"\1", create_sql, count=1)
    return create_sql


def sql_mode_of(item: Program) -> str:
    """The sql_mode an object is created under (views: the table mode; they record none), in the
    spelling SET takes: the server records it back in the spelling it was captured in."""
    if isinstance(item, View):
        return TABLE_SQL_MODE
    return ",".join(_SETTABLE_MODES.get(mode.upper(), mode) for mode in item.sql_mode.split(","))


def render(item: Program, *, flavor: str = "mariadb", definer_policy: str = "keep") -> Rendered:
    """The statements that create ``item`` under its own session settings, on a server of ``flavor``."""
    mode = sql_mode_of(item)
    ddl = apply_definer_policy(item.create_sql, definer_policy)
    if isinstance(item, Event):
        ddl = _event_text(ddl, item)
    if isinstance(item, Routine | Event):
        ddl = _comment_for_mode(ddl, item.comment, mode)
    before = [f"SET SESSION sql_mode = {quote_string(mode)}"]
    reset_zone = []
    if isinstance(item, Event):
        # An event's STARTS/ENDS/AT are in its own time zone, which it records at creation.
        before += [f"SET {_ZONE_VARIABLE} = @@SESSION.time_zone", f"SET time_zone = {quote_string(item.time_zone)}"]
        reset_zone = [f"SET time_zone = {_ZONE_VARIABLE}"]
    charset = item.charset_client.lower()
    collation = item.collation_connection
    backslashes = "NO_BACKSLASH_ESCAPES" not in mode.upper()
    # Through a variable, the text is a string literal: neither a charset nor the mysql client
    # (which rewrites some comments) can change it on its way to the server.
    through_variable = charset != CLIENT_CHARSET or _client_would_alter(ddl, backslashes)
    if flavor == "mariadb" and through_variable and _representable(ddl, charset):
        before += [
            # Read as utf8mb4, like every text we send; the server converts it when it executes it.
            f"SET {DDL_VARIABLE} = {quote_string(ddl, backslash_escapes=backslashes)}",
            f"SET character_set_client = {quote_string(charset)}, collation_connection = {quote_string(collation)}",
        ]
        create = f"EXECUTE IMMEDIATE {DDL_VARIABLE}"
        after = [f"SET NAMES {CLIENT_CHARSET}, {DDL_VARIABLE} = NULL"]
        recorded = charset
    else:
        before.append(f"SET collation_connection = {quote_string(collation)}")
        create = ddl
        after = [f"SET NAMES {CLIENT_CHARSET}"]
        recorded = CLIENT_CHARSET
    statements = (*before, create, *after, *reset_zone)
    return Rendered(ddl, statements, tuple(before), recorded)


def _event_text(ddl: str, event: Event) -> str:
    """SHOW CREATE EVENT with the event's own name and comment.

    For an event made under another client character set, MariaDB prints the name and comment
    (kept in utf8) as if they were in that character set: ``ée`` reads ``Ã©e``. Created from
    that text the event would take the garbled name; created from this one, the server prints
    the same garbled text again.
    """
    codec = _CODECS.get(event.charset_client.lower())
    if codec is None or codec == "ascii":
        return ddl
    try:
        name, comment = (text.encode("utf-8").decode(codec) for text in (event.name, event.comment))
    except UnicodeDecodeError:
        return ddl
    prefix = ddl.partition(" ON SCHEDULE ")[0]
    if name != event.name and prefix.endswith(" EVENT " + quote_identifier(name)):
        ddl = ddl[:len(prefix) - len(quote_identifier(name))] + quote_identifier(event.name) + ddl[len(prefix):]
    printed = " COMMENT " + _printed_literal(comment) + " DO "
    if comment != event.comment and printed in ddl:
        ddl = ddl.replace(printed, " COMMENT " + _printed_literal(event.comment) + " DO ", 1)
    return ddl


def _client_would_alter(ddl: str, backslash_escapes: bool) -> bool:
    readings = (client_script.lex(ddl, backslash_escapes=backslash_escapes, ansi_quotes=ansi)
                for ansi in (False, True))
    return any(reading.problem for reading in readings)


def _representable(text: str, charset: str) -> bool:
    if charset == CLIENT_CHARSET:
        return True
    if charset in ("utf8", "utf8mb3"):
        return all(ord(char) <= 0xFFFF for char in text)
    codec = _CODECS.get(charset)
    if codec is None:
        return False
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _comment_for_mode(create_sql: str, comment: str, sql_mode: str) -> str:
    """Respell the COMMENT of a routine or event for NO_BACKSLASH_ESCAPES.

    The server prints that comment with backslash escapes (``\\n``, ``\\\\``) whatever the
    object's sql_mode, and the object must be recreated under its own sql_mode, which would
    read them back literally.
    """
    if "NO_BACKSLASH_ESCAPES" not in sql_mode.upper():
        return create_sql
    printed = "COMMENT " + _printed_literal(comment)
    wanted = "COMMENT " + quote_string(comment, backslash_escapes=False)
    return create_sql.replace(printed, wanted, 1)


def _printed_literal(value: str) -> str:
    """A string as the server prints it in SHOW CREATE (append_unescaped)."""
    for char, escape in (("\\", "\\\\"), ("'", "''"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(char, escape)
    return "'" + value + "'"
