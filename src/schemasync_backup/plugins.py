"""The plugin manager: built-ins and entry-point plugins (group ``schemasync_backup``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pluggy

from . import codecs, crypto, hookspecs
from .errors import PluginError
from .hookspecs import Cipher, Codec

ENTRY_POINT_GROUP = "schemasync_backup"


def get_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A new plugin manager with the built-ins and, unless told not to, installed plugins."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(codecs, name="schemasync_backup.codecs")
    manager.register(crypto, name="schemasync_backup.crypto")
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


@attrs.frozen
class Registry:
    """What the plugins provide, by name."""

    codecs: Mapping[str, Codec]
    ciphers: Mapping[str, Cipher]
    manager: pluggy.PluginManager

    @classmethod
    def from_manager(cls, manager: pluggy.PluginManager) -> Registry:
        found_codecs = {codec.name: codec for group in manager.hook.schemasync_codecs() for codec in group}
        found_ciphers = {cipher.name: cipher for group in manager.hook.schemasync_ciphers() for cipher in group}
        return cls(codecs=found_codecs, ciphers=found_ciphers, manager=manager)

    def codec(self, name: str) -> Codec:
        try:
            return self.codecs[name]
        except KeyError:
            raise PluginError(
                f"unknown compression codec {name!r}: available are {', '.join(sorted(self.codecs))}"
                + ("; install schemasync_backup[zstd] for zstd" if name == "zstd" else ""),
                subject=name,
            ) from None

    def cipher(self, name: str) -> Cipher:
        try:
            return self.ciphers[name]
        except KeyError:
            raise PluginError(
                f"unknown cipher {name!r}: available are {', '.join(sorted(self.ciphers))}", subject=name
            ) from None

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        self.manager.hook.schemasync_notify(event=event, payload=payload)


def default_registry() -> Registry:
    return Registry.from_manager(get_plugin_manager())
