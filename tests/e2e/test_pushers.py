"""A real Synapse pushing through the gateway to the fake APNs and FCM: what reaches the providers, byte for byte.

Each test registers a fresh receiver with its own pushkeys, so counts are exact and another test's pushes
never match. Synapse works through a pusher's events strictly in order and only moves to the next event
after the gateway answered 200 for the previous one; so once a later event has arrived, any resend of
an earlier one would already be visible. That is how "exactly once" is checked without sleeping.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.e2e.conftest import (ANDROID_APP, ANDROID_TIM_APP, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC, IOS_APP,
                                IOS_TIM_APP, SCRIPTED_APP, Scene)
from tests.e2e.wait import Received, apns_pushkey, fcm_pushkey
from tests.fakes.apns import Reply as ApnsReply
from tests.fakes.fcm import Reply as FcmReply
from tests.support.wait import eventually

#: The pusher data Element iOS registers for content-free pushes; its app extension fetches the event.
ELEMENT_IOS_EVENT_ID_ONLY = {
    "format": "event_id_only",
    "default_payload": {"aps": {"mutable-content": 1, "content-available": 1,
                                "alert": {"loc-key": "Notification", "loc-args": []}}},
}


def apns_message(room_id: str, event_id: str, text: str, badge: int) -> bytes:
    # Two members and no encryption: Synapse's one-to-one rule adds sound "default" and sends prio high.
    return ('{"aps":{"alert":{"loc-key":"MSG_FROM_USER_WITH_CONTENT","loc-args":["alice","%s"]},'
            '"sound":"default","badge":%d},"room_id":"%s","event_id":"%s"}' % (text, badge, room_id, event_id)
            ).encode()


def fcm_message(token: str, room_id: str, event_id: str, text: str, unread: int, *, prio: str = "high",
                room_name: str | None = None) -> bytes:
    """FCM's priority (and Sygnal's data.prio) is "normal" for Matrix prio "low"."""
    name = '"room_name":"%s",' % room_name if room_name else ""
    return ('{"message":{"android":{"priority":"%s"},"data":{"content":"{\\"body\\":\\"%s\\",'
            '\\"msgtype\\":\\"m.text\\"}","content_body":"%s","content_msgtype":"m.text","event_id":"%s",'
            '"prio":"%s","room_id":"%s",%s"sender":"@alice:hs.e2e.test","sender_display_name":"alice",'
            '"type":"m.room.message","unread":"%d"},"token":"%s"},"validate_only":false}'
            % (prio, text, text, event_id, prio, room_id, name, unread, token)).encode()


def fcm_ids_only(token: str, room_id: str, event_id: str, unread: int) -> bytes:
    return ('{"message":{"android":{"priority":"high"},"data":{"event_id":"%s","prio":"high","room_id":"%s",'
            '"unread":"%d"},"token":"%s"},"validate_only":false}' % (event_id, room_id, unread, token)).encode()


def fcm_badge(token: str, unread: int) -> bytes:
    # Synapse sends "sender": "" with badge-only updates; empty descriptive fields are left out.
    return ('{"message":{"android":{"priority":"high"},"data":{"prio":"high","unread":"%d"},'
            '"token":"%s"},"validate_only":false}' % (unread, token)).encode()


def ios_and_android(scene: Scene, ios_app: str = IOS_APP, android_app: str = ANDROID_APP,
                    ios_data: dict[str, Any] | None = None,
                    android_data: dict[str, Any] | None = None) -> tuple[str, str]:
    """Set an iOS and an Android pusher with fresh pushkeys; returns (APNs token in hex, FCM pushkey)."""
    ios, token = apns_pushkey()
    android = fcm_pushkey()
    scene.receiver.set_pusher(ios_app, ios, scene.notify_url, data=ios_data)
    scene.receiver.set_pusher(android_app, android, scene.notify_url, data=android_data)
    return token, android


def test_message_reaches_apns_and_fcm_once_each_with_ids_and_counts(scene: Scene, received: Received) -> None:
    token, android = ios_and_android(scene)
    sent_at = time.time()

    first = scene.sender.send_text(scene.room_id, "first")
    second = scene.sender.send_text(scene.room_id, "second")

    apns = received.wait_apns(token, 2)
    assert [r.body for r in apns] == [apns_message(scene.room_id, first, "first", 1),
                                      apns_message(scene.room_id, second, "second", 2)]
    for r in apns:
        h = r.headers
        assert (h[":method"], h[":path"], h["apns-topic"], h["apns-priority"]) == (
            "POST", f"/3/device/{token}", APNS_TOPIC, "10")
        assert uuid.UUID(h["apns-id"])
        assert sent_at + 86400 - 5 <= int(h["apns-expiration"]) <= time.time() + 86400 + 5
        assert r.jwt_header == {"alg": "ES256", "kid": APNS_KEY_ID, "typ": "JWT"}
        assert r.jwt_claims is not None and r.jwt_claims["iss"] == APNS_TEAM_ID
    assert apns[0].headers["apns-id"] != apns[1].headers["apns-id"]

    fcm = received.wait_fcm(android, 2)
    assert [r.body for r in fcm] == [fcm_message(android, scene.room_id, first, "first", 1),
                                     fcm_message(android, scene.room_id, second, "second", 2)]
    for r in fcm:
        assert r.path == f"/v1/projects/{received.fcm_fake.project_id}/messages:send"
        assert r.header("Content-Type") == "application/json"
        assert (r.header("Authorization") or "").startswith("Bearer ya29.fake-")

    # The second event arrived, so Synapse is done with the first: nothing was sent twice.
    assert len(received.apns(token)) == 2 and len(received.fcm(android)) == 2


def test_group_messages_go_out_with_low_priority(group_scene: Scene, received: Received) -> None:
    scene = group_scene
    token, android = ios_and_android(scene)

    event_id = scene.sender.send_text(scene.room_id, "hi all")

    # Synapse's ".m.rule.message" notifies without a sound tweak and sends prio "low".
    [apns] = received.wait_apns(token, 1)
    assert apns.headers["apns-priority"] == "5"
    assert apns.body == ('{"aps":{"alert":{"loc-key":"MSG_FROM_USER_IN_ROOM_WITH_CONTENT","loc-args":["alice","Lunch",'
                         '"hi all"]},"badge":1},"room_id":"%s","event_id":"%s"}' % (scene.room_id, event_id)).encode()
    [fcm] = received.wait_fcm(android, 1)
    assert fcm.body == fcm_message(android, scene.room_id, event_id, "hi all", 1, prio="normal", room_name="Lunch")


def test_event_id_only_pushers_get_content_free_pushes(scene: Scene, received: Received) -> None:
    token, android = ios_and_android(scene, ios_data=ELEMENT_IOS_EVENT_ID_ONLY,
                                     android_data={"format": "event_id_only"})

    event_id = scene.sender.send_text(scene.room_id, "the secret text")

    [apns] = received.wait_apns(token, 1)
    # Synapse stores pusher data as canonical JSON, so default_payload comes back with sorted keys.
    assert apns.body == (
        '{"aps":{"alert":{"loc-args":[],"loc-key":"Notification"},"content-available":1,"mutable-content":1},'
        '"room_id":"%s","event_id":"%s","unread_count":1}' % (scene.room_id, event_id)).encode()
    [fcm] = received.wait_fcm(android, 1)
    assert fcm.body == fcm_ids_only(android, scene.room_id, event_id, 1)
    for body in (apns.body, fcm.body):
        assert b"secret" not in body and b"alice" not in body


def test_tim_apps_send_only_ids_and_counts_even_for_full_format_pushers(scene: Scene,
                                                                      received: Received) -> None:
    token, android = ios_and_android(scene, IOS_TIM_APP, ANDROID_TIM_APP)

    event_id = scene.sender.send_text(scene.room_id, "the secret text")

    [apns] = received.wait_apns(token, 1)
    assert apns.body == ('{"aps":{"alert":{"loc-key":"TIM_NEW_EVENT"},"mutable-content":1,"badge":1,'
                         '"sound":"default"},"room_id":"%s","event_id":"%s"}' % (scene.room_id, event_id)).encode()
    [fcm] = received.wait_fcm(android, 1)
    assert fcm.body == fcm_ids_only(android, scene.room_id, event_id, 1)
    for body in (apns.body, fcm.body):
        assert b"secret" not in body and b"alice" not in body


def test_read_receipts_send_badge_only_updates_down_to_zero(scene: Scene, received: Received) -> None:
    token, android = ios_and_android(scene)
    first = scene.sender.send_text(scene.room_id, "one")
    second = scene.sender.send_text(scene.room_id, "two")
    received.wait_apns(token, 2)
    received.wait_fcm(android, 2)

    scene.receiver.read_receipt(scene.room_id, first)
    assert received.wait_apns(token, 3)[2].body == b'{"aps":{"badge":1}}'
    assert received.wait_fcm(android, 3)[2].body == fcm_badge(android, 1)

    scene.receiver.read_receipt(scene.room_id, second)
    assert received.wait_apns(token, 4)[3].body == b'{"aps":{"badge":0}}'
    assert received.wait_fcm(android, 4)[3].body == fcm_badge(android, 0)

    # Everything read: the next message counts from one again.
    third = scene.sender.send_text(scene.room_id, "three")
    assert received.wait_apns(token, 5)[4].body == apns_message(scene.room_id, third, "three", 1)
    assert received.wait_fcm(android, 5)[4].body == fcm_message(android, scene.room_id, third, "three", 1)


def test_unregistered_tokens_are_rejected_and_synapse_removes_those_pushers(scene: Scene,
                                                                             received: Received) -> None:
    dead_ios, dead_token = apns_pushkey()
    dead_android = fcm_pushkey()
    alive, alive_token = apns_pushkey()
    for app_id, pushkey in ((IOS_APP, dead_ios), (ANDROID_APP, dead_android), (IOS_APP, alive)):
        scene.receiver.set_pusher(app_id, pushkey, scene.notify_url)
    # Apple's timestamp says the token died after the pusher was registered, so the pushkey is really dead.
    received.apns_fake.script(dead_token, ApnsReply(410, "Unregistered", timestamp=int(time.time() * 1000) + 1000))
    received.fcm_fake.script(dead_android, FcmReply(404, "UNREGISTERED"))
    assert {p["pushkey"] for p in scene.receiver.pushers()} == {dead_ios, dead_android, alive}

    event_id = scene.sender.send_text(scene.room_id, "hello")

    eventually(lambda: {p["pushkey"] for p in scene.receiver.pushers()} == {alive}, "removal of both dead pushers")
    assert [(r.answer.status, r.answer.reason) for r in received.apns(dead_token)  # type: ignore[union-attr]
            ] == [(410, "Unregistered")]
    assert len(received.fcm(dead_android)) == 1

    # The removed pushers get nothing more; the live one carries on.
    later = scene.sender.send_text(scene.room_id, "again")
    bodies = [r.body for r in received.wait_apns(alive_token, 2)]
    assert bodies == [apns_message(scene.room_id, event_id, "hello", 1), apns_message(scene.room_id, later, "again", 2)]
    assert len(received.apns(dead_token)) == 1 and len(received.fcm(dead_android)) == 1


def test_rejection_by_a_custom_pushkin_removes_the_pusher(scene: Scene, received: Received) -> None:
    dead = f"reject-{uuid.uuid4().hex}"
    scene.receiver.set_pusher(SCRIPTED_APP, dead, scene.notify_url)

    scene.sender.send_text(scene.room_id, "hello")

    eventually(lambda: scene.receiver.pushers() == [] or None, "removal of the rejected pusher")
    assert received.scripted(dead) == []


def test_unknown_app_id_is_rejected_and_its_pusher_removed(scene: Scene) -> None:
    scene.receiver.set_pusher("org.example.not.configured", fcm_pushkey(), scene.notify_url)

    scene.sender.send_text(scene.room_id, "hello")

    eventually(lambda: scene.receiver.pushers() == [] or None, "removal of the pusher for an unknown app")
