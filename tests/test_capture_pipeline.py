"""The raw packet reader of pipelined answers (capture.pipeline) and texts_many, its one user."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pymysql
import pytest

from schemasync_backup.capture import connection as conn
from schemasync_backup.capture.connection import ConnectionSpec, connect, query_many, texts_many
from schemasync_backup.capture.pipeline import read_text_result
from schemasync_backup.errors import DatabaseConnectionError, ProtocolMismatchError, QueryError, ServerErrorPacket
from schemasync_backup.testing.sandbox import ThrowawayServer


def _packets(*payloads: bytes, first_sequence: int = 1) -> bytes:
    """The bytes of an answer: each payload behind its 3-byte length and sequence number."""
    stream = b""
    for number, payload in enumerate(payloads):
        stream += len(payload).to_bytes(3, "little") + bytes([(first_sequence + number) & 0xFF]) + payload
    return stream


def _reader(stream: bytes) -> tuple[list[int], Callable[[int], bytes]]:
    """How far ``read`` got (a one-item list), and ``read``, which hands out ``stream``."""
    position = [0]

    def read(size: int) -> bytes:
        start = position[0]
        if start + size > len(stream):
            raise EOFError("read past the end of the answer")
        position[0] += size
        return stream[start : start + size]

    return position, read


def _value(text: bytes) -> bytes:
    size = len(text)
    if size < 0xFB:
        return bytes([size]) + text
    if size < 1 << 16:
        return b"\xfc" + size.to_bytes(2, "little") + text
    if size < 1 << 24:
        return b"\xfd" + size.to_bytes(3, "little") + text
    return b"\xfe" + size.to_bytes(8, "little") + text


COLUMN = b"\x03def" + b"\x00" * 20  # a column definition: its content is never read
EOF = b"\xfe\x00\x00\x02\x00"  # no warnings, SERVER_STATUS_AUTOCOMMIT


def _result(*rows: bytes, columns: int = 2) -> bytes:
    return _packets(bytes([columns]), *([COLUMN] * columns), EOF, *rows, EOF)


def test_rows_come_back_as_text_with_nulls_and_long_values() -> None:
    long = "é" * 40_000  # a 3-byte length: 80,000 bytes of UTF-8
    stream = _result(
        _value(b"t") + _value("CREATE TABLE `t` (\n  `ü` int\n)".encode()),
        b"\xfb" + _value(long.encode()),
        _value(b"x" * 300) + _value(b""),
    )
    position, read = _reader(stream)
    assert read_text_result(read) == [("t", "CREATE TABLE `t` (\n  `ü` int\n)"), (None, long), ("x" * 300, "")]
    assert position[0] == len(stream)  # nothing of the next answer was read


def test_a_row_over_16_mib_spans_packets_and_the_eof_test_looks_at_the_length() -> None:
    big = b"a" * (0xFFFFFF + 10)
    payload = _value(big)  # starts with 0xFE, like an EOF packet
    first, rest = payload[:0xFFFFFF], payload[0xFFFFFF:]
    stream = _packets(b"\x01", COLUMN, EOF, first, rest, EOF)
    position, read = _reader(stream)
    assert read_text_result(read) == [(big.decode(),)]
    assert position[0] == len(stream)


def test_an_ok_packet_is_no_rows_and_an_error_packet_is_the_servers_error() -> None:
    assert read_text_result(_reader(_packets(b"\x00\x00\x00\x02\x00\x00\x00"))[1]) == []
    error = b"\xff\x7a\x04#42S02Table 'db.nope' doesn't exist"
    with pytest.raises(ServerErrorPacket) as caught:
        read_text_result(_reader(_packets(error))[1])
    assert caught.value.packet == error
    # An error after some rows (a killed query) ends the answer too.
    killed = _packets(b"\x01", COLUMN, EOF, _value(b"a"), error)
    with pytest.raises(ServerErrorPacket):
        read_text_result(_reader(killed)[1])


@pytest.mark.parametrize(
    ("stream", "lost"),
    [
        (_packets(b"\xff\x87\x07#08S01Server shutdown in progress", first_sequence=0), True),
        (_packets(b"\x01", COLUMN, first_sequence=2), False),
        (_packets(b"\x01", COLUMN, _value(b"no EOF")), False),
        (_packets(b"\xfbsome/file.txt"), False),
        (_packets(b"\x01", COLUMN, EOF, _value(b"x"), b"\xfe\x00\x00\x0a\x00"), False),  # more results
        (_packets(b"\x01", COLUMN, EOF, b"\x05abc"), False),  # a value longer than its packet
        (_packets(b"\x01", COLUMN, EOF, b""), False),  # an empty packet
    ],
    ids=["shutdown", "sequence", "no-eof", "local-infile", "more-results", "short-value", "empty"],
)
def test_packets_out_of_step_are_a_protocol_error(stream: bytes, lost: bool) -> None:
    with pytest.raises(ProtocolMismatchError) as caught:
        read_text_result(_reader(stream)[1])
    assert caught.value.lost is lost


# --- against the server ----------------------------------------------------------------------------


@pytest.fixture
def connection(mariadb: ThrowawayServer, fresh_db: str) -> Iterator[pymysql.connections.Connection]:
    opened = connect(ConnectionSpec.parse(mariadb.dsn_for(fresh_db)))
    yield opened
    opened.close()


def test_texts_many_gives_what_pymysql_gives_as_text(connection: pymysql.connections.Connection) -> None:
    statements = [
        "CREATE TABLE `tä` (id int PRIMARY KEY, v varchar(10) DEFAULT 'ß') COMMENT '→'",
        "CREATE VIEW v AS SELECT id, NULL AS n FROM `tä`",
    ]
    for statement in statements:
        conn.execute(connection, statement)
    queries = ["SHOW CREATE TABLE `tä`", "SHOW CREATE VIEW v", "SELECT 1, NULL, 'x', 2.5, b'1'", "DO 1",
               "SELECT v FROM `tä`"] * 200
    expected = [[tuple(None if value is None else conn.text(value) for value in row) for row in rows]
                for rows in query_many(connection, queries)]
    assert texts_many(connection, queries) == expected
    assert expected[0][0][1].startswith("CREATE TABLE `tä`") and expected[2] == [("1", None, "x", "2.5", "\x01")]


def test_texts_many_reports_the_first_error_once_and_the_connection_stays_usable(
    connection: pymysql.connections.Connection,
) -> None:
    with pytest.raises(QueryError) as caught:
        texts_many(connection, ["SELECT 1", "SHOW CREATE TABLE no_such_table", "SELECT 3", "SELECT * FROM nope2"])
    assert caught.value.code == 1146 and "no_such_table" in str(caught.value)
    assert texts_many(connection, [f"SELECT {n}" for n in range(3000)]) == [[(str(n),)] for n in range(3000)]


def test_texts_many_without_the_internals_it_needs_falls_back_to_pymysql(
    connection: pymysql.connections.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conn, "_RAW_READ_API", (*conn._RAW_READ_API, "_no_such_attribute"))
    monkeypatch.setattr(conn, "read_text_result", None)  # would fail if called
    assert texts_many(connection, ["SELECT 1, NULL", "SELECT 'x'"]) == [[("1", None)], [("x",)]]


def test_texts_many_on_a_connection_the_server_killed_is_a_connection_error(
    mariadb: ThrowawayServer, connection: pymysql.connections.Connection
) -> None:
    connection_id = int(conn.query(connection, "SELECT CONNECTION_ID() AS id")[0]["id"])
    killer = connect(ConnectionSpec.parse(mariadb.dsn))
    try:
        conn.execute(killer, f"KILL {connection_id}")
    finally:
        killer.close()
    with pytest.raises(DatabaseConnectionError):
        texts_many(connection, ["SELECT 1", "SELECT 2"])
    assert not connection.open
