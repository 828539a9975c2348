"""The answer to one query in the MySQL text protocol, read from its raw packets.

PyMySQL parses a result set through several Python objects per packet (a packet, a field
descriptor and a converter per column, a result): for the 6,600 small result sets SHOW CREATE
gives for 5,000 tables, that was most of the client's time in a capture. This reads the same
packets with a few slices each, skips the column descriptors, and hands back every value as
the text the server sent, decoded as UTF-8.

Only the protocol lives here. connection.py supplies the bytes and turns what goes wrong into
PyMySQL's errors (it is the one module that knows PyMySQL).
"""

from __future__ import annotations

from collections.abc import Callable

from schemasync_backup.errors import ProtocolMismatchError, ServerErrorPacket

#: A packet of this length continues in the next one (a payload of 16 MiB or more).
_MAX_PACKET = 0xFFFFFF
#: First bytes of a packet: OK, end of file (a short packet), error, LOCAL INFILE request.
_OK, _EOF, _ERROR, _LOCAL_INFILE = 0x00, 0xFE, 0xFF, 0xFB
#: A length-encoded value's first byte: NULL, then a 2, 3 or 8-byte length follows.
_NULL, _TWO, _THREE, _EIGHT = 0xFB, 0xFC, 0xFD, 0xFE
#: SERVER_MORE_RESULTS_EXISTS in the status flags of an EOF packet.
_MORE_RESULTS = 0x08

TextRow = tuple[str | None, ...]




def read_text_result(read: Callable[[int], bytes]) -> list[TextRow]:
    """The rows of the answer to one ``COM_QUERY`` (none for an OK packet).

    ``read(n)`` returns the next ``n`` bytes of the connection, or raises. The connection never
    asks for ``CLIENT_DEPRECATE_EOF`` (PyMySQL does not), so the column definitions and the rows
    each end with an EOF packet. Raises :class:`ServerError` for an error packet, which ends the
    answer and leaves the connection usable, and :class:`ProtocolError` for anything unexpected.
    """
    packets = _Packets(read)
    first = packets.next()
    if first[0] == _OK:
        return []
    if first[0] == _ERROR:
        raise ServerErrorPacket(first)
    if first[0] == _LOCAL_INFILE:
        raise ProtocolMismatchError("the server asked for a local file where a result set belongs")
    columns = _length(first, 0)[0]
    if columns is None:
        raise ProtocolMismatchError("a result set without a column count")
    for _ in range(columns):
        packets.next()
    if not _is_eof(packets.next()):
        raise ProtocolMismatchError("no EOF packet after the column definitions")
    rows: list[TextRow] = []
    while True:
        packet = packets.next()
        if _is_eof(packet):
            if packet[3] & _MORE_RESULTS:
                raise ProtocolMismatchError("a query answered with more than one result set")
            return rows
        if packet[0] == _ERROR:  # no row starts with 0xFF: it is no length prefix
            raise ServerErrorPacket(packet)
        rows.append(_row(packet, columns))


def _is_eof(packet: bytes) -> bool:
    # A row may start with 0xFE too (a value of 16 MiB or more), but is then longer than 8 bytes.
    return packet[0] == _EOF and len(packet) < 9


def _row(packet: bytes, columns: int) -> TextRow:
    values: list[str | None] = []
    at, end = 0, len(packet)
    # A row may hold fewer values than the result has columns (PyMySQL stops there too).
    while at < end and len(values) < columns:
        length, at = _length(packet, at)
        if length is None:
            values.append(None)
        else:
            values.append(packet[at : at + length].decode())
            at += length
    if at > end:
        raise ProtocolMismatchError("a row's value runs past the end of its packet")
    return tuple(values)


def _length(packet: bytes, at: int) -> tuple[int | None, int]:
    """A length-encoded integer at ``at`` (None for NULL) and the position after it."""
    first = packet[at]
    if first < _NULL:
        return first, at + 1
    if first == _NULL:
        return None, at + 1
    size = {_TWO: 2, _THREE: 3, _EIGHT: 8}.get(first)
    if size is None:
        raise ProtocolMismatchError(f"no length-encoded integer starts with 0x{first:02X}")
    return int.from_bytes(packet[at + 1 : at + 1 + size], "little"), at + 1 + size


class _Packets:
    """The payloads of one answer's packets, checking their sequence numbers (the answer's start at 1)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._sequence = 1

    def next(self) -> bytes:
        parts = []
        while True:
            header = self._read(4)
            length = header[0] | header[1] << 8 | header[2] << 16
            if header[3] != self._sequence:
                raise ProtocolMismatchError(
                    f"packet sequence number {header[3]}, expected {self._sequence}", lost=header[3] == 0
                )
            self._sequence = (self._sequence + 1) & 0xFF
            parts.append(self._read(length))
            if length < _MAX_PACKET:
                break
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        if not payload:
            raise ProtocolMismatchError("an empty packet where an answer belongs")
        return payload
