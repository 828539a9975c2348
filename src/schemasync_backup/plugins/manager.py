"""The plugin manager: built-ins and entry-point plugins (group ``schemasync_backup``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import attrs
import pluggy

from schemasync_backup.errors import PluginError
from schemasync_backup.plugins import codecs, crypto, hookspecs
from schemasync_backup.plugins.crypto import KEY_SIZE
from schemasync_backup.plugins.hookspecs import Cipher, Codec

ENTRY_POINT_GROUP = "schemasync_backup"
logger = logging.getLogger(__name__)


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
    #: Which plugin provides each codec and cipher, by name ("codec xor-zlib" -> plugin name), for messages.
    providers: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_manager(cls, manager: pluggy.PluginManager) -> Registry:
        found_codecs: dict[str, Codec] = {}
        found_ciphers: dict[str, Cipher] = {}
        providers: dict[str, str] = {}
        # One implementation at a time, in pluggy's call order (the same precedence as collecting
        # the hook's results: on a name clash the first registered plugin wins), so each codec and
        # cipher is known by the plugin that provides it.
        for kind, hook, found in (("codec", manager.hook.schemasync_codecs, found_codecs),
                                  ("cipher", manager.hook.schemasync_ciphers, found_ciphers)):
            for impl in reversed(hook.get_hookimpls()):
                if impl.hookwrapper or impl.wrapper:
                    continue
                provided = cast("list[Any] | None", impl.function()) or []
                for item in provided:
                    found[item.name] = item
                    providers[f"{kind} {item.name}"] = impl.plugin_name
        return cls(codecs=found_codecs, ciphers=found_ciphers, manager=manager, providers=providers)

    def provider(self, kind: str, name: str) -> str:
        """The plugin that provides codec or cipher ``name`` (``kind`` is "codec" or "cipher")."""
        return self.providers.get(f"{kind} {name}", "an unknown plugin")

    def codec(self, name: str) -> Codec:
        try:
            return self.codecs[name]
        except KeyError:
            hint = "install schemasync_backup[zstd]" if name == "zstd" else "install a plugin that provides it"
            raise PluginError(
                f"unknown compression codec {name!r}: available: {', '.join(sorted(self.codecs))}; {hint}",
                subject=name,
            ) from None

    def cipher(self, name: str) -> Cipher:
        """The cipher ``name``; refused when it takes keys of another size than an EncryptionKey holds."""
        try:
            cipher = self.ciphers[name]
        except KeyError:
            raise PluginError(
                f"unknown cipher {name!r}: available: {', '.join(sorted(self.ciphers))}; install a plugin that "
                "provides it", subject=name,
            ) from None
        if cipher.key_size != KEY_SIZE:
            raise PluginError(
                f"cipher {name!r} (from {self.provider('cipher', name)}) takes {cipher.key_size}-byte keys, but "
                f"encryption keys are {KEY_SIZE} bytes: it cannot be used", subject=name,
            )
        return cipher

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        """Tell every notifier plugin about ``event``. Never raises for a plugin that fails.

        Each implementation is called on its own, so one that raises neither stops the others nor
        fails (or, after a commit, falsely "fails") the operation it reports on: it is logged as a
        warning naming the plugin.
        """
        arguments = {"event": event, "payload": payload}
        for impl in reversed(self.manager.hook.schemasync_notify.get_hookimpls()):  # pluggy's call order
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                impl.function(*[arguments[name] for name in impl.argnames])
            except Exception as exc:  # any failure of a plugin is the plugin's, not the operation's
                logger.warning("plugin %s failed in schemasync_notify (%s): %s: %s", impl.plugin_name, event,
                               type(exc).__name__, exc)


def default_registry() -> Registry:
    return Registry.from_manager(get_plugin_manager())
