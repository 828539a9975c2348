"""The built-in compression codecs: none, gzip, lz4 (frame) and zstd (extra ``zstd``)."""

from __future__ import annotations

import gzip
import zlib

import attrs
import lz4.frame

from schemasync_backup.plugins.hookspecs import Codec, hookimpl


@attrs.frozen
class NoCompression:
    name: str = "none"

    def compress(self, data: bytes, level: int | None) -> bytes:
        return data

    def decompress(self, data: bytes) -> bytes:
        return data


@attrs.frozen
class GzipCodec:
    name: str = "gzip"

    def compress(self, data: bytes, level: int | None) -> bytes:
        # mtime=0 keeps the output a function of the input alone.
        return gzip.compress(data, compresslevel=6 if level is None else level, mtime=0)

    def decompress(self, data: bytes) -> bytes:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"gzip: {exc}") from None


@attrs.frozen
class Lz4Codec:
    name: str = "lz4"

    def compress(self, data: bytes, level: int | None) -> bytes:
        return bytes(lz4.frame.compress(data, compression_level=0 if level is None else level, store_size=True))

    def decompress(self, data: bytes) -> bytes:
        try:
            return bytes(lz4.frame.decompress(data))
        except RuntimeError as exc:
            raise ValueError(f"lz4: {exc}") from None


@attrs.frozen
class ZstdCodec:
    name: str = "zstd"

    def compress(self, data: bytes, level: int | None) -> bytes:
        import zstandard

        return bytes(zstandard.ZstdCompressor(level=3 if level is None else level).compress(data))

    def decompress(self, data: bytes) -> bytes:
        import zstandard

        try:
            return bytes(zstandard.ZstdDecompressor().decompress(data))
        except zstandard.ZstdError as exc:
            raise ValueError(f"zstd: {exc}") from None


def _zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


@hookimpl
def schemasync_codecs() -> list[Codec]:
    codecs: list[Codec] = [NoCompression(), GzipCodec(), Lz4Codec()]
    if _zstd_available():
        codecs.append(ZstdCodec())
    return codecs
