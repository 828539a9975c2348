"""Table data on the real server: chunks read exactly, load back identically both ways, stay put.

The property test draws tables of most column types (hostile text in several charsets, bytes
that are not UTF-8, zero dates, fractions, BIT(1..64), DECIMAL(65,30) extremes, FLOAT and
DOUBLE, JSON, spatial values, ENUM and SET with their traps, NULL next to '') under keys of
many types, reads them in chunks, loads the chunks into empty copies with LOAD DATA and with
INSERT, and checks the copies against the original with CHECKSUM TABLE (the stored record
bytes, independent of our encoding) and the chunks against chunk_digest of the copies.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemasync_backup.capture import table_data
from schemasync_backup.capture.connection import Connection, ConnectionSpec, execute, query
from schemasync_backup.capture.table_data import (
    Chunk,
    Position,
    chunk_digest,
    chunk_key,
    data_columns,
    load_chunk,
    non_transactional,
    open_data_connection,
    read_chunks,
    start_consistent_snapshot,
)
from schemasync_backup.errors import InvalidSourceError, PrivilegeError, QueryError
from schemasync_backup.model.snapshot import Snapshot, Table
from schemasync_backup.sql import load_data
from schemasync_backup.sql.quoting import quote_identifier as q
from schemasync_backup.testing.sandbox import ThrowawayServer

pytestmark = pytest.mark.server

_names = itertools.count()


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database(mariadb: ThrowawayServer) -> Iterator[str]:
    name = "table_data_tests"
    admin = _connect(mariadb)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {q(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    yield name
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE {q(name)}")
    admin.close()


@pytest.fixture(scope="module")
def admin(mariadb: ThrowawayServer, database: str) -> Iterator[pymysql.connections.Connection]:
    """Root, in a session lax enough to store every hostile value (ENUM index 0, 2020-02-31), in UTC."""
    connection = _connect(mariadb, database)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES', time_zone = '+00:00'")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def data(mariadb: ThrowawayServer, database: str) -> Iterator[Connection]:
    connection = open_data_connection(ConnectionSpec(unix_socket=str(mariadb.socket_path)), database)
    yield connection
    connection.close()


def _connect(server: ThrowawayServer, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(unix_socket=str(server.socket_path), user="root", database=database,
                           autocommit=True, charset="utf8mb4")


def _run(connection: pymysql.connections.Connection, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def _table(admin: pymysql.connections.Connection, database: str, name: str) -> Table:
    return Snapshot.capture(admin, database).table(name)


def _checksum(admin: pymysql.connections.Connection, name: str) -> tuple[int, int]:
    """(rows, CHECKSUM TABLE): the checksum covers every stored byte of every row, in any order."""
    return _run(admin, f"SELECT COUNT(*) FROM {q(name)}")[0][0], _run(admin, f"CHECKSUM TABLE {q(name)}")[0][1]


def _copy(admin: pymysql.connections.Connection, name: str) -> str:
    copy = f"{name}_copy{next(_names)}"
    _run(admin, f"CREATE TABLE {q(copy)} LIKE {q(name)}")
    return copy


def _round_trip(admin: pymysql.connections.Connection, data: Connection, table: Table, chunks: list[Chunk],
                chunk_bytes: int, **load: Any) -> Table:
    """Load ``chunks`` into an empty copy of ``table``; check it equals the original, chunk by chunk too."""
    copy = attrs.evolve(table, name=_copy(admin, table.name))
    loaded = sum(load_chunk(data, copy.name, chunk, **load) for chunk in chunks)
    assert loaded == sum(chunk.rows for chunk in chunks)
    assert _checksum(admin, copy.name) == _checksum(admin, table.name)
    if chunk_key(table) is None:  # no key to bound a chunk by: the whole table
        whole = hashlib.sha256(b"".join(chunk.data for chunk in chunks)).hexdigest()
        assert chunk_digest(data, copy, data_columns(copy), None, None) == (sum(c.rows for c in chunks), whole)
    for chunk in chunks if chunk_key(table) else ():
        assert chunk_digest(data, copy, chunk.columns, chunk.first_key, chunk.last_key) == (chunk.rows, chunk.sha256)
    # The copy reads back into the very same bytes.
    assert [c.data for c in read_chunks(data, copy, chunk_bytes=chunk_bytes)] == [c.data for c in chunks]
    return copy


def _read(data: Connection, table: Table, chunk_bytes: int = 8 << 20, columns: Sequence[str] | None = None
          ) -> list[Chunk]:
    chunks = list(read_chunks(data, table, columns, chunk_bytes=chunk_bytes))
    for number, chunk in enumerate(chunks, start=1):
        assert chunk.number == number
        assert chunk.sha256 == hashlib.sha256(chunk.data).hexdigest()
        assert chunk.rows == chunk.data.count(b"\n")
        assert len(chunk.data) <= chunk_bytes or chunk.rows == 1
    return chunks


# --- value strategies ----------------------------------------------------------------------

#: Pieces of text that trip a tab-separated format: its delimiters, its escapes, its NULL.
TRAPS = ["\t", "\n", "\r", "\\", "\0", "N", "\\N", "NULL", "\\t", "'", '"', "\x1a", "\b", " ", "é", "😀", "ß"]
BYTE_TRAPS = [b"\t", b"\n", b"\r", b"\\", b"\0", b"N", b"\\N", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b" "]


def _text(alphabet: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    traps = st.lists(st.sampled_from(TRAPS), max_size=4).map("".join).filter(lambda text: len(text) <= max_size)
    return st.one_of(st.text(alphabet, max_size=max_size), traps)


UNICODE = st.characters(exclude_categories=("Cs",))
LATIN1 = st.characters(max_codepoint=0xFF)
ASCII = st.characters(max_codepoint=0x7F)


def _latin1_text(max_size: int) -> st.SearchStrategy[str]:
    return _text(LATIN1, max_size).filter(lambda text: _encodes(text, "latin-1"))


def _ascii_text(max_size: int) -> st.SearchStrategy[str]:
    return _text(ASCII, max_size).filter(lambda text: _encodes(text, "ascii"))


def _encodes(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _bytes(max_size: int) -> st.SearchStrategy[bytes]:
    traps = st.lists(st.sampled_from(BYTE_TRAPS), max_size=4).map(b"".join).filter(lambda b: len(b) <= max_size)
    return st.one_of(st.binary(max_size=max_size), traps)


def _wkb_point(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def _geometry(wkb: bytes, srid: int = 0) -> bytes:
    """MariaDB's internal form: the SRID, then WKB."""
    return struct.pack("<I", srid) + wkb


COORDINATE = st.floats(allow_nan=False, allow_infinity=False, width=64)
POINTS = st.builds(lambda x, y, srid: _geometry(_wkb_point(x, y), srid), COORDINATE, COORDINATE,
                   st.sampled_from([0, 4326]))


def _polygon(corners: list[tuple[float, float]]) -> bytes:
    ring = [*corners, corners[0]]
    return _geometry(struct.pack("<BII", 1, 3, 1) + struct.pack("<I", len(ring))
                     + b"".join(struct.pack("<dd", x, y) for x, y in ring))


POLYGONS = st.lists(st.tuples(COORDINATE, COORDINATE), min_size=3, max_size=5).map(_polygon)
ZERO_DATETIME = "0000-00-00 00:00:00"
DATETIMES = st.one_of(
    st.sampled_from([ZERO_DATETIME, "2020-00-00 00:00:00", "9999-12-31 23:59:59.999999", "0001-01-01 00:00:00"]),
    st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda moment: moment.isoformat(" ")),
)
DATES = st.one_of(st.sampled_from(["0000-00-00", "2020-02-31", "2020-00-15", "2020-07-00"]),
                  st.dates().map(str))
TIMES = st.integers(-(838 * 3600 + 59 * 60 + 59) * 1000, (838 * 3600 + 59 * 60 + 59) * 1000).map(
    lambda ms: ("-" if ms < 0 else "") + _clock(abs(ms)))
TIMESTAMPS = st.one_of(
    st.just(ZERO_DATETIME),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2038, 1, 18)).map(
        lambda moment: moment.isoformat(" ")),
)
FLOATS = st.floats(width=32, allow_nan=False, allow_infinity=False)
DOUBLES = st.floats(allow_nan=False, allow_infinity=False)
DECIMAL_LIMIT = Decimal("99999999999999999999999999999999999.999999999999999999999999999999")
DECIMALS = st.one_of(st.sampled_from([DECIMAL_LIMIT, -DECIMAL_LIMIT, Decimal("1e-30"), Decimal(0)]),
                     st.decimals(-DECIMAL_LIMIT, DECIMAL_LIMIT, places=30, allow_nan=False))
JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | DOUBLES | st.text(UNICODE, max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(UNICODE, max_size=3), inner, max_size=3),
    max_leaves=6,
).map(lambda value: json.dumps(value, ensure_ascii=False))


def _clock(ms: int) -> str:
    seconds, fraction = divmod(ms, 1000)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:03d}"


HOSTILE = "".join(TRAPS)
LONG_BYTES = bytes(range(256)) * 1200  # 300 KiB: longer than what the server escapes itself
LONG_TEXT = "\t\n\\😀" * 80_000  # 560 KB


@dataclass(frozen=True)
class Kind:
    sql: str
    values: st.SearchStrategy[Any]
    #: Two of its nastiest values, for the fixed table of every kind.
    traps: tuple[Any, Any]


KINDS = [
    Kind("varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", _text(UNICODE, 40), (HOSTILE, "N")),
    Kind("mediumtext CHARACTER SET utf8mb4", _text(UNICODE, 60), (HOSTILE * 3, "")),
    Kind("text CHARACTER SET latin1", _latin1_text(60), ("é\t\\N\n", "")),
    Kind("varchar(12) CHARACTER SET utf16", _text(UNICODE, 12), ("😀\t\0", "")),
    Kind("char(6) CHARACTER SET ascii", _ascii_text(6), ("\\N\t\n", "")),
    Kind("varbinary(40)", _bytes(40), (b"\\N\t\n\0\xff", b"")),
    Kind("binary(4)", _bytes(4), (b"\0\t\n\\", b"")),
    Kind("blob", _bytes(300), (b"\xff" * 300, b"")),
    Kind("json", JSONS, ('{"a": "\\t\\n\\\\", "😀": [1.5e300, null]}', "null")),
    Kind("datetime(6)", DATETIMES, (ZERO_DATETIME, "2020-00-00 00:00:00.000001")),
    Kind("date", DATES, ("2020-02-31", "0000-00-00")),
    Kind("time(3)", TIMES, ("-838:59:59.000", "00:00:00")),
    Kind("timestamp(6) NULL DEFAULT NULL", TIMESTAMPS, (ZERO_DATETIME, "2038-01-18 03:14:07.999999")),
    Kind("year", st.one_of(st.just(0), st.integers(1901, 2155)), (0, 2155)),
    Kind("bit(1)", st.integers(0, 1), (1, 0)),
    Kind("bit(13)", st.integers(0, 2**13 - 1), (8191, 0)),
    Kind("bit(64)", st.one_of(st.sampled_from([0, 2**64 - 1, 2**63]), st.integers(0, 2**64 - 1)), (2**64 - 1, 0)),
    Kind("decimal(65,30)", DECIMALS, (DECIMAL_LIMIT, -DECIMAL_LIMIT)),
    Kind("float", FLOATS, (3.4028234663852886e38, 1.401298464324817e-45)),
    Kind("float(7,4)", st.floats(-999, 999), (-999.9999, 0.0001)),
    Kind("double", DOUBLES, (5e-324, -0.0)),
    Kind("double(10,3)", st.floats(-9999999, 9999999), (2.0005, -9999999.999)),
    Kind("int(6) unsigned zerofill", st.integers(0, 2**32 - 1), (42, 2**32 - 1)),
    # '2' is index 3, the number 2 index 2 (''), 0 the error value that also prints ''.
    Kind("enum('a','','2','1')", st.sampled_from(["a", "", "2", "1", 0, 1, 2, 3, 4]), (0, "2")),
    Kind("set('x','y','z')", st.integers(0, 7), (7, 0)),
    Kind("point", POINTS, (_geometry(_wkb_point(float.fromhex("0x1.0909090909090p+0"), -0.0), 4326),
                           _geometry(_wkb_point(0.0, 0.0)))),
    Kind("polygon", POLYGONS, (_polygon([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]),
                               _polygon([(9.0, 10.0), (92.0, 0.0), (13.0, 9.0)]))),
    Kind("inet6", st.one_of(st.sampled_from(["1:2:3:4:5:6:7:88", "::", "::ffff:1.2.3.4"]),
                            st.ip_addresses(v=6).map(str)), ("1:2:3:4:5:6:7:88", "::")),
    Kind("uuid", st.uuids().map(str), (str(uuid.UUID(int=0x0A09_5C00)), str(uuid.UUID(int=0)))),
    Kind("bigint", st.integers(-(2**63), 2**63 - 1), (-(2**63), 0)),
    Kind("tinyint unsigned", st.integers(0, 255), (255, 0)),
]
#: Only in the fixed table: values longer than the server escapes, sent raw and escaped here.
LONG_KINDS = [Kind("longblob", st.nothing(), (LONG_BYTES, b"")),
              Kind("longtext CHARACTER SET utf8mb4", st.nothing(), (LONG_TEXT, ""))]


@dataclass(frozen=True)
class KeyKind:
    """A key's column types, and a distinct value (tuple) for each row number."""

    types: tuple[str, ...]
    value: Callable[[int], tuple[Any, ...]]


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


#: ENUM labels in the reverse order of their indexes: a key compared by label would page wrongly.
ENUM_LABELS = [f"v{99 - at:02d}" for at in range(40)]
KEYS = [
    KeyKind(("int",), lambda i: (i * 7 - 50,)),
    KeyKind(("bigint unsigned",), lambda i: (2**64 - 1 - i * 987654321,)),
    # Case alternates: ORDER BY sorts k000 K001 k002, a binary comparison K001 k000 k002.
    KeyKind(("varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",),
            lambda i: (("K" if i % 2 else "k") + f"{i:03d}\t\\é😀",)),
    KeyKind(("varchar(8) CHARACTER SET latin1 COLLATE latin1_german1_ci",),
            lambda i: (("Ä" if i % 2 else "a") + str(i),)),
    KeyKind(("varbinary(8)",), lambda i: (bytes([255 - i, 9, 10, 92, 0, 128 + i]),)),
    KeyKind(("datetime(6)",), lambda i: (ZERO_DATETIME if i == 0 else f"2020-01-01 00:00:{i % 60:02d}.{i:06d}",)),
    KeyKind(("decimal(30,10)",), lambda i: ((Decimal(i) - 10) / 3,)),
    KeyKind(("double",), lambda i: ((i - 10) * 0.1,)),
    KeyKind(("float",), lambda i: (_float32((i - 10) * 0.3),)),
    KeyKind(("enum(" + ",".join(f"'{label}'" for label in ENUM_LABELS) + ")",), lambda i: (i + 1,)),
    KeyKind(("bit(8)",), lambda i: (i,)),
    KeyKind(("int", "varchar(3) COLLATE utf8mb4_general_ci"), lambda i: (i // 4, "aBcD"[i % 4])),
]


@st.composite
def tables(draw: st.DrawFn) -> tuple[KeyKind | None, list[Kind], list[tuple[Any, ...]], int]:
    key = draw(st.one_of(st.none(), st.sampled_from(KEYS)))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6, unique_by=lambda kind: kind.sql))
    rows = draw(st.lists(st.tuples(*(st.one_of(st.none(), kind.values) for kind in kinds)), max_size=25))
    chunk_bytes = draw(st.sampled_from([16, 200, 2000, 1 << 20]))
    return key, kinds, rows, chunk_bytes


def _create(admin: pymysql.connections.Connection, key: KeyKind | None, kinds: Sequence[Kind],
            rows: Sequence[tuple[Any, ...]]) -> str:
    name = f"t{next(_names)}"
    keys = [f"k{at} {sql} NOT NULL" for at, sql in enumerate(key.types)] if key else []
    columns = [f"c{at} {kind.sql}" for at, kind in enumerate(kinds)]
    primary = [f"PRIMARY KEY ({', '.join(f'k{at}' for at in range(len(key.types)))})"] if key else []
    _run(admin, f"CREATE TABLE {name} ({', '.join([*keys, *columns, *primary])}) ENGINE=InnoDB")
    if rows:
        width = (len(key.types) if key else 0) + len(kinds)
        values = [(*(key.value(at) if key else ()), *row) for at, row in enumerate(rows)]
        with admin.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {name} VALUES ({', '.join(['%s'] * width)})", values)
    return name


# --- exactness ---------------------------------------------------------------------------


@settings(database=None, derandomize=True, deadline=None, max_examples=150,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=tables())
def test_chunks_load_back_identically_both_ways(admin: pymysql.connections.Connection, data: Connection,
                                                database: str, drawn: tuple[Any, ...]) -> None:
    key, kinds, rows, chunk_bytes = drawn
    table = _table(admin, database, _create(admin, key, kinds, rows))
    chunks = _read(data, table, chunk_bytes)
    assert sum(chunk.rows for chunk in chunks) == len(rows)
    assert chunk_key(table) == (tuple(f"k{at}" for at in range(len(key.types))) if key else None)
    copies = [_round_trip(admin, data, table, chunks, chunk_bytes, method="load_data"),
              _round_trip(admin, data, table, chunks, chunk_bytes, method="insert", batch_size=3)]
    _run(admin, f"DROP TABLE {', '.join(q(name) for name in [table.name, *(copy.name for copy in copies)])}")


def test_every_trap_in_one_table(admin: pymysql.connections.Connection, data: Connection, database: str) -> None:
    """A fixed table of every kind with the nastiest values, including long ones the client escapes."""
    kinds = [*KINDS, *LONG_KINDS]
    rows = [tuple(kind.traps[0] for kind in kinds), tuple(kind.traps[1] for kind in kinds), (None,) * len(kinds)]
    table = _table(admin, database, _create(admin, KEYS[0], kinds, rows))
    chunks = _read(data, table, 1 << 20)
    assert [chunk.rows for chunk in chunks] == [1, 2]  # the 1.1 MB row is a chunk alone
    _round_trip(admin, data, table, chunks, 1 << 20, method="load_data")
    _round_trip(admin, data, table, chunks, 1 << 20, method="insert")
    at = {kind.sql.split("(")[0].split()[0]: f"c{number}" for number, kind in reversed(list(enumerate(kinds)))}
    stored = _run(admin, f"SELECT {at['varchar']}, {at['binary']}, {at['enum']} + 0, {at['longblob']}, "
                         f"{at['longtext']} FROM {table.name} ORDER BY k0")  # the first column of each type
    assert stored[0] == (HOSTILE, b"\0\t\n\\", 0, LONG_BYTES, LONG_TEXT)
    assert stored[1][2] == 3  # the label '2'
    assert stored[2] == (None, None, None, None, None)


@given(value=st.one_of(st.none(), st.binary(), st.lists(st.sampled_from(BYTE_TRAPS)).map(b"".join)))
@settings(database=None, derandomize=True, max_examples=200)
def test_escape_and_unescape_are_inverse(value: bytes | None) -> None:
    field = load_data.escape(value)
    assert b"\t" not in field and b"\n" not in field
    assert load_data.unescape(field) == value
    line = b"\t".join([field, b"x", field]) + b"\n"
    assert list(load_data.rows(line * 2)) == [[value, b"x", value]] * 2


# --- chunks ---------------------------------------------------------------------------------


def test_chunks_stay_put_when_one_row_changes(admin: pymysql.connections.Connection, data: Connection,
                                               database: str) -> None:
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int PRIMARY KEY, payload varchar(200), n double)")
    _run(admin, "SET SESSION max_recursive_iterations = 100000")
    _run(admin, f"INSERT INTO {name} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000) "
                "SELECT i, REPEAT(MD5(i), 1 + i % 3), i / 7 FROM s")
    table = _table(admin, database, name)
    chunk_bytes = 64 << 10
    before = _read(data, table, chunk_bytes)
    assert len(before) > 5
    assert sum(chunk.rows for chunk in before) == 20000
    assert all(len(chunk.data) <= chunk_bytes for chunk in before)
    _run(admin, f"UPDATE {name} SET payload = CONCAT(payload, 'longer now') WHERE id = 12345")
    after = _read(data, table, chunk_bytes)
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old.sha256 != new.sha256]
    assert len(changed) == 1
    old, new = changed[0]
    assert (old.first_key, old.last_key, old.rows) == (new.first_key, new.last_key, new.rows)
    assert int(old.first_key[0]) <= 12345 <= int(old.last_key[0])
    assert [chunk.data for chunk in before if chunk is not old] == [chunk.data for chunk in after if chunk is not new]
    # A subset of the columns: the key comes first, whatever the order asked for.
    subset = _read(data, table, chunk_bytes, columns=["n"])
    assert subset[0].columns == ("id", "n")
    assert subset[0].data.startswith(b"1\t0.142857142\n2\t0.285714285\n")


def test_a_table_without_a_key(admin: pymysql.connections.Connection, data: Connection, database: str) -> None:
    name = f"t{next(_names)}"
    # A UNIQUE key over a nullable column orders nothing: two rows may both hold NULL.
    _run(admin, f"CREATE TABLE {name} (a int, b text, UNIQUE KEY (a))")
    rows = [(at if at % 5 else None, "dup\t" if at % 2 else "") for at in range(300)] + [(None, "dup\t")] * 3
    with admin.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {name} VALUES (%s, %s)", rows)
    table = _table(admin, database, name)
    assert chunk_key(table) is None
    chunks = _read(data, table, 512)
    assert len(chunks) > 3
    assert all(chunk.first_key is None and chunk.last_key is None for chunk in chunks)
    for method in ("load_data", "insert"):
        _round_trip(admin, data, table, chunks, 512, method=method)


def test_invisible_columns_kept_and_generated_ones_skipped(
    admin: pymysql.connections.Connection, data: Connection, database: str
) -> None:
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int AUTO_INCREMENT PRIMARY KEY, a int, "
                "v int AS (a + 1) VIRTUAL, s varchar(20) AS (CONCAT('s', a)) STORED, h varchar(10) INVISIBLE, "
                "rs timestamp(6) GENERATED ALWAYS AS ROW START INVISIBLE, "
                "re timestamp(6) GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME (rs, re)"
                ") WITH SYSTEM VERSIONING")
    _run(admin, f"INSERT INTO {name} (id, a, h) VALUES (0, 1, 'hidden\t'), (5, NULL, NULL), (6, 3, '')")
    table = _table(admin, database, name)
    assert data_columns(table) == ("id", "a", "h")
    chunks = _read(data, table)
    assert chunks[0].data == b"0\t1\thidden\\t\n5\t\\N\t\\N\n6\t3\t\n"  # the explicit 0 stays 0
    copy = _copy(admin, name)
    assert load_chunk(data, copy, chunks[0]) == 3
    assert (_run(admin, f"SELECT id, a, v, s, h FROM {copy} ORDER BY id")
            == _run(admin, f"SELECT id, a, v, s, h FROM {name} ORDER BY id"))


def test_loading_refuses_rows_it_cannot_load(admin: pymysql.connections.Connection, data: Connection,
                                             database: str) -> None:
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int PRIMARY KEY)")
    _run(admin, f"INSERT INTO {name} VALUES (1), (2)")
    chunks = _read(data, _table(admin, database, name))
    # LOAD DATA LOCAL skips a duplicate key with a warning; load_chunk counts and says so.
    with pytest.raises(QueryError, match="loaded 0 of the 2 rows"):
        load_chunk(data, name, chunks[0])
    with pytest.raises(QueryError, match="Duplicate entry"):
        load_chunk(data, name, chunks[0], method="insert")


# --- the local-infile guard -------------------------------------------------------------------


def test_load_data_local_sends_only_the_chunk(admin: pymysql.connections.Connection, data: Connection,
                                              database: str, tmp_path: Any) -> None:
    from schemasync_backup.capture.connection import load_local

    secret = tmp_path / "secret"
    secret.write_text("secret line\n")
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (line varchar(100))")
    statement = f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE {name} {load_data.FORMAT}"
    assert load_local(data, statement, b"ours\n") == 1
    # Not armed by load_local: the server's request gets an empty file, and the statement an error.
    with pytest.raises(QueryError, match="asked for a local file outside any LOAD DATA of ours"):
        execute(data, statement)
    assert _run(admin, f"SELECT line FROM {name}") == [("ours",)]
    execute(data, "SELECT 1")  # the connection is still in step


def test_the_data_session(data: Connection) -> None:
    settings = query(data, "SELECT @@character_set_results AS results, @@time_zone AS zone, @@sql_mode AS mode, "
                           "@@foreign_key_checks AS fk")[0]
    assert settings == {"results": b"binary", "zone": b"+00:00", "fk": b"0",
                        "mode": b"NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION"}


def test_a_server_without_local_infile_is_told_to_use_insert(admin: pymysql.connections.Connection,
                                                              data: Connection, database: str) -> None:
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int PRIMARY KEY)")
    _run(admin, f"INSERT INTO {name} VALUES (1)")
    chunks = _read(data, _table(admin, database, name))
    copy = _copy(admin, name)
    _run(admin, "SET GLOBAL local_infile = 0")
    try:
        with pytest.raises(QueryError, match="load with method='insert'"):
            load_chunk(data, copy, chunks[0])
    finally:
        _run(admin, "SET GLOBAL local_infile = 1")
    assert load_chunk(data, copy, chunks[0], method="insert") == 1


def test_an_ordinary_connection_is_refused(admin: pymysql.connections.Connection, database: str) -> None:
    table = Table(name="t", columns=())
    with pytest.raises(InvalidSourceError, match="open_data_connection"):
        list(read_chunks(admin, table))


# --- memory -----------------------------------------------------------------------------------


def test_reading_a_big_table_keeps_memory_flat(admin: pymysql.connections.Connection, mariadb: ThrowawayServer,
                                               database: str) -> None:
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int PRIMARY KEY, a int, b varchar(200), c double, d datetime(6), e text)")
    _run(admin, "SET SESSION max_recursive_iterations = 1000000")
    _run(admin, f"INSERT INTO {name} WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500000) "
                "SELECT n, n * 7 % 100000, REPEAT(MD5(n), 2 + n % 3), n / 7, '2020-01-01' + INTERVAL n SECOND, "
                "REPEAT(CONCAT(MD5(n), '\\t\\\\x'), 1 + n % 2) FROM s")
    script = textwrap.dedent(f"""
        import resource, time, json
        from schemasync_backup.capture.connection import ConnectionSpec
        from schemasync_backup.capture.table_data import open_data_connection, read_chunks
        from schemasync_backup.model.snapshot import Snapshot
        spec = ConnectionSpec(unix_socket={str(mariadb.socket_path)!r})
        dsn = f"mysql://root@localhost/?unix_socket={{spec.unix_socket}}"
        table = Snapshot.capture(dsn, {database!r}).table({name!r})
        connection = open_data_connection(spec, {database!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        size = rows = 0
        for chunk in read_chunks(connection, table, chunk_bytes=2 << 20):
            size += len(chunk.data)
            rows += chunk.rows
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"kib": after - before, "bytes": size, "rows": rows, "seconds": seconds}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    measured = json.loads(done.stdout)
    assert measured["rows"] == 500000
    assert measured["bytes"] > 100e6
    # 100 MB read in 2 MiB chunks: a chunk, the next one filling and PyMySQL's buffers.
    assert measured["kib"] < 40 * 1024, measured
    _run(admin, f"DROP TABLE {name}")


# --- consistent snapshots ----------------------------------------------------------------------


def _count(data: Connection, table: Table) -> int:
    return sum(chunk.rows for chunk in read_chunks(data, table))


@pytest.fixture
def counter(admin: pymysql.connections.Connection, database: str) -> Table:
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int AUTO_INCREMENT PRIMARY KEY, at varchar(10))")
    _run(admin, f"INSERT INTO {name} (at) VALUES ('before'), ('before')")
    return _table(admin, database, name)


def test_a_snapshot_does_not_see_later_rows(admin: pymysql.connections.Connection, data: Connection,
                                            counter: Table) -> None:
    assert start_consistent_snapshot([data]) == Position(None, None, None)  # the sandbox has no binary log
    _run(admin, f"INSERT INTO {counter.name} (at) VALUES ('after')")
    assert _count(data, counter) == 2
    execute(data, "COMMIT")
    assert _count(data, counter) == 3


def test_several_connections_see_the_same_moment(admin: pymysql.connections.Connection, mariadb: ThrowawayServer,
                                                 database: str, counter: Table) -> None:
    spec = ConnectionSpec(unix_socket=str(mariadb.socket_path))
    readers = [open_data_connection(spec, database) for _ in range(3)]
    # A procedure that commits one row after another inside the server, as fast as it can, until
    # told to stop: snapshots started one after the other without the lock see different rows.
    procedure, stop = f"spin_{next(_names)}", f"stop_{next(_names)}"
    _run(admin, f"CREATE TABLE {stop} (id int)")
    _run(admin, f"CREATE PROCEDURE {procedure}() WHILE NOT EXISTS (SELECT 1 FROM {stop}) DO "
                f"INSERT INTO {counter.name} (at) VALUES ('during'); END WHILE")
    writer = _connect(mariadb, database)
    thread = threading.Thread(target=_run, args=(writer, f"CALL {procedure}()"))
    thread.start()
    try:
        while _run(admin, f"SELECT COUNT(*) FROM {counter.name}")[0][0] < 1000:  # the procedure is running
            pass
        for _ in range(20):
            start_consistent_snapshot(readers)
            # The newest row each sees (not a count: the table grows by thousands of rows a second).
            assert len({query(reader, f"SELECT MAX(id) AS id FROM {counter.name}")[0]["id"] for reader in readers}) == 1
            for reader in readers:
                execute(reader, "COMMIT")
    finally:
        for reader in readers:
            reader.close()
        _run(admin, f"INSERT INTO {stop} VALUES (1)")
        thread.join()
        writer.close()


def test_the_snapshot_position_with_a_binary_log() -> None:
    with ThrowawayServer(extra_options=("--log-bin=binlog", "--server-id=7")) as server:
        admin = _connect(server)
        _run(admin, "CREATE DATABASE d")
        _run(admin, "CREATE TABLE d.t (id int PRIMARY KEY)")
        spec = ConnectionSpec(unix_socket=str(server.socket_path))
        readers = [open_data_connection(spec, "d") for _ in range(2)]
        for at, connections in enumerate((readers[:1], readers)):
            _run(admin, f"INSERT INTO d.t VALUES ({at})")
            file, offset = _run(admin, "SHOW MASTER STATUS")[0][:2]
            gtid = _run(admin, "SELECT @@gtid_binlog_pos")[0][0]
            position = start_consistent_snapshot(connections)
            assert position == Position(binlog_file=file, binlog_position=offset, gtid=gtid)
            assert gtid.startswith("0-7-")
            _run(admin, "INSERT INTO d.t VALUES (100)")  # the log moves on, the snapshot stays
            assert _run(admin, "SHOW MASTER STATUS")[0][1] > offset
            for reader in connections:
                assert query(reader, "SHOW SESSION STATUS LIKE 'binlog_snapshot_position'")[0]["Value"] == str(
                    offset).encode()
                assert query(reader, "SELECT COUNT(*) AS n FROM t")[0]["n"] == str(at + 1).encode()
                execute(reader, "COMMIT")
            _run(admin, "DELETE FROM d.t WHERE id = 100")
        for reader in readers:
            reader.close()
        admin.close()


def test_several_connections_need_reload(admin: pymysql.connections.Connection, mariadb: ThrowawayServer,
                                         database: str) -> None:
    _run(admin, "CREATE USER IF NOT EXISTS 'reader'@'localhost'")
    _run(admin, f"GRANT SELECT ON {q(database)}.* TO 'reader'@'localhost'")
    spec = ConnectionSpec(unix_socket=str(mariadb.socket_path), user="reader")
    readers = [open_data_connection(spec, database) for _ in range(2)]
    try:
        with pytest.raises(PrivilegeError, match=r"GRANT RELOAD ON \*\.\* TO 'reader'@'localhost'"):
            start_consistent_snapshot(readers)
        assert start_consistent_snapshot(readers[:1]) == Position(None, None, None)
    finally:
        for reader in readers:
            reader.close()
        _run(admin, "DROP USER 'reader'@'localhost'")


def test_non_transactional_tables_are_named(admin: pymysql.connections.Connection, database: str) -> None:
    names = {engine: f"t{next(_names)}" for engine in ("InnoDB", "MyISAM", "Aria", "MEMORY")}
    for engine, name in names.items():
        _run(admin, f"CREATE TABLE {name} (id int) ENGINE={engine}")
    snapshot = Snapshot.capture(admin, database)
    flagged = non_transactional(table for table in snapshot.tables if table.name in names.values())
    assert sorted(flagged) == sorted(names[engine] for engine in ("MyISAM", "Aria", "MEMORY"))


# --- grouped reads ----------------------------------------------------------------------------


def test_grouped_and_row_by_row_reads_give_the_same_chunks(admin: pymysql.connections.Connection, data: Connection,
                                                          database: str) -> None:
    """A table whose values can all be escaped on the server reads a batch of rows as one value; a
    MEDIUMTEXT column makes it read row by row. The two give byte for byte the same chunks."""
    grouped, one_by_one = f"t{next(_names)}", f"t{next(_names)}"
    for name, body in ((grouped, "text"), (one_by_one, "mediumtext")):
        _run(admin, f"CREATE TABLE {name} (a varchar(20), b int, body {body}, PRIMARY KEY (a, b))")
        _run(admin, "SET SESSION max_recursive_iterations = 100000")
        _run(admin, f"INSERT INTO {name} WITH RECURSIVE s(i) AS "
                    "(SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 30000) SELECT CONCAT('k\\t', i % 97), i, "
                    "IF(i % 11 = 0, NULL, REPEAT(CONCAT(MD5(i), '\\n\\\\'), i % 4)) FROM s")
    for name, expected in ((grouped, True), (one_by_one, False)):
        table = _table(admin, database, name)
        assert table_data._RowSource.of(table, table.columns).grouped is expected
    chunks = {name: _read(data, _table(admin, database, name), 64 << 10) for name in (grouped, one_by_one)}
    assert len(chunks[grouped]) > 10
    assert [c.data for c in chunks[grouped]] == [c.data for c in chunks[one_by_one]]
    bounds = {name: [(c.first_key, c.last_key) for c in chunks[name]] for name in chunks}
    assert bounds[grouped] == bounds[one_by_one]
    _round_trip(admin, data, _table(admin, database, grouped), chunks[grouped], 64 << 10)


def test_grouped_reads_fit_any_max_allowed_packet(admin: pymysql.connections.Connection, mariadb: ThrowawayServer,
                                                  database: str) -> None:
    """Batches longer than max_allowed_packet are read in fewer rows, a row longer than that alone,
    and a chunk longer than that is still hashed on the server."""
    name = f"t{next(_names)}"
    _run(admin, f"CREATE TABLE {name} (id int PRIMARY KEY, body text)")
    _run(admin, f"INSERT INTO {name} SELECT seq, REPEAT(CHAR(65 + seq % 26), 20000) FROM seq_1_to_200")
    # 50,000 tabs escape to 100,000 bytes: a batch of its own under a 128 KiB packet.
    _run(admin, f"INSERT INTO {name} VALUES (1000, REPEAT(X'09', 50000))")
    table = _table(admin, database, name)
    (packet,), = _run(admin, "SELECT @@GLOBAL.max_allowed_packet")
    _run(admin, "SET GLOBAL max_allowed_packet = 131072")
    try:
        small = open_data_connection(ConnectionSpec(unix_socket=str(mariadb.socket_path)), database)
        try:
            chunks = _read(small, table, 1 << 20)
            assert sum(chunk.rows for chunk in chunks) == 201
            assert any(len(chunk.data) > 131072 for chunk in chunks)
            for chunk in chunks:
                assert chunk_digest(small, table, chunk.columns, chunk.first_key, chunk.last_key) == (
                    chunk.rows, chunk.sha256)
        finally:
            small.close()
    finally:
        _run(admin, f"SET GLOBAL max_allowed_packet = {packet}")
    fresh = open_data_connection(ConnectionSpec(unix_socket=str(mariadb.socket_path)), database)
    try:
        assert [c.data for c in _read(fresh, table, 1 << 20)] == [c.data for c in chunks]
    finally:
        fresh.close()
