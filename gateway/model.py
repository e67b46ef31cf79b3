"""Immutable value objects that cross the seam between the HTTP layer and the pushkins.

The notify handler validates the homeserver's JSON once and hands pushkins these frozen objects, so a
pushkin never sees a wrongly typed field and can never mutate what another device's dispatch reads.
`content`, `data` and `tweaks` stay JSON mappings (their shape is open) but are wrapped read-only.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def frozen_json(value: Any) -> Any:
    """Deep read-only view of parsed JSON (dicts become mappingproxies, lists become tuples)."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen_json(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(frozen_json(v) for v in value)
    return value


def thaw_json(value: Any) -> Any:
    """A mutable deep copy of a `frozen_json` value, for pushkins that build payloads from it."""
    if isinstance(value, Mapping):
        return {k: thaw_json(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [thaw_json(v) for v in value]
    return value


EMPTY: Mapping[str, Any] = MappingProxyType({})


def pushkey_hash(pushkey: str) -> str:
    """Short stable fingerprint used wherever a pushkey would otherwise be logged."""
    return hashlib.sha256(pushkey.encode("utf-8", "surrogatepass")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Counts:
    unread: int | None = None
    missed_calls: int | None = None


@dataclass(frozen=True, slots=True)
class Device:
    app_id: str
    pushkey: str
    pushkey_ts: int | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    tweaks: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def key_hash(self) -> str:
        return pushkey_hash(self.pushkey)

    @property
    def format(self) -> str | None:
        fmt = self.data.get("format")
        return fmt if isinstance(fmt, str) else None


@dataclass(frozen=True, slots=True)
class Notification:
    devices: tuple[Device, ...]
    event_id: str | None = None
    room_id: str | None = None
    type: str | None = None
    sender: str | None = None
    sender_display_name: str | None = None
    room_name: str | None = None
    room_alias: str | None = None
    #: The membership of an m.room.member event (Synapse sends it at top level).
    membership: str | None = None
    user_is_target: bool | None = None
    prio: str = "high"
    content: Mapping[str, Any] | None = None
    counts: Counts = field(default_factory=Counts)

    @property
    def is_badge_only(self) -> bool:
        """A counts-only poke (no event): idempotent, never de-duplicated by event_id."""
        return self.event_id is None


class Status(enum.Enum):
    DELIVERED = "delivered"
    #: The provider says the pushkey is dead; it goes into the response's ``rejected`` list.
    REJECTED = "rejected"
    #: Will not succeed by retrying (bad request, auth/config problem); logged and counted, not retried.
    FAILED = "failed"
    #: May succeed later (timeouts, 5xx, 429, connection errors); retried, never silently dropped.
    TEMPORARY = "temporary"
    #: Handed to the durable retry queue; the homeserver is told 200 and must not retry.
    QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one device. `reason` is a short, fixed vocabulary string (safe as a metric label)."""

    status: Status
    reason: str = ""
    #: Seconds the provider asked us to wait before retrying (Retry-After), if any.
    retry_after: float | None = None

    @classmethod
    def delivered(cls) -> Outcome:
        return _DELIVERED

    @classmethod
    def rejected(cls, reason: str) -> Outcome:
        return cls(Status.REJECTED, reason)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(Status.FAILED, reason)

    @classmethod
    def temporary(cls, reason: str, retry_after: float | None = None) -> Outcome:
        return cls(Status.TEMPORARY, reason, retry_after)


_DELIVERED = Outcome(Status.DELIVERED, "ok")
