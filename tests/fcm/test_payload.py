"""Byte-level tests of the FCM v1 message builder (pure functions)."""

from __future__ import annotations

import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import Counts, Device, Notification, frozen_json
from gateway.pushkins.fcm_payload import (
    DATA_LIMIT_BYTES, MessageOptions, build_data, build_message, data_size, truncate_utf8,
)

NO_OPTIONS = MessageOptions(fcm_options=frozen_json({}))


def notif(**kw: object) -> Notification:
    base: dict = dict(devices=(), event_id="$ev:hs", room_id="!room:hs", type="m.room.message",
                      sender="@alice:hs", sender_display_name="Alice", room_name="Room", room_alias="#r:hs",
                      content=frozen_json({"msgtype": "m.text", "body": "hello"}), counts=Counts(unread=2))
    base.update(kw)
    return Notification(**base)  # type: ignore[arg-type]


def device(**kw: object) -> Device:
    return Device(app_id="org.example.fcm", pushkey="tok-1", **kw)  # type: ignore[arg-type]


def body(n: Notification, *, dev: Device | None = None, content_free: bool = False, badges: bool = True,
         options: MessageOptions = NO_OPTIONS) -> bytes:
    dev = dev or device()
    payload = build_data(n, dev, content_free=content_free, send_badge_counts=badges)
    assert payload is not None
    return build_message(dev.pushkey, payload.data, options)


def test_sygnal_compatible_data_message_bytes() -> None:
    assert body(notif()) == (
        b'{"message":{"android":{"priority":"high"},"data":{'
        b'"content":"{\\"msgtype\\":\\"m.text\\",\\"body\\":\\"hello\\"}",'
        b'"content_body":"hello","content_msgtype":"m.text","event_id":"$ev:hs","prio":"high",'
        b'"room_alias":"#r:hs","room_id":"!room:hs","room_name":"Room","sender":"@alice:hs",'
        b'"sender_display_name":"Alice","type":"m.room.message","unread":"2"},"token":"tok-1"},'
        b'"validate_only":false}')


def test_non_string_content_travels_in_content_json() -> None:
    content = {"body": "edited", "m.new_content": {"body": "x"}, "m.relates_to": {"rel_type": "m.replace"}, "n": 1}
    data = build_data(notif(content=frozen_json(content)), device(), content_free=False, send_badge_counts=True)
    assert data is not None and data.dropped is None
    assert json.loads(data.data["content"]) == content
    assert data.data["content_body"] == "edited"
    assert not any(k.startswith("content_m.") for k in data.data)


def test_badge_reset_zero_is_sent_and_badge_only_has_counts() -> None:
    n = Notification(devices=(), counts=Counts(unread=0, missed_calls=0))
    assert body(n) == (b'{"message":{"android":{"priority":"high"},"data":{"missed_calls":"0","prio":"high",'
                       b'"unread":"0"},"token":"tok-1"},"validate_only":false}')


def test_send_badge_counts_false_omits_counts() -> None:
    data = build_data(notif(), device(), content_free=False, send_badge_counts=False)
    assert data is not None and "unread" not in data.data and "missed_calls" not in data.data


def test_low_prio_is_normal() -> None:
    b = body(notif(prio="low", content=None))
    assert b'"android":{"priority":"normal"}' in b and b'"prio":"normal"' in b


def test_tim_mode_sends_only_ids_and_counts() -> None:
    assert body(notif(), content_free=True) == (
        b'{"message":{"android":{"priority":"high"},"data":{"event_id":"$ev:hs","prio":"high",'
        b'"room_id":"!room:hs","unread":"2"},"token":"tok-1"},"validate_only":false}')


def test_long_strings_cut_to_1024_bytes_on_code_point_boundary() -> None:
    name = "é" * 600  # 1200 bytes
    data = build_data(notif(room_name=name, content=frozen_json({"body": "😀" * 300})), device(),
                      content_free=False, send_badge_counts=True)
    assert data is not None
    room = data.data["room_name"].encode()
    assert len(room) <= 1024 and room.endswith("…".encode()) and data.data["room_name"].startswith("é" * 500)
    assert len(data.data["content_body"].encode()) <= 1024 and data.data["content_body"].endswith("…")
    assert truncate_utf8("😀" * 300).encode()[:-3].decode().count("😀") == (1024 - 3) // 4


def test_truncate_boundaries() -> None:
    assert truncate_utf8("a" * 1024) == "a" * 1024
    cut = truncate_utf8("a" * 1025)
    assert cut == "a" * 1021 + "…" and len(cut.encode()) == 1024
    assert truncate_utf8("ab€cd", limit=6) == "ab…"  # 3 bytes kept would split "€": it goes whole


def megolm(ciphertext_len: int) -> dict:
    return {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "A" * ciphertext_len,
            "device_id": "DEV", "sender_key": "k" * 43, "session_id": "s" * 43}


def test_ciphertext_never_truncated_content_json_dropped_first() -> None:
    content = megolm(3000)
    data = build_data(notif(type="m.room.encrypted", content=frozen_json(content)), device(),
                      content_free=False, send_badge_counts=True)
    assert data is not None and data.dropped == "content_json"
    assert data.data["content_ciphertext"] == content["ciphertext"] and "content" not in data.data
    assert data_size(data.data) <= DATA_LIMIT_BYTES


def test_ciphertext_too_large_drops_content_keeps_ids_and_counts() -> None:
    data = build_data(notif(type="m.room.encrypted", content=frozen_json(megolm(5000))), device(),
                      content_free=False, send_badge_counts=True)
    assert data is not None and data.dropped == "content"
    assert not any(k.startswith("content") for k in data.data)
    assert data.data["event_id"] == "$ev:hs" and data.data["room_id"] == "!room:hs" and data.data["unread"] == "2"


def test_size_rule_counts_keys_and_values_exactly() -> None:
    fixed = build_data(notif(content=frozen_json({"ciphertext": ""})), device(), content_free=False,
                       send_badge_counts=True)
    assert fixed is not None
    room = len("content_ciphertext") + 2 * len("content") + len('{"ciphertext":""}')
    spare = DATA_LIMIT_BYTES - data_size(fixed.data)
    fits = build_data(notif(content=frozen_json({"ciphertext": "B" * (spare // 2)})), device(),
                      content_free=False, send_badge_counts=True)
    assert fits is not None and fits.dropped is None and room > 0
    over = build_data(notif(content=frozen_json({"ciphertext": "B" * (spare // 2 + 1)})), device(),
                      content_free=False, send_badge_counts=True)
    assert over is not None and over.dropped == "content_json"


def test_nothing_fits_returns_none() -> None:
    assert build_data(notif(event_id="$" + "x" * 5000), device(), content_free=True, send_badge_counts=True) is None


def test_default_payload_merged_and_stringified() -> None:
    dev = device(data=frozen_json({"default_payload": {"app": "x", "n": 3, "nested": {"a": True}}}))
    data = build_data(notif(content=None), dev, content_free=False, send_badge_counts=True)
    assert data is not None
    assert data.data["app"] == "x" and data.data["n"] == "3" and data.data["nested"] == '{"a":true}'


def test_fcm_options_deep_merged_into_a_copy() -> None:
    shared = frozen_json({"android": {"notification": {"channel_id": "c"}, "priority": "ignored"},
                          "apns": {"headers": {"apns-priority": "10"}}, "fcm_options": {"analytics_label": "l"}})
    opts = MessageOptions(fcm_options=shared, ttl_s=60, collapse_key="ck")
    first = json.loads(body(notif(content=None), options=opts))["message"]
    second = json.loads(body(notif(content=None, prio="low"), options=opts))["message"]
    assert first["android"] == {"notification": {"channel_id": "c"}, "priority": "high", "ttl": "60s",
                                "collapse_key": "ck"}
    assert second["android"]["priority"] == "normal"
    assert first["apns"] == {"headers": {"apns-priority": "10"}} and first["fcm_options"] == {"analytics_label": "l"}
    assert shared["android"]["priority"] == "ignored" and "ttl" not in shared["android"]


def test_empty_descriptive_fields_are_left_out() -> None:
    from gateway.model import Counts, Device, Notification
    from gateway.pushkins.fcm_payload import build_data

    n = Notification(devices=(Device("a", "tok"),), sender="", room_name="", counts=Counts(unread=0))
    payload = build_data(n, n.devices[0], content_free=False, send_badge_counts=True)
    assert payload is not None
    assert "sender" not in payload.data and "room_name" not in payload.data and payload.data["unread"] == "0"


@given(st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                       st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1, max_size=8),
       st.text(alphabet="abcdef0123456789:_-", min_size=1, max_size=64))
def test_message_bytes_equal_pyfcms_own_encoding(data: dict, token: str) -> None:  # type: ignore[type-arg]
    """The orjson encoder must produce exactly what pyfcm's json.dumps settings produce."""
    from pyfcm.baseapi import BaseAPI

    options = MessageOptions(fcm_options=frozen_json({"android": {"notification": {"tag": "ü"}}}), ttl_s=60,
                             collapse_key="room")
    body = build_message(token, data, options)
    pyfcm = BaseAPI.__new__(BaseAPI)
    pyfcm.json_encoder = None
    reference = pyfcm.json_dumps(orjson.loads(body))
    assert body == reference
    assert orjson.loads(body)["message"]["data"] == data
