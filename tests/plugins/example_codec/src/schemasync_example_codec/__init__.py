"""A third-party codec, as a plugin package would ship it: ``xor-zlib``.

zlib with every byte XORed by a constant: real compression plus a visible transformation,
so a test can tell the plugin ran.
"""

from __future__ import annotations

import zlib

from schemasync_backup.plugins.hookspecs import Codec, hookimpl

_MASK = 0x5A


class XorZlibCodec:
    name = "xor-zlib"

    def compress(self, data: bytes, level: int | None) -> bytes:
        packed = zlib.compress(data, 6 if level is None else level)
        return bytes(byte ^ _MASK for byte in packed)

    def decompress(self, data: bytes) -> bytes:
        try:
            return zlib.decompress(bytes(byte ^ _MASK for byte in data))
        except zlib.error as exc:
            raise ValueError(f"xor-zlib: {exc}") from None


@hookimpl
def schemasync_codecs() -> list[Codec]:
    return [XorZlibCodec()]
