"""The stored object format: a plain header, then independently compressed and sealed frames.

    object  = MAGIC, u32 header length, header (JSON), frame*
    frame   = u8 flags, u32 payload length, payload
    payload = seal(compress(plaintext[i*frame_size : (i+1)*frame_size]))

Each frame stands alone, so damage costs only the frames it touches and reading needs memory
for one frame, not the object. A frame is sealed with the cipher's key and associated data
``<address>:<frame index>:<final flag>``: an object moved to another name, a frame moved to
another place, or a truncated object all fail authentication. docs/storage-format.md is the
normative description.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import IO, BinaryIO, Protocol

import attrs

from schemasync_backup.errors import (
    BackupFormatError,
    EncryptionKeyError,
    IntegrityError,
    PluginError,
    SchemaSyncBackupError,
    UnknownObjectCodecError,
)
from schemasync_backup.plugins.crypto import DEFAULT_CIPHER, EncryptionKey, Keyring
from schemasync_backup.plugins.hookspecs import Cipher, Codec
from schemasync_backup.plugins.manager import Registry

MAGIC = b"SSBOBJ1\n"
FINAL = 0x01
_LENGTH = struct.Struct(">I")
_FRAME_HEAD = struct.Struct(">BI")
DEFAULT_FRAME_SIZE = 4 * 1024 * 1024
#: The largest frame payload a reader accepts: a damaged length field must not make it allocate gigabytes.
MAX_PAYLOAD = 256 * 1024 * 1024
#: How much a streaming reader of stored bytes takes at a time.
READ_CHUNK = 1024 * 1024
#: An object's name below ``objects/``: ``<aa>/<address>.<key id or plain>``, optionally followed by
#: ``.s-<sha256 of the stored bytes>`` (an object re-encoded by optimize). Group 1 is the address.
OBJECT_NAME = re.compile(r"^[0-9a-f]{2}/([0-9a-f]{64})\.(?:plain|k-[0-9a-f]{16})(?:\.s-[0-9a-f]{64})?$")


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@attrs.frozen
class FrameRecord:
    """One frame as the manifest records it: enough to find damage without the key."""

    stored_sha256: str
    stored_size: int
    plaintext_size: int


@attrs.frozen
class ObjectRecord:
    """An object as the manifest records it."""

    address: str  # sha256 of the plaintext: the object's identity
    size: int  # plaintext bytes
    stored_size: int
    stored_sha256: str
    codec: str
    cipher: str | None
    key_id: str | None
    frames: tuple[FrameRecord, ...]
    #: The name also carries ``stored_sha256`` (``.s-<hex>``): optimize re-encoded the object
    #: beside the one create wrote, never over it. Stored in a manifest only when true.
    stored_suffix: bool = False

    @property
    def path(self) -> str:
        """Where the object lives, relative to the store's ``objects/`` folder."""
        return object_path(self.address, self.key_id, self.stored_sha256 if self.stored_suffix else None)


def object_path(address: str, key_id: str | None, stored_sha256: str | None = None) -> str:
    # The key id is part of the name so a key rotation writes new objects beside the old
    # ones and never rewrites bytes another manifest still vouches for; the stored checksum
    # suffix does the same for a re-encoding of the same plaintext with the same key.
    suffix = f".s-{stored_sha256}" if stored_sha256 else ""
    return f"{address[:2]}/{address}.{key_id or 'plain'}{suffix}"


@attrs.frozen
class Encoding:
    """How new objects are written."""

    codec: str = "lz4"
    level: int | None = None
    #: Objects smaller than this are stored uncompressed.
    threshold: int = 256
    cipher: str = DEFAULT_CIPHER
    key: EncryptionKey | None = None
    frame_size: int = DEFAULT_FRAME_SIZE


def _associated_data(address: str, index: int, final: bool) -> bytes:
    return f"{address}:{index}:{int(final)}".encode("ascii")


def encode(
    plaintext: bytes | Iterable[bytes], address: str, size: int, encoding: Encoding, registry: Registry, sink: Writable,
    written: Callable[[FrameRecord], None] | None = None,
) -> ObjectRecord:
    """Write one object to ``sink`` and return its record. ``size`` is the plaintext length;
    ``written`` is told of each frame once it is in ``sink``."""
    codec_name = encoding.codec if size >= encoding.threshold else "none"
    codec = registry.codec(codec_name)
    cipher = registry.cipher(encoding.cipher) if encoding.key is not None else None
    header = json.dumps(
        {
            "address": address,
            "codec": codec_name,
            "cipher": cipher.name if cipher else None,
            "key_id": encoding.key.key_id if encoding.key else None,
            "frame_size": encoding.frame_size,
        },
        sort_keys=True,
    ).encode()
    whole = hashlib.sha256()

    def emit(data: bytes) -> None:
        whole.update(data)
        sink.write(data)

    emit(MAGIC + _LENGTH.pack(len(header)) + header)
    frames: list[FrameRecord] = []
    chunks = _frames_of(plaintext, encoding.frame_size)
    pending = next(chunks, b"")
    index = 0
    while True:
        following = next(chunks, None)
        final = following is None
        with _plugin_call(registry, "codec", codec_name, "compress"):
            payload = codec.compress(pending, encoding.level)
        if cipher is not None and encoding.key is not None:
            with _plugin_call(registry, "cipher", cipher.name, "encrypt"):
                payload = cipher.encrypt(encoding.key.material, payload, _associated_data(address, index, final))
        stored = _FRAME_HEAD.pack(FINAL if final else 0, len(payload)) + payload
        emit(stored)
        frames.append(FrameRecord(hashlib.sha256(stored).hexdigest(), len(stored), len(pending)))
        if written is not None:
            written(frames[-1])
        if following is None:
            break
        pending, index = following, index + 1
    return ObjectRecord(
        address=address,
        size=size,
        stored_size=sum(frame.stored_size for frame in frames) + len(MAGIC) + _LENGTH.size + len(header),
        stored_sha256=whole.hexdigest(),
        codec=codec_name,
        cipher=cipher.name if cipher else None,
        key_id=encoding.key.key_id if encoding.key else None,
        frames=tuple(frames),
    )


@contextlib.contextmanager
def _plugin_call(registry: Registry, kind: str, name: str, action: str, *, expected: type[Exception] | None = None
                 ) -> Iterator[None]:
    """Turn an exception a codec or cipher plugin should never raise into a PluginError naming it.

    ``expected`` is the exception type the plugin contract allows (ValueError: damaged input),
    which the caller handles itself.
    """
    try:
        yield
    except SchemaSyncBackupError:
        raise
    except Exception as exc:
        if expected is not None and isinstance(exc, expected):
            raise
        plugin = registry.provider(kind, name)
        raise PluginError(
            f"{kind} {name!r} (plugin {plugin}) failed to {action}: {type(exc).__name__}: {exc}; this is a bug in "
            "that plugin: update or remove it, or configure another "
            + ("compression codec" if kind == "codec" else "cipher"),
            subject=plugin,
        ) from exc


def frame_count(size: int, frame_size: int) -> int:
    """How many frames :func:`encode` writes for ``size`` bytes of plaintext (an empty object has one)."""
    return max(1, -(-size // frame_size))


def _frames_of(plaintext: bytes | Iterable[bytes], frame_size: int) -> Iterator[bytes]:
    if isinstance(plaintext, bytes):
        for start in range(0, len(plaintext), frame_size):
            yield plaintext[start : start + frame_size]
        return
    buffer = bytearray()
    for chunk in plaintext:
        buffer += chunk
        while len(buffer) >= frame_size:
            yield bytes(buffer[:frame_size])
            del buffer[:frame_size]
    if buffer:
        yield bytes(buffer)


@attrs.frozen
class RawFrame:
    index: int
    final: bool
    payload: bytes
    stored: bytes


@attrs.frozen
class ObjectHeader:
    address: str
    codec: str
    cipher: str | None
    key_id: str | None
    frame_size: int
    size: int  # bytes the header occupies, magic included


def read_header(stream: Readable, where: str) -> ObjectHeader:
    magic = stream.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupFormatError(f"{where}: not a schemasync_backup object (bad magic)", subject=where)
    (length,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size, where))
    if length > 65536:
        raise BackupFormatError(f"{where}: damaged object header (length {length})", subject=where)
    try:
        fields = json.loads(_read_exact(stream, length, where))
        return ObjectHeader(
            address=fields["address"], codec=fields["codec"], cipher=fields["cipher"], key_id=fields["key_id"],
            frame_size=int(fields["frame_size"]), size=len(MAGIC) + _LENGTH.size + length,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupFormatError(f"{where}: damaged object header ({exc})", subject=where) from None


def iter_raw_frames(stream: Readable, where: str) -> Iterator[RawFrame]:
    """The frames as stored, without decoding; stops at the final frame or raises on damage."""
    index = 0
    while True:
        head = stream.read(_FRAME_HEAD.size)
        if not head:
            raise BackupFormatError(f"{where}: truncated object (no final frame after {index} frames)", subject=where)
        if len(head) < _FRAME_HEAD.size:
            raise BackupFormatError(f"{where}: truncated object in frame {index}", subject=where)
        flags, length = _FRAME_HEAD.unpack(head)
        if flags & ~FINAL or length > MAX_PAYLOAD:
            raise BackupFormatError(f"{where}: damaged frame {index} header", subject=where)
        payload = _read_exact(stream, length, where)
        yield RawFrame(index, bool(flags & FINAL), payload, head + payload)
        if flags & FINAL:
            return
        index += 1


def _header_codec(header: ObjectHeader, registry: Registry, where: str) -> Codec:
    if header.codec not in registry.codecs:
        raise UnknownObjectCodecError(
            f"{where}: the object header names compression codec {header.codec!r}, which no installed plugin "
            f"provides (available: {', '.join(sorted(registry.codecs))}): the header is damaged, or the plugin "
            "that wrote the object is not installed", subject=where)
    return registry.codecs[header.codec]


def _header_cipher(name: str, registry: Registry, where: str) -> Cipher:
    if name not in registry.ciphers:
        raise UnknownObjectCodecError(
            f"{where}: the object header names cipher {name!r}, which no installed plugin provides (available: "
            f"{', '.join(sorted(registry.ciphers))}): the header is damaged, or the plugin that wrote the object "
            "is not installed", subject=where)
    return registry.ciphers[name]


def decode_frame(header: ObjectHeader, frame: RawFrame, keyring: Keyring, registry: Registry, where: str) -> bytes:
    """One frame's plaintext, authenticated. A header naming a codec or cipher no plugin provides
    raises :class:`UnknownObjectCodecError` (damage to whoever only asks "is this reusable")."""
    payload = frame.payload
    codec = _header_codec(header, registry, where)
    if header.cipher is not None:
        if header.key_id is None:
            raise BackupFormatError(f"{where}: encrypted object without a key id", subject=where)
        cipher = _header_cipher(header.cipher, registry, where)
        key = keyring.get(header.key_id)
        try:
            with _plugin_call(registry, "cipher", header.cipher, "decrypt", expected=ValueError):
                payload = cipher.decrypt(key.material, payload,
                                         _associated_data(header.address, frame.index, frame.final))
        except ValueError:
            raise IntegrityError(
                f"{where}: frame {frame.index} failed authentication: the bytes were changed, the object was "
                f"swapped or moved, or key {header.key_id} is not the key it was written with",
                subject=where,
            ) from None
    try:
        with _plugin_call(registry, "codec", header.codec, "decompress", expected=ValueError):
            return codec.decompress(payload)
    except ValueError as exc:
        raise IntegrityError(f"{where}: frame {frame.index} does not decompress ({exc})", subject=where) from None


def check_header(header: ObjectHeader, record: ObjectRecord | None, registry: Registry, where: str) -> None:
    """Before reading an object a manifest names: its header must agree with the record.

    The record is authoritative: a header naming another codec, cipher or key than the manifest
    recorded is damage (:class:`BackupFormatError`). A header that agrees but names a codec or
    cipher no plugin provides means a plugin is missing here (:class:`PluginError`): the object
    cannot be read on this machine, which says nothing about its bytes.
    """
    if record is not None:
        for field, stored, recorded in (("codec", header.codec, record.codec), ("cipher", header.cipher, record.cipher),
                                        ("key id", header.key_id, record.key_id)):
            if stored != recorded:
                raise BackupFormatError(
                    f"{where}: damaged object header: it names {field} {stored!r}, the manifest records {recorded!r}",
                    subject=where)
    registry.codec(header.codec)
    if header.cipher is not None:
        registry.cipher(header.cipher)


def decode(stream: Readable, address: str, keyring: Keyring, registry: Registry, where: str, *,
           record: ObjectRecord | None = None) -> Iterator[bytes]:
    """The plaintext of the object that must have ``address``, frame by frame, each checked.

    The expected address comes from the manifest, never from the object itself, so an object
    put in another's place fails authentication (or, unencrypted, the final checksum). With the
    manifest's ``record``, a header that disagrees with it is damage (:func:`check_header`);
    a codec or cipher no plugin provides raises :class:`PluginError`, never damage.
    """
    header = attrs.evolve(read_header(stream, where), address=address)
    check_header(header, record, registry, where)
    digest = hashlib.sha256()
    for frame in iter_raw_frames(stream, where):
        data = decode_frame(header, frame, keyring, registry, where)
        digest.update(data)
        yield data
    if digest.hexdigest() != address:
        raise IntegrityError(
            f"{where}: checksum mismatch (expected: {address}, got: {digest.hexdigest()})", subject=where
        )


def recorded_frame(index: int, final: bool, stored: bytes) -> RawFrame:
    """A frame whose stored bytes proved equal to the manifest's record: its head is the one written."""
    return RawFrame(index, final, stored[_FRAME_HEAD.size :], stored)


@attrs.frozen
class ObjectScan:
    """What one pass over an object's stored bytes found."""

    stored_sha256: str
    stored_size: int
    #: The frames whose stored bytes differ from the record (located by recorded sizes).
    damaged_frames: frozenset[int]
    #: Why an intact-looking object does not decode: the first frame that failed, or the header;
    #: None when every frame decoded (or nothing was decoded).
    problem: IntegrityError | BackupFormatError | EncryptionKeyError | None = None
    plaintext_sha256: str | None = None
    plaintext_size: int = 0

    def stored_intact(self, record: ObjectRecord) -> bool:
        return self.stored_sha256 == record.stored_sha256 and self.stored_size == record.stored_size


def scan_object(
    stream: Readable, record: ObjectRecord, where: str, *, keyring: Keyring | None = None,
    registry: Registry | None = None, on_frame: Callable[[int, bytes | None], None] | None = None,
) -> ObjectScan:
    """Check an object against its manifest record in one pass, holding one frame at a time.

    Each frame's stored bytes are hashed against the record, which locates damage without the
    key. With a keyring and registry, every frame that proved intact is also decoded (while no
    frame before it failed) and ``on_frame`` gets its index and plaintext; without, it gets the
    index and None. Decoding failures are returned in ``problem``, never raised.
    """
    whole = hashlib.sha256()
    count = 0

    def take(size: int) -> bytes:
        nonlocal count
        data = bytes(stream.read(size)) if size > 0 else b""
        whole.update(data)
        count += len(data)
        return data

    head = take(record.stored_size - sum(frame.stored_size for frame in record.frames))
    decoding = keyring is not None and registry is not None
    problem: IntegrityError | BackupFormatError | EncryptionKeyError | None = None
    header: ObjectHeader | None = None
    if decoding and registry is not None:
        try:
            header = attrs.evolve(read_header(io.BytesIO(head), where), address=record.address)
            check_header(header, record, registry, where)
        except BackupFormatError as exc:
            problem = exc
    plain = hashlib.sha256()
    plain_size = 0
    damaged = set()
    last = len(record.frames) - 1
    for index, frame in enumerate(record.frames):
        stored = take(frame.stored_size)
        if hashlib.sha256(stored).hexdigest() != frame.stored_sha256:
            damaged.add(index)
            continue
        data = None
        if header is not None and keyring is not None and registry is not None and problem is None and not damaged:
            try:
                data = decode_frame(header, recorded_frame(index, index == last, stored), keyring, registry, where)
            except (IntegrityError, BackupFormatError, EncryptionKeyError) as exc:
                problem = exc
            else:
                plain.update(data)
                plain_size += len(data)
        if on_frame is not None:
            on_frame(index, data)
    # Bytes past the recorded end (an appended tail) count too: the object is not the one recorded.
    while take(READ_CHUNK) and count <= record.stored_size:
        pass
    return ObjectScan(whole.hexdigest(), count, frozenset(damaged), problem,
                      plain.hexdigest() if decoding else None, plain_size)


def _read_exact(stream: Readable, count: int, where: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise BackupFormatError(f"{where}: truncated object", subject=where)
    return bytes(data)


class CountingReader:
    """A read-through wrapper that hashes and counts the bytes that pass."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = bytes(self._stream.read(size))
        self.digest.update(data)
        self.count += len(data)
        return data


def verified_record(
    stream: BinaryIO, address: str, size: int, keyring: Keyring | None, registry: Registry | None, where: str
) -> ObjectRecord:
    """The manifest record of a stored object, read in one bounded-memory pass.

    With a keyring and registry every frame is also decoded and the plaintext must hash to
    ``address`` (IntegrityError otherwise); without, only the framing is checked.
    """
    counting = CountingReader(stream)
    # The address comes from the caller (the manifest), never from the object itself.
    header = attrs.evolve(read_header(counting, where), address=address)
    plain = hashlib.sha256()
    frames = []
    for frame in iter_raw_frames(counting, where):
        if keyring is not None and registry is not None:
            plain.update(decode_frame(header, frame, keyring, registry, where))
        frames.append(FrameRecord(hashlib.sha256(frame.stored).hexdigest(), len(frame.stored),
                                          max(0, min(header.frame_size, size - frame.index * header.frame_size))))
    if keyring is not None and plain.hexdigest() != address:
        raise IntegrityError(f"{where}: checksum mismatch (expected: {address}, got: {plain.hexdigest()})",
                             subject=where)
    return ObjectRecord(address=address, size=size, stored_size=counting.count,
                        stored_sha256=counting.digest.hexdigest(), codec=header.codec, cipher=header.cipher,
                        key_id=header.key_id, frames=tuple(frames))


def record_from_bytes(data: bytes, address: str, size: int, where: str) -> ObjectRecord:
    """The manifest record for an object's stored bytes (plaintext size known from elsewhere)."""
    return verified_record(io.BytesIO(data), address, size, None, None, where)


def check_counted(counting: CountingReader, record: ObjectRecord, where: str) -> None:
    actual = counting.digest.hexdigest()
    if counting.count != record.stored_size or actual != record.stored_sha256:
        raise IntegrityError(
            f"{where}: backup validation failed: checksum mismatch (expected: {record.stored_sha256}, got: {actual})",
            subject=where,
        )


def drain_checked(stream: Readable, record: ObjectRecord, where: str, sink: IO[bytes] | None = None) -> None:
    """Read ``stream`` to its end (into ``sink``), never past the recorded size, and check it."""
    counting = CountingReader(stream)
    while chunk := counting.read(READ_CHUNK):
        if counting.count > record.stored_size:
            break
        if sink is not None:
            sink.write(chunk)
    check_counted(counting, record, where)
