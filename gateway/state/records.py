"""What the state store holds, and how it is keyed and encoded.

Keys are truncated SHA-256 digests of (app_id, pushkey[, event_id]): the de-duplication and rejection
records never contain a pushkey, so a dump of the store (or of Redis) does not reveal tokens. Only retry
queue entries hold a pushkey, because the retry must send to it; they hold one device and nothing the
push does not need, and are deleted when the push succeeds, is rejected, or expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.model import Counts, Device, Notification, Outcome, Status, frozen_json, thaw_json

#: De-duplication record values (one character; a pending claim is "p" + the owner's id).
PENDING = "p"
SETTLED = {Status.DELIVERED: "d", Status.REJECTED: "r", Status.FAILED: "f", Status.QUEUED: "q"}
EXPIRED = "x"
_REPORTED = {"d": Outcome.delivered(), "r": Outcome.rejected("remembered"), "f": Outcome.failed("duplicate"),
             "q": Outcome(Status.QUEUED, "duplicate"), EXPIRED: Outcome.failed("retry_expired")}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# The field lengths lead the hashed text, so no choice of field contents (NULs included) makes two
# tuples collide.
def dedup_key(app_id: str, pushkey: str, event_id: str) -> str:
    return _hash(f"e{len(app_id)}:{len(pushkey)}:{len(event_id)}:{app_id}{pushkey}{event_id}")


def rejection_key(app_id: str, pushkey: str) -> str:
    return _hash(f"r{len(app_id)}:{len(pushkey)}:{app_id}{pushkey}")


def is_pending(value: str) -> bool:
    return value.startswith(PENDING)


def reported(value: str) -> Outcome:
    """The outcome a duplicate is answered with, from a settled record value."""
    return _REPORTED.get(value, Outcome.failed("duplicate"))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A provider said the pushkey is dead at `at_ms`; `pushkey_ts` is the registration time it was sent with."""

    at_ms: int
    pushkey_ts: int | None

    def encode(self) -> str:
        return f"{self.at_ms}:{'' if self.pushkey_ts is None else self.pushkey_ts}"

    @classmethod
    def decode(cls, value: str | bytes) -> Rejection:
        if isinstance(value, bytes):
            value = value.decode()
        at, _, ts = value.partition(":")
        return cls(int(at), int(ts) if ts else None)

    def superseded_by(self, pushkey_ts: int | None) -> bool:
        """A newer registration of the same pushkey (larger pushkey_ts) means the device re-registered it."""
        if pushkey_ts is None:
            return False
        return pushkey_ts > (self.pushkey_ts if self.pushkey_ts is not None else self.at_ms)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One device's pending push. `id` is the de-duplication key (or a random id for badge-only pokes)."""

    id: str
    app_id: str
    payload: Any  # plain JSON: the minimised notification, see `minimise`
    created: float
    attempts: int = 0

    def encode(self) -> bytes:
        return orjson.dumps({"i": self.id, "a": self.app_id, "p": self.payload, "c": self.created,
                             "n": self.attempts})

    @classmethod
    def decode(cls, raw: bytes | str) -> QueueEntry:
        d = orjson.loads(raw)
        return cls(id=d["i"], app_id=d["a"], payload=d["p"], created=d["c"], attempts=d["n"])

    def with_attempts(self, attempts: int) -> QueueEntry:
        return QueueEntry(self.id, self.app_id, self.payload, self.created, attempts)


#: The optional notification fields a queue entry keeps (besides prio, content, counts and the device).
_FIELDS = ("event_id", "room_id", "type", "sender", "sender_display_name", "room_name", "room_alias",
           "user_is_target")
_CONTENT_FREE_DROP = ("sender", "sender_display_name", "room_name", "room_alias", "content")


def minimise(notification: Notification, device: Device, content_free: bool) -> dict[str, Any]:
    """Only what a retry of this one device needs: no other devices, and for content-free (TI-M) apps none
    of the fields the pushkin is not allowed to send anyway."""
    n: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(notification, name)
        if value is not None and not (content_free and name in _CONTENT_FREE_DROP):
            n[name] = value
    n["prio"] = notification.prio
    if notification.content is not None and not content_free:
        n["content"] = thaw_json(notification.content)
    counts = {k: v for k, v in (("unread", notification.counts.unread),
                                ("missed_calls", notification.counts.missed_calls)) if v is not None}
    if counts:
        n["counts"] = counts
    dev: dict[str, Any] = {"app_id": device.app_id, "pushkey": device.pushkey}
    if device.pushkey_ts is not None:
        dev["pushkey_ts"] = device.pushkey_ts
    if device.data:
        dev["data"] = thaw_json(device.data)
    if device.tweaks:
        dev["tweaks"] = thaw_json(device.tweaks)
    n["device"] = dev
    return n


def restore(payload: dict[str, Any]) -> tuple[Notification, Device]:
    """Rebuild the frozen value objects from `minimise` output."""
    d = payload["device"]
    device = Device(app_id=d["app_id"], pushkey=d["pushkey"], pushkey_ts=d.get("pushkey_ts"),
                    data=frozen_json(d.get("data", {})), tweaks=frozen_json(d.get("tweaks", {})))
    counts = payload.get("counts", {})
    fields = {k: payload[k] for k in _FIELDS if k in payload}
    notification = Notification(
        devices=(device,), prio=payload.get("prio", "high"),
        content=frozen_json(payload["content"]) if "content" in payload else None,
        counts=Counts(unread=counts.get("unread"), missed_calls=counts.get("missed_calls")), **fields)
    return notification, device
