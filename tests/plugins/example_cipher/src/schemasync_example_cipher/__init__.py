"""A third-party cipher, as a plugin package would ship it: ``chacha20-poly1305``.

An authenticated cipher with 32-byte keys (the size every encryption key has), a random 96-bit
nonce in front of each ciphertext, and ``ValueError`` for anything that does not authenticate:
the contract of ``schemasync_backup.plugins.hookspecs.Cipher``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from schemasync_backup.plugins.hookspecs import Cipher, hookimpl

_NONCE_SIZE = 12


class ChaChaPoly:
    name = "chacha20-poly1305"
    key_size = 32

    def encrypt(self, key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated_data)

    def decrypt(self, key: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return ChaCha20Poly1305(key).decrypt(ciphertext[:_NONCE_SIZE], ciphertext[_NONCE_SIZE:], associated_data)
        except InvalidTag:
            raise ValueError("authentication failed") from None


@hookimpl
def schemasync_ciphers() -> list[Cipher]:
    return [ChaChaPoly()]
