"""A webhook notifier: a pluggy plugin that POSTs each chosen event as JSON.

Registered by :func:`install` on a store's plugin manager from the ``backup.notifications``
config section. A notification that cannot be delivered is logged as a warning and never fails
the operation it reports on. The document::

    {"event": "backup.failed", "text": "mysql-schema-sync: backup.failed on host1: ...",
     "host": "host1", "at": "2026-11-25T14:00:00+00:00", "payload": {...}}

``text`` makes a Slack incoming webhook show a readable line.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from schemasync_backup.cli.config import NotificationsConfig
from schemasync_backup.cli.logsetup import LOGGER_NAME, TO_CONSOLE
from schemasync_backup.plugins.hookspecs import hookimpl
from schemasync_backup.plugins.manager import Registry

logger = logging.getLogger(LOGGER_NAME)
PLUGIN_NAME = "schemasync_backup.webhook"


def _identity(text: str) -> str:
    return text


@attrs.frozen
class WebhookNotifier:
    url: str = attrs.field(repr=False)
    events: tuple[str, ...]
    timeout: float = 10.0
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    #: Removes secrets from the text before it leaves the machine.
    scrub: Callable[[str], str] = _identity

    @hookimpl
    def schemasync_notify(self, event: str, payload: Mapping[str, Any]) -> None:
        if event not in self.events:
            return
        host = socket.gethostname()
        summary = payload.get("error") or payload.get("message") or payload.get("id") or payload.get("backup_id") or ""
        document = {
            "event": event,
            "text": f"mysql-schema-sync: {event} on {host}" + (f": {summary}" if summary else ""),
            "host": host,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "payload": dict(payload),
        }
        body = self.scrub(json.dumps(document, default=str)).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.warning("notification %s not delivered: %s", event, self.scrub(str(exc)), extra=TO_CONSOLE)
        else:
            logger.debug("notification %s delivered", event)


def install(registry: Registry, settings: NotificationsConfig, scrub: Callable[[str], str] = _identity) -> bool:
    """Register the webhook notifier on ``registry`` when notifications are enabled; True if it was."""
    if not settings.enabled or not settings.webhook_url:
        return False
    manager = registry.manager
    if manager.get_plugin(PLUGIN_NAME) is not None:
        manager.unregister(name=PLUGIN_NAME)
    manager.register(WebhookNotifier(settings.webhook_url, settings.events, settings.timeout, dict(settings.headers),
                                     scrub), name=PLUGIN_NAME)
    return True
