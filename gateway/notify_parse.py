"""Strict parsing of a notify body into a `Notification`, with Matrix error codes that name the field.

Every field the spec types is checked (Sygnal checks few and then crashes in pushkins). Unknown keys are
ignored, as the spec allows homeservers to send more. Parsing never raises anything but `BadNotify`.

The free-form objects (content, data, tweaks) are limited to `MAX_DEPTH` levels of nesting: orjson
accepts up to 1024, but freezing and the pushkins' payload builders recurse (Python's stack gives out
near 500 levels, orjson.dumps refuses beyond 254), so deeper input would fail after it was accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from gateway.model import EMPTY, Counts, Device, Notification

_INT64 = 2**63
#: Deepest nesting accepted in content/data/tweaks (the object itself is level 1).
MAX_DEPTH = 64
_STR_FIELDS = ("event_id", "room_id", "type", "sender", "sender_display_name", "room_name", "room_alias",
               "membership")


class BadNotify(Exception):
    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message


def _bad(message: str) -> BadNotify:
    return BadNotify("M_BAD_JSON", message)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), "value")


def _int(value: Any, field: str, *, lo: int = 0, hi: int = _INT64 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"'{field}' must be an integer, got {_type(value)}")
    if not lo <= value <= hi:
        raise _bad(f"'{field}' is out of range")
    return value


def _obj(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"'{field}' must be an object, got {_type(value)}")
    return value


def _free_form(value: Any, field: str) -> Any:
    """The frozen object `value`, checked to be an object nested at most `MAX_DEPTH` levels. One pass
    that freezes and checks; it recurses at most `MAX_DEPTH` levels before it refuses."""
    if not _obj(value, field):
        return EMPTY
    return _freeze(value, 1, field)


def _freeze(value: Any, depth: int, field: str) -> Any:
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise _bad(f"'{field}' is nested deeper than {MAX_DEPTH} levels")
        return MappingProxyType({k: _freeze(v, depth + 1, field) for k, v in value.items()})
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            raise _bad(f"'{field}' is nested deeper than {MAX_DEPTH} levels")
        return tuple([_freeze(v, depth + 1, field) for v in value])
    return value


def parse_body(body: bytes) -> Notification:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadNotify("M_NOT_JSON", "Request body is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise _bad(f"Request body must be a JSON object, got {_type(doc)}")
    if "notification" not in doc:
        raise _bad("'notification' is required")
    n = _obj(doc["notification"], "notification")
    return parse_notification(n)


def parse_notification(n: Mapping[str, Any]) -> Notification:
    fields: dict[str, Any] = {}
    for key in _STR_FIELDS:
        value = n.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _bad(f"'notification.{key}' must be a string, got {_type(value)}")
        fields[key] = value
    if (uit := n.get("user_is_target")) is not None:
        if not isinstance(uit, bool):
            raise _bad(f"'notification.user_is_target' must be a boolean, got {_type(uit)}")
        fields["user_is_target"] = uit
    if (prio := n.get("prio")) is not None:
        if prio not in ("high", "low"):
            raise _bad("'notification.prio' must be \"high\" or \"low\"")
        fields["prio"] = prio
    if (content := n.get("content")) is not None:
        fields["content"] = _free_form(content, "notification.content")
    if (counts := n.get("counts")) is not None:
        c = _obj(counts, "notification.counts")
        unread, missed = c.get("unread"), c.get("missed_calls")
        fields["counts"] = Counts(
            unread=None if unread is None else _int(unread, "notification.counts.unread", hi=2**31 - 1),
            missed_calls=None if missed is None else _int(missed, "notification.counts.missed_calls",
                                                          hi=2**31 - 1),
        )
    if "devices" not in n:
        raise _bad("'notification.devices' is required")
    devices = n["devices"]
    if not isinstance(devices, list):
        raise _bad(f"'notification.devices' must be an array, got {_type(devices)}")
    if not devices:
        raise _bad("'notification.devices' must not be empty")
    return Notification(devices=tuple(_device(d, i) for i, d in enumerate(devices)), **fields)


def _device(d: Any, i: int) -> Device:
    where = f"notification.devices[{i}]"
    d = _obj(d, where)
    app_id, pushkey = d.get("app_id"), d.get("pushkey")
    if not isinstance(app_id, str) or not app_id:
        raise _bad(f"'{where}.app_id' must be a non-empty string")
    if not isinstance(pushkey, str) or not pushkey:
        raise _bad(f"'{where}.pushkey' must be a non-empty string")
    ts = d.get("pushkey_ts")
    if ts is not None:
        ts = _int(ts, f"{where}.pushkey_ts")
    data = d.get("data")
    data = EMPTY if data is None else _free_form(data, f"{where}.data")
    if (fmt := data.get("format")) is not None and not isinstance(fmt, str):
        raise _bad(f"'{where}.data.format' must be a string, got {_type(fmt)}")
    tweaks = d.get("tweaks")
    tweaks = EMPTY if tweaks is None else _free_form(tweaks, f"{where}.tweaks")
    if (sound := tweaks.get("sound")) is not None and not isinstance(sound, str):
        raise _bad(f"'{where}.tweaks.sound' must be a string, got {_type(sound)}")
    return Device(app_id=app_id, pushkey=pushkey, pushkey_ts=ts, data=data, tweaks=tweaks)
