"""APNs payload building: pure functions from a notification and a device to the JSON object sent.

Three shapes, chosen per device:

* **full** (Sygnal-compatible): ``aps.alert.loc-key``/``loc-args`` that existing Matrix iOS clients
  localise, ``aps.badge`` = unread + missed calls, top-level ``room_id``/``event_id``, merged over a
  deep copy of the pusher's ``default_payload``. Fixes over Sygnal: a string ``aps.alert`` in
  ``default_payload`` is replaced instead of crashing, ``tweaks.sound`` becomes ``aps.sound``, and
  non-string fields from the homeserver never crash the builder.
* **event_id_only** (the pusher's ``data.format``, or any notification without ``type``): ids and
  counts over a shallow copy of ``default_payload``, exactly as Sygnal sends it.
* **content-free** (``tim_content_free``): TI-M requirement A_22808 lets a push only signal "sync
  now", so no message content, sender, room name or alias ever leaves the gateway. ``mutable-content``
  makes iOS run the app's notification service extension, which fetches and decrypts the event
  itself; the alert is a fixed placeholder (the extension replaces it), or the pusher's own
  ``default_payload.aps.alert``.

Badge-only pokes (no ``event_id``) are ``{"aps":{"badge":N}}`` in every shape. ``None`` means there is
nothing to send (no alert and no badge).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model import Device, Notification, thaw_json

#: Sygnal cuts sender and room display names to this many characters.
MAX_FIELD_LENGTH = 1024
#: Placeholder alert for content-free pushes; the app's extension replaces it with the decrypted event.
TIM_LOC_KEY = "TIM_NEW_EVENT"

_MESSAGE_TYPES = ("m.room.message", "m.room.encrypted")


class BadDefaultPayload(ValueError):
    """The pusher's ``default_payload`` (or its ``aps``) is not a JSON object (Sygnal rejects the key)."""


@dataclass(frozen=True)
class PayloadOptions:
    send_badge_counts: bool = True
    tim_content_free: bool = False


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def default_payload(device: Device) -> dict[str, Any] | None:
    """A deep mutable copy of ``data.default_payload``; raises BadDefaultPayload when it is malformed."""
    if "default_payload" not in device.data:
        return None
    raw = device.data["default_payload"]
    if not isinstance(raw, Mapping):
        raise BadDefaultPayload("default_payload is not an object")
    if "aps" in raw and not isinstance(raw["aps"], Mapping):
        raise BadDefaultPayload("default_payload.aps is not an object")
    return thaw_json(raw)


def badge(n: Notification, opts: PayloadOptions) -> int | None:
    if not opts.send_badge_counts:
        return None
    unread, missed = n.counts.unread, n.counts.missed_calls
    if unread is None and missed is None:
        return None
    return (unread or 0) + (missed or 0)


def is_event_id_only(n: Notification, device: Device) -> bool:
    return n.event_id is not None and (not n.type or device.format == "event_id_only")


def build_payload(n: Notification, device: Device, opts: PayloadOptions) -> dict[str, Any] | None:
    """The APNs JSON object for `device`, or None when there is nothing to send."""
    defaults = default_payload(device)
    if n.event_id is None:
        b = badge(n, opts)
        return None if b is None else {"aps": {"badge": b}}
    if opts.tim_content_free:
        return content_free_payload(n, device, opts, defaults)
    if is_event_id_only(n, device):
        return event_id_only_payload(n, opts, defaults)
    return full_payload(n, device, opts, defaults)


def event_id_only_payload(n: Notification, opts: PayloadOptions,
                          defaults: dict[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = dict(defaults or {})
    if n.room_id is not None:
        payload["room_id"] = n.room_id
    if n.event_id is not None:
        payload["event_id"] = n.event_id
    if opts.send_badge_counts:
        if n.counts.unread is not None:
            payload["unread_count"] = n.counts.unread
        if n.counts.missed_calls is not None:
            payload["missed_calls"] = n.counts.missed_calls
    return payload


def _sound(device: Device) -> str | None:
    return _str(device.tweaks.get("sound"))


def _alert_dict(aps: dict[str, Any]) -> dict[str, Any]:
    """``aps.alert`` as an object we may add keys to; a string (or other) alert is replaced."""
    alert = aps.get("alert")
    if not isinstance(alert, dict):
        alert = aps["alert"] = {}
    return alert


def content_free_payload(n: Notification, device: Device, opts: PayloadOptions,
                         defaults: dict[str, Any] | None) -> dict[str, Any]:
    payload = defaults or {}
    aps = payload.setdefault("aps", {})
    if not aps.get("alert"):
        aps["alert"] = {"loc-key": TIM_LOC_KEY}
    aps["mutable-content"] = 1
    b = badge(n, opts)
    if b is not None:
        aps["badge"] = b
    sound = _sound(device)
    if sound is not None:
        aps["sound"] = sound
    if n.room_id is not None:
        payload["room_id"] = n.room_id
    payload["event_id"] = n.event_id
    return payload


def _message_body(content: Mapping[str, Any] | None) -> tuple[str | None, str | None, bool]:
    """(content_display, action_display, is_image) as Sygnal derives them."""
    if not content or "msgtype" not in content or "body" not in content:
        return None, None, False
    msgtype, body = content.get("msgtype"), _str(content.get("body"))
    if msgtype == "m.emote":
        return None, body, False
    return body, None, msgtype == "m.image"


def loc_key_and_args(n: Notification) -> tuple[str | None, list[str] | None]:
    """Sygnal's loc-key table (see docs/apns.md)."""
    from_display = _str(n.sender_display_name) or _str(n.sender) or " "
    from_display = from_display[:MAX_FIELD_LENGTH]
    room_name = (_str(n.room_name) or "")[:MAX_FIELD_LENGTH]
    room_display = room_name or (_str(n.room_alias) or "")[:MAX_FIELD_LENGTH]
    content = n.content if isinstance(n.content, Mapping) else None

    if n.type in _MESSAGE_TYPES:
        body, action, is_image = _message_body(content)
        if room_display:
            if is_image:
                return "IMAGE_FROM_USER_IN_ROOM", [from_display, body or "", room_display]
            if body:
                return "MSG_FROM_USER_IN_ROOM_WITH_CONTENT", [from_display, room_display, body]
            if action:
                return "ACTION_FROM_USER_IN_ROOM", [room_display, from_display, action]
            return "MSG_FROM_USER_IN_ROOM", [from_display, room_display]
        if is_image:
            return "IMAGE_FROM_USER", [from_display, body or ""]
        if body:
            return "MSG_FROM_USER_WITH_CONTENT", [from_display, body]
        if action:
            return "ACTION_FROM_USER", [from_display, action]
        return "MSG_FROM_USER", [from_display]
    if n.type == "m.call.invite":
        offer = content.get("offer") if content else None
        sdp = _str(offer.get("sdp")) if isinstance(offer, Mapping) else None
        return ("VIDEO_CALL_FROM_USER" if sdp and "m=video" in sdp else "VOICE_CALL_FROM_USER"), [from_display]
    if n.type == "m.room.member":
        membership = n.membership or (content.get("membership") if content else None)
        if n.user_is_target and membership == "invite":
            if room_display:
                return "USER_INVITE_TO_NAMED_ROOM", [from_display, room_display]
            return "USER_INVITE_TO_CHAT", [from_display]
        return None, None
    if n.type:
        return "MSG_FROM_USER", [from_display]
    return None, None


def full_payload(n: Notification, device: Device, opts: PayloadOptions,
                 defaults: dict[str, Any] | None) -> dict[str, Any] | None:
    loc_key, loc_args = loc_key_and_args(n)
    b = badge(n, opts)
    if loc_key is None and b is None:
        return None
    payload = defaults if (defaults is not None and n.type) else {}
    aps = payload.setdefault("aps", {})
    if loc_key is not None:
        alert = _alert_dict(aps)
        alert["loc-key"] = loc_key
        alert["loc-args"] = loc_args
        sound = _sound(device)
        if sound is not None:
            aps["sound"] = sound
    if b is not None:
        aps["badge"] = b
    if loc_key is not None:
        if n.room_id is not None:
            payload["room_id"] = n.room_id
        payload["event_id"] = n.event_id
    return payload
