"""FCM HTTP v1 message building: pure functions from a notification to the exact request body bytes.

The data message keeps Sygnal's keys so existing Matrix Android apps keep working, and fixes its losses:
a badge reset (``unread: 0``) is sent, the full event content travels JSON-encoded under ``content``
when it fits, and E2EE ``ciphertext`` is never cut (a truncated ciphertext cannot be decrypted; when the
message would exceed FCM's 4 KiB data limit the content is dropped and the app fetches the event by id).

The outer ``{"message": ..., "validate_only": false}`` document is built by pyfcm's ``parse_payload``
(compact, key-sorted, UTF-8) so the wire format follows the library; pyfcm's HTTP client is not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pyfcm.baseapi import BaseAPI

from gateway.model import Device, Notification, thaw_json

#: FCM's limit on a data message: the UTF-8 bytes of all keys and values together.
DATA_LIMIT_BYTES = 4096
#: Plain strings longer than this (UTF-8 bytes, ellipsis included) are cut, as Sygnal does.
MAX_FIELD_BYTES = 1024
ELLIPSIS = "…"

#: Content fields that are useless when cut; the whole content is dropped instead.
_NEVER_TRUNCATE = frozenset({"ciphertext"})
#: Fields that carry names or event details; omitted in TI-M mode and dropped last when over the limit.
_DESCRIPTIVE = ("type", "sender", "sender_display_name", "room_name", "room_alias", "membership")
#: Keys of the config's ``fcm_options`` that map onto FCM v1 Message fields we do not build ourselves.
FCM_OPTION_KEYS = ("android", "apns", "webpush", "fcm_options")


@dataclass(frozen=True, slots=True)
class DataPayload:
    """The ``message.data`` map, plus what had to be left out to stay under the size limit."""

    data: Mapping[str, str]
    #: None when everything fitted; else a fixed-vocabulary reason (metric label) for what was dropped.
    dropped: str | None = None


@dataclass(frozen=True, slots=True)
class MessageOptions:
    """Per-app message settings (already validated by the pushkin's config parser)."""

    #: Sygnal's ``fcm_options`` as frozen JSON: deep-merged into a fresh copy for every message.
    fcm_options: Mapping[str, Any]
    ttl_s: int | None = None
    collapse_key: str | None = None


def truncate_utf8(value: str, limit: int = MAX_FIELD_BYTES) -> str:
    """`value` cut to at most `limit` UTF-8 bytes including a trailing "…", never splitting a code point."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return value
    keep = limit - len(ELLIPSIS.encode("utf-8"))
    return raw[:keep].decode("utf-8", "ignore") + ELLIPSIS


def data_size(data: Mapping[str, str]) -> int:
    """Size as FCM counts it against the 4 KiB limit: keys and values, UTF-8 bytes."""
    return sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               for k, v in data.items())


def _json(value: Any) -> str:
    return orjson.dumps(thaw_json(value)).decode()


def _as_str(value: Any) -> str:
    """FCM v1 data values must be strings; non-strings are JSON-encoded rather than sent as-is (a 400)."""
    return value if isinstance(value, str) else _json(value)


def build_data(notification: Notification, device: Device, *, content_free: bool,
               send_badge_counts: bool) -> DataPayload | None:
    """The data map for one device, or None if even the minimal ids-and-counts form exceeds the limit."""
    base: dict[str, str] = {}
    default_payload = device.data.get("default_payload")
    if isinstance(default_payload, Mapping):
        for key, value in default_payload.items():
            base[str(key)] = _as_str(value)

    content = notification.content
    descriptive: dict[str, str] = {}
    if not content_free:
        membership = notification.membership or (content.get("membership") if content is not None else None)
        for key, value in (("type", notification.type), ("sender", notification.sender),
                           ("sender_display_name", notification.sender_display_name),
                           ("room_name", notification.room_name), ("room_alias", notification.room_alias),
                           ("membership", membership)):
            if isinstance(value, str) and value:  # Synapse sends "sender": "" on badge-only updates
                descriptive[key] = truncate_utf8(value)

    ids: dict[str, str] = {}
    if notification.event_id is not None:
        ids["event_id"] = notification.event_id
    if notification.room_id is not None:
        ids["room_id"] = notification.room_id
    ids["prio"] = "normal" if notification.prio == "low" else "high"
    if send_badge_counts:
        # 0 is a real value (badge reset) and is sent, unlike Sygnal which drops falsy counts.
        if notification.counts.unread is not None:
            ids["unread"] = str(notification.counts.unread)
        if notification.counts.missed_calls is not None:
            ids["missed_calls"] = str(notification.counts.missed_calls)

    flat: dict[str, str] = {}
    full: dict[str, str] = {}
    if content is not None and not content_free:
        for key, value in content.items():
            if isinstance(value, str):
                flat[f"content_{key}"] = value if key in _NEVER_TRUNCATE else truncate_utf8(value)
        full["content"] = _json(content)

    # Most complete first; each step leaves out what is least needed to fetch and show the event.
    attempts = (
        (None, (base, descriptive, flat, full, ids)),
        ("content_json", (base, descriptive, flat, ids)),
        ("content", (base, descriptive, ids)),
        ("names", (base, ids)),
    )
    for dropped, parts in attempts:
        data: dict[str, str] = {}
        for part in parts:
            data.update(part)
        if data_size(data) <= DATA_LIMIT_BYTES:
            return DataPayload(data, dropped)
    return None


class _PayloadBuilder(BaseAPI):
    """pyfcm's v1 message builder, without the blocking `requests` client and credential state."""

    def __init__(self) -> None:  # deliberately skips BaseAPI.__init__: no credentials, no session
        self.json_encoder = None

    def json_dumps(self, data: Any) -> bytes:
        """The same bytes as pyfcm's (sorted keys, compact, UTF-8) from orjson, at a fraction of the CPU."""
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


_BUILDER = _PayloadBuilder()


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` merged into `base` (mutated and returned); nested mappings merge, other values replace."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = thaw_json(value)
    return base


def build_message(token: str, data: Mapping[str, str], options: MessageOptions) -> bytes:
    """The request body for ``messages:send``: a data message for one registration token."""
    message: dict[str, Any] = thaw_json(options.fcm_options)  # a fresh deep copy, never the shared config
    android: dict[str, Any] = {"priority": data.get("prio", "high")}
    if options.ttl_s is not None:
        android["ttl"] = f"{options.ttl_s}s"
    if options.collapse_key is not None:
        android["collapse_key"] = options.collapse_key
    deep_merge(message.setdefault("android", {}), android)
    return _BUILDER.parse_payload(
        fcm_token=token,
        data_payload=dict(data),
        android_config=message["android"],
        apns_config=message.get("apns"),
        webpush_config=message.get("webpush"),
        fcm_options=message.get("fcm_options"),
    )
