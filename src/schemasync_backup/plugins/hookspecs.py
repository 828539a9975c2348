"""pluggy hook specifications. Every hook is prefixed ``schemasync_``.

Plugins are discovered through the entry point group ``schemasync_backup``; the built-in
codecs, cipher and notifiers are registered the same way, so nothing is special about them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pluggy

PROJECT = "schemasync_backup"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Codec(Protocol):
    """A compression codec. ``compress`` must be deterministic for a given level."""

    @property
    def name(self) -> str: ...

    def compress(self, data: bytes, level: int | None) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


class Cipher(Protocol):
    """An authenticated cipher: ``decrypt`` must raise on any change to data or associated data."""

    @property
    def name(self) -> str: ...

    @property
    def key_size(self) -> int: ...

    def encrypt(self, key: bytes, plaintext: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, key: bytes, ciphertext: bytes, associated_data: bytes) -> bytes: ...


@hookspec
def schemasync_codecs() -> list[Codec]:  # type: ignore[empty-body]
    """Return compression codecs this plugin provides. Collects: every plugin's list is used."""


@hookspec
def schemasync_ciphers() -> list[Cipher]:  # type: ignore[empty-body]
    """Return ciphers this plugin provides. Collects: every plugin's list is used."""


@hookspec
def schemasync_notify(event: str, payload: Mapping[str, Any]) -> None:
    """Tell a plugin that something happened (``backup.created``, ``backup.failed``, ...).

    Collects: every implementation is called; payloads never hold keys or passwords. An
    implementation that raises is logged as a warning naming its plugin and never fails (or
    reports as failed) the operation it is told about; the other implementations still run.
    """
