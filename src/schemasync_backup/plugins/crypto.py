"""AES-256-GCM and encryption keys. A key's bytes never appear in a repr, message or log.

A key is known by its id, ``k-`` plus 16 hex digits of a domain-separated sha256 of the key:
stable, safe to print and store, useless for recovering the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemasync_backup.errors import EncryptionKeyError
from schemasync_backup.plugins.hookspecs import Cipher, hookimpl

DEFAULT_KEY_ENV_VAR = "BACKUP_ENCRYPTION_KEY"
KEY_SIZE = 32
#: The cipher new objects are encrypted with unless another is chosen.
DEFAULT_CIPHER = "aes-256-gcm"
_NONCE_SIZE = 12


def key_id_of(material: bytes) -> str:
    return "k-" + hashlib.sha256(b"schemasync_backup key id\0" + material).hexdigest()[:16]


def manifest_mac(key: EncryptionKey, body: bytes) -> str:
    """HMAC-SHA256 of a manifest body under a key derived from ``key`` (never the AES key itself)."""
    derived = hmac.new(key.material, b"schemasync_backup manifest seal v2", hashlib.sha256).digest()
    return hmac.new(derived, body, hashlib.sha256).hexdigest()


def _decode_key(value: str | bytes, origin: str) -> bytes:
    if isinstance(value, bytes) and len(value) == KEY_SIZE:
        return value
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    decoded: bytes | None = None
    if len(text) == 2 * KEY_SIZE:
        try:
            decoded = bytes.fromhex(text)
        except ValueError:
            decoded = None
    if decoded is None:
        try:
            decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            decoded = None
    if decoded is None or len(decoded) != KEY_SIZE:
        raise EncryptionKeyError(
            f"invalid encryption key from {origin}: expected 32 bytes, as 64 hex digits or base64 "
            f"(got {len(text)} characters); generate one with: python -c "
            "\"import secrets; print(secrets.token_hex(32))\"",
            subject=origin,
        )
    return decoded


@attrs.frozen(repr=False)
class EncryptionKey:
    """A 32-byte AES key and its public id."""

    material: bytes = attrs.field(repr=False)
    key_id: str = attrs.field()

    @key_id.default
    def _derive_id(self) -> str:
        return key_id_of(self.material)

    @classmethod
    def from_value(cls, value: str | bytes, *, origin: str = "the given value") -> EncryptionKey:
        """32 raw bytes, or 64 hex digits, or base64 of 32 bytes."""
        return cls(_decode_key(value, origin))

    @classmethod
    def from_env(cls, name: str = DEFAULT_KEY_ENV_VAR) -> EncryptionKey:
        value = os.environ.get(name)
        if not value:
            raise EncryptionKeyError(
                f"encryption key missing: environment variable {name} is not set; "
                "set it to 64 hex digits or base64 of 32 bytes",
                subject=name,
            )
        return cls.from_value(value, origin=f"environment variable {name}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> EncryptionKey:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise EncryptionKeyError(
                f"cannot read encryption key file {path}: {exc.strerror}", subject=str(path)
            ) from exc
        return cls.from_value(data if len(data) == KEY_SIZE else data.strip(), origin=f"key file {path}")

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls(os.urandom(KEY_SIZE))

    def __repr__(self) -> str:
        return f"EncryptionKey(key_id={self.key_id!r})"


@attrs.frozen
class Keyring:
    """Several keys at once: the first writes, all read (so rotation never strands a backup)."""

    keys: tuple[EncryptionKey, ...] = ()

    @property
    def writer(self) -> EncryptionKey | None:
        return self.keys[0] if self.keys else None

    @property
    def key_ids(self) -> list[str]:
        return [key.key_id for key in self.keys]

    def get(self, key_id: str) -> EncryptionKey:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        configured = ", ".join(self.key_ids) or "none"
        raise EncryptionKeyError(
            f"encryption key {key_id} is needed to read this backup but is not configured "
            f"(configured: {configured}); add that key, e.g. in {DEFAULT_KEY_ENV_VAR}",
            subject=key_id,
        )


@attrs.frozen
class AesGcm:
    """AES-256-GCM with a random 96-bit nonce per message, stored in front of the ciphertext."""

    name: str = DEFAULT_CIPHER
    key_size: int = KEY_SIZE

    def encrypt(self, key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)

    def decrypt(self, key: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return AESGCM(key).decrypt(ciphertext[:_NONCE_SIZE], ciphertext[_NONCE_SIZE:], associated_data)
        except InvalidTag:
            raise ValueError("authentication failed") from None


@hookimpl
def schemasync_ciphers() -> list[Cipher]:
    return [AesGcm()]
