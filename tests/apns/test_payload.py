"""Payload builders, byte for byte (pure functions; the wire path is covered by the end-to-end tests)."""

from __future__ import annotations

import pytest

from gateway.model import Counts, Device, Notification, frozen_json
from gateway.pushkins.apns_payload import BadDefaultPayload, PayloadOptions, build_payload
from gateway.pushkins.apns_truncate import dumps

FULL = PayloadOptions()
TIM = PayloadOptions(tim_content_free=True)


def dev(data=None, tweaks=None, pushkey="spqr") -> Device:
    return Device(app_id="com.example.ios", pushkey=pushkey, pushkey_ts=0, data=frozen_json(data or {}),
                  tweaks=frozen_json(tweaks or {}))


def notif(**kw) -> Notification:
    base = dict(devices=(), event_id="$ev", room_id="!room:hs", type="m.room.message", sender="@a:hs",
                sender_display_name="Alice", room_name="Lunch", content=frozen_json({"msgtype": "m.text",
                                                                                     "body": "hi"}),
                counts=Counts(unread=2, missed_calls=1))
    base.update(kw)
    if isinstance(base.get("content"), dict):
        base["content"] = frozen_json(base["content"])
    return Notification(**base)


def body(n, d=None, opts=FULL) -> bytes | None:
    p = build_payload(n, d or dev(), opts)
    return None if p is None else dumps(p)


def test_message_in_room_with_content():
    assert body(notif()) == (b'{"aps":{"alert":{"loc-key":"MSG_FROM_USER_IN_ROOM_WITH_CONTENT",'
                             b'"loc-args":["Alice","Lunch","hi"]},"badge":3},"room_id":"!room:hs","event_id":"$ev"}')


@pytest.mark.parametrize("content,room,key,args", [
    ({"msgtype": "m.image", "body": "cat.jpg"}, "Lunch", "IMAGE_FROM_USER_IN_ROOM", ["Alice", "cat.jpg", "Lunch"]),
    ({"msgtype": "m.notice", "body": "n"}, "Lunch", "MSG_FROM_USER_IN_ROOM_WITH_CONTENT", ["Alice", "Lunch", "n"]),
    ({"msgtype": "m.emote", "body": "waves"}, "Lunch", "ACTION_FROM_USER_IN_ROOM", ["Lunch", "Alice", "waves"]),
    ({"algorithm": "m.megolm.v1", "ciphertext": "x"}, "Lunch", "MSG_FROM_USER_IN_ROOM", ["Alice", "Lunch"]),
    ({"msgtype": "m.image", "body": "cat.jpg"}, None, "IMAGE_FROM_USER", ["Alice", "cat.jpg"]),
    ({"msgtype": "m.text", "body": "hi"}, None, "MSG_FROM_USER_WITH_CONTENT", ["Alice", "hi"]),
    ({"msgtype": "m.emote", "body": "waves"}, None, "ACTION_FROM_USER", ["Alice", "waves"]),
    (None, None, "MSG_FROM_USER", ["Alice"]),
    ({"msgtype": "m.text", "body": 42}, None, "MSG_FROM_USER", ["Alice"]),  # hostile: non-string body
])
def test_message_table(content, room, key, args):
    n = notif(content=content, room_name=room, type="m.room.encrypted" if content and "ciphertext" in content
              else "m.room.message")
    expected = {"aps": {"alert": {"loc-key": key, "loc-args": args}, "badge": 3}, "room_id": "!room:hs",
                "event_id": "$ev"}
    assert body(n) == dumps(expected)


def test_room_alias_used_when_no_name_and_sender_fallbacks():
    n = notif(room_name=None, room_alias="#lunch:hs", sender_display_name=None)
    assert body(n) == dumps({"aps": {"alert": {"loc-key": "MSG_FROM_USER_IN_ROOM_WITH_CONTENT",
                                               "loc-args": ["@a:hs", "#lunch:hs", "hi"]}, "badge": 3},
                             "room_id": "!room:hs", "event_id": "$ev"})
    n = notif(room_name=None, sender_display_name=None, sender=None, content=None, counts=Counts())
    assert body(n) == b'{"aps":{"alert":{"loc-key":"MSG_FROM_USER","loc-args":[" "]}},"room_id":"!room:hs","event_id":"$ev"}'


def test_display_names_cut_to_1024_characters():
    n = notif(sender_display_name="é" * 2000, room_name="r" * 3000, content={"msgtype": "m.text", "body": "b"})
    args = build_payload(n, dev(), FULL)["aps"]["alert"]["loc-args"]
    assert [len(a) for a in args] == [1024, 1024, 1]


@pytest.mark.parametrize("sdp,key", [("v=0\r\nm=audio 1", "VOICE_CALL_FROM_USER"),
                                     ("v=0\r\nm=video 1", "VIDEO_CALL_FROM_USER"), (None, "VOICE_CALL_FROM_USER")])
def test_call_invite(sdp, key):
    content = {"offer": {"sdp": sdp}} if sdp else {}
    n = notif(type="m.call.invite", content=content, counts=Counts())
    assert body(n) == dumps({"aps": {"alert": {"loc-key": key, "loc-args": ["Alice"]}}, "room_id": "!room:hs",
                             "event_id": "$ev"})


def test_invites():
    n = notif(type="m.room.member", user_is_target=True, content={"membership": "invite"}, counts=Counts())
    assert body(n) == dumps({"aps": {"alert": {"loc-key": "USER_INVITE_TO_NAMED_ROOM", "loc-args": ["Alice", "Lunch"]}},
                             "room_id": "!room:hs", "event_id": "$ev"})
    n = notif(type="m.room.member", user_is_target=True, room_name=None, content={"membership": "invite"},
              counts=Counts())
    assert body(n) == dumps({"aps": {"alert": {"loc-key": "USER_INVITE_TO_CHAT", "loc-args": ["Alice"]}},
                             "room_id": "!room:hs", "event_id": "$ev"})


def test_other_member_event_sends_badge_only_or_nothing():
    n = notif(type="m.room.member", user_is_target=False, content={"membership": "join"})
    assert body(n) == b'{"aps":{"badge":3}}'
    assert body(notif(type="m.room.member", content={"membership": "join"}, counts=Counts())) is None


def test_unknown_type_and_badge_zero():
    n = notif(type="org.example.custom", counts=Counts(unread=0, missed_calls=0))
    assert body(n) == dumps({"aps": {"alert": {"loc-key": "MSG_FROM_USER", "loc-args": ["Alice"]}, "badge": 0},
                             "room_id": "!room:hs", "event_id": "$ev"})


def test_badge_only_ignores_default_payload():
    n = notif(event_id=None, type=None, counts=Counts(unread=2))
    d = dev({"default_payload": {"aps": {"mutable-content": 1}}})
    assert body(n, d) == b'{"aps":{"badge":2}}'
    assert body(n, d, TIM) == b'{"aps":{"badge":2}}'
    assert body(n, d, PayloadOptions(send_badge_counts=False)) is None


def test_send_badge_counts_off():
    assert body(notif(), opts=PayloadOptions(send_badge_counts=False)) == dumps(
        {"aps": {"alert": {"loc-key": "MSG_FROM_USER_IN_ROOM_WITH_CONTENT", "loc-args": ["Alice", "Lunch", "hi"]}},
         "room_id": "!room:hs", "event_id": "$ev"})


def test_event_id_only_with_default_payload():
    d = dev({"format": "event_id_only", "default_payload": {"aps": {"mutable-content": 1, "alert": "x"}, "k": 1}})
    assert body(notif(), d) == (b'{"aps":{"mutable-content":1,"alert":"x"},"k":1,"room_id":"!room:hs",'
                                b'"event_id":"$ev","unread_count":2,"missed_calls":1}')
    # No type at all (Synapse's event_id_only shape) selects it too; no aps is added.
    n = notif(type=None, content=None, sender=None, sender_display_name=None, room_name=None,
              counts=Counts(unread=0))
    assert body(n) == b'{"room_id":"!room:hs","event_id":"$ev","unread_count":0}'
    assert body(n, opts=PayloadOptions(send_badge_counts=False)) == b'{"room_id":"!room:hs","event_id":"$ev"}'


def test_full_with_default_payload_deep_merged():
    d = dev({"default_payload": {"aps": {"mutable-content": 1, "alert": {"title": "T", "loc-key": "old"},
                                         "sound": "x"}, "extra": {"a": [1]}}})
    assert body(notif(), d) == (b'{"aps":{"mutable-content":1,"alert":{"title":"T","loc-key":'
                                b'"MSG_FROM_USER_IN_ROOM_WITH_CONTENT","loc-args":["Alice","Lunch","hi"]},"sound":"x",'
                                b'"badge":3},"extra":{"a":[1]},"room_id":"!room:hs","event_id":"$ev"}')


def test_string_alert_in_default_payload_does_not_crash():
    d = dev({"default_payload": {"aps": {"alert": ""}}})
    assert body(notif(counts=Counts()), d) == (b'{"aps":{"alert":{"loc-key":"MSG_FROM_USER_IN_ROOM_WITH_CONTENT",'
                                               b'"loc-args":["Alice","Lunch","hi"]}},"room_id":"!room:hs","event_id":"$ev"}')


def test_tweaks_sound():
    d = dev(tweaks={"sound": "default", "highlight": True})
    assert body(notif(counts=Counts()), d) == (b'{"aps":{"alert":{"loc-key":"MSG_FROM_USER_IN_ROOM_WITH_CONTENT",'
                                               b'"loc-args":["Alice","Lunch","hi"]},"sound":"default"},'
                                               b'"room_id":"!room:hs","event_id":"$ev"}')
    assert b"sound" not in body(notif(), dev(tweaks={"sound": 5}))


@pytest.mark.parametrize("bad", [None, "x", [1], {"aps": "x"}, {"aps": []}])
def test_bad_default_payload(bad):
    with pytest.raises(BadDefaultPayload):
        build_payload(notif(), dev({"default_payload": bad}), FULL)


def test_content_free_mode_never_sends_content():
    n = notif(room_alias="#secret-alias:hs", sender_display_name="Secret Sender", room_name="Secret Room",
              content={"msgtype": "m.text", "body": "secret body"})
    out = body(n, dev(tweaks={"sound": "default"}), TIM)
    assert out == (b'{"aps":{"alert":{"loc-key":"TIM_NEW_EVENT"},"mutable-content":1,"badge":3,"sound":"default"},'
                   b'"room_id":"!room:hs","event_id":"$ev"}')
    for secret in (b"secret", b"Secret", b"@a:hs", b"hi"):
        assert secret not in out
    # The format option and default_payload cannot bring content back; a custom alert is kept.
    d = dev({"format": "event_id_only", "default_payload": {"aps": {"alert": {"loc-key": "APP_KEY"}}}})
    assert body(n, d, TIM) == (b'{"aps":{"alert":{"loc-key":"APP_KEY"},"mutable-content":1,"badge":3},'
                               b'"room_id":"!room:hs","event_id":"$ev"}')
