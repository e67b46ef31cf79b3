"""The embedded ``log`` pushkin: logs a redacted summary of each notification instead of sending it.

Useful to point a homeserver at the gateway before provider credentials exist, and as the default in
`config.sample.yaml`. With ``debug: true`` the last notifications are kept in memory for
``GET /_debug/last`` (ids and counts only; content never leaves the process log-free).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Any

from gateway.config.reader import Section
from gateway.model import Device, Notification, Outcome
from gateway.pushkins.base import Pushkin

log = logging.getLogger("gateway.pushkins.log")


@dataclass(frozen=True)
class LogOptions:
    #: How many recent notifications to keep for /_debug/last (only served with debug: true).
    keep_last: int = 100


def _cut(value: str | None, limit: int = 128) -> str | None:
    """Ids are attacker-sized strings; one log line must stay one readable line."""
    return value if value is None or len(value) <= limit else value[:limit] + "…"


class LogPushkin(Pushkin):
    @classmethod
    def parse_config(cls, section: Section) -> LogOptions:
        return LogOptions(keep_last=section.int("keep_last", LogOptions.keep_last, min=0, max=100_000))

    def __init__(self, app: Any, ctx: Any) -> None:
        super().__init__(app, ctx)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=app.options.keep_last)

    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        counts = notification.counts
        log.info(
            "push app_id=%s pushkey=%s event_id=%s room_id=%s type=%s prio=%s unread=%s missed_calls=%s",
            _cut(device.app_id), device.key_hash, _cut(notification.event_id), _cut(notification.room_id),
            _cut(notification.type), notification.prio, counts.unread, counts.missed_calls,
        )
        self.recent.append({
            "app_id": device.app_id,
            "pushkey_hash": device.key_hash,
            "event_id": notification.event_id,
            "room_id": notification.room_id,
            "type": notification.type,
            "prio": notification.prio,
            "unread": counts.unread,
            "missed_calls": counts.missed_calls,
            "format": device.format,
        })
        return Outcome.delivered()
