"""What a real Synapse sends through http pushers, as seen by the gateway's pushkins.

Each test registers a fresh receiver with its own pushkeys, so counts are exact and pushes of other tests
never match. Synapse works through a pusher's events strictly in order and only moves to the next event
after the gateway answered 200 for the previous one; so once a later event has arrived, any resend of an
earlier one would already be visible — that is how "exactly once" is checked without sleeping.
"""

from __future__ import annotations

import secrets

from tests.e2e.conftest import ANDROID_APP, IOS_APP, SCRIPTED_APP, Scene
from tests.e2e.wait import PushLog, eventually


def key(prefix: str = "pk") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def test_message_reaches_each_pusher_once_with_ids_and_counts(scene: Scene, push_log: PushLog) -> None:
    ios, android = key(), key()
    scene.receiver.set_pusher(IOS_APP, ios, scene.notify_url)
    scene.receiver.set_pusher(ANDROID_APP, android, scene.notify_url)

    first = scene.sender.send_text(scene.room_id, "first")
    second = scene.sender.send_text(scene.room_id, "second")

    for app_id, pushkey in ((IOS_APP, ios), (ANDROID_APP, android)):
        push_log.wait_event(pushkey, second)
        pushes = push_log.logged(pushkey)
        assert [p["event_id"] for p in pushes] == [first, second]
        # Two members, no encryption: Synapse's one-to-one rule adds a sound tweak, hence prio high.
        common = {"app_id": app_id, "room_id": scene.room_id, "type": "m.room.message", "prio": "high",
                  "missed_calls": None, "format": None}
        assert pushes[0] == {**common, "pushkey_hash": pushes[0]["pushkey_hash"], "event_id": first, "unread": 1}
        assert pushes[1] == {**common, "pushkey_hash": pushes[1]["pushkey_hash"], "event_id": second, "unread": 2}


def test_event_id_only_pusher_gets_ids_and_counts_without_type(scene: Scene, push_log: PushLog) -> None:
    pushkey = key()
    scene.receiver.set_pusher(IOS_APP, pushkey, scene.notify_url, data={"format": "event_id_only"})

    event_id = scene.sender.send_text(scene.room_id, "secret text")

    push = push_log.wait_event(pushkey, event_id)
    assert push["format"] == "event_id_only"
    assert (push["room_id"], push["unread"], push["type"]) == (scene.room_id, 1, None)
    assert len(push_log.logged(pushkey)) == 1


def test_read_receipts_send_badge_only_updates_down_to_zero(scene: Scene, push_log: PushLog) -> None:
    pushkey = key()
    scene.receiver.set_pusher(ANDROID_APP, pushkey, scene.notify_url)
    first = scene.sender.send_text(scene.room_id, "one")
    second = scene.sender.send_text(scene.room_id, "two")
    assert push_log.wait_event(pushkey, second)["unread"] == 2

    scene.receiver.read_receipt(scene.room_id, first)
    assert push_log.wait_badges(pushkey, 1) == [1]
    scene.receiver.read_receipt(scene.room_id, second)
    assert push_log.wait_badges(pushkey, 2) == [1, 0]

    badge_pushes = [p for p in push_log.logged(pushkey) if p["event_id"] is None]
    assert all(p["room_id"] is None and p["type"] is None for p in badge_pushes)

    # After reading everything, the next message counts from zero again.
    third = scene.sender.send_text(scene.room_id, "three")
    assert push_log.wait_event(pushkey, third)["unread"] == 1


def test_rejected_pushkey_makes_synapse_remove_the_pusher(scene: Scene, push_log: PushLog) -> None:
    dead, alive = key("reject"), key()
    scene.receiver.set_pusher(SCRIPTED_APP, dead, scene.notify_url)
    scene.receiver.set_pusher(IOS_APP, alive, scene.notify_url)
    assert {p["pushkey"] for p in scene.receiver.pushers()} == {dead, alive}

    event_id = scene.sender.send_text(scene.room_id, "hello")

    push_log.wait_event(alive, event_id)
    eventually(lambda: {p["pushkey"] for p in scene.receiver.pushers()} == {alive}, "the rejected pusher's removal")
    assert push_log.scripted(dead) == []

    # The removed pusher gets nothing more; the other one carries on.
    later = scene.sender.send_text(scene.room_id, "again")
    push_log.wait_event(alive, later)
    assert [p["event_id"] for p in push_log.logged(alive)] == [event_id, later]


def test_unknown_app_id_is_rejected_and_its_pusher_removed(scene: Scene, push_log: PushLog) -> None:
    stray = key()
    scene.receiver.set_pusher("org.example.not.configured", stray, scene.notify_url)

    scene.sender.send_text(scene.room_id, "hello")

    eventually(lambda: scene.receiver.pushers() == [] or None, "removal of the pusher for an unknown app")
