"""Providers slower than the gateway's request timeout, with a real Synapse as the client.

The gateway must answer Synapse within ``server.request_timeout_s`` (2 s here) with 200 — the push goes
on in the background or in the retry queue — so Synapse neither backs off nor sends the event again;
the push must still reach the provider once. Synapse moves on to a pusher's next event only after a 200
for the previous one, so the second event's arrival proves the first was answered 200.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ANDROID_APP, IOS_APP, QUEUE_POLL_S, SCRIPTED_APP, Scene
from tests.e2e.wait import Received, apns_pushkey, fcm_pushkey
from tests.fakes.apns import Stall
from tests.fakes.fcm import Reply as FcmReply
from tests.support.gateway import GatewayProcess
from tests.support.wait import eventually

STATUS = "tim_push_pushgateway_status_codes_total"
QUEUE_DEPTH = "tim_push_queue_depth"
INFLIGHT = "tim_push_inflight_dispatches"


@pytest.fixture
def notify_statuses(gateway: GatewayProcess) -> Iterator[dict[str, float]]:
    """Yields the notify status counts at the start; after the test, asserts no 5xx was answered meanwhile."""
    before = {code: gateway.metric(STATUS, {"code": code}) for code in ("500", "502", "503", "504")}
    yield before
    after = {code: gateway.metric(STATUS, {"code": code}) for code in before}
    assert after == before, "the gateway answered Synapse with a 5xx"


def event_of(body: bytes) -> str:
    return str(json.loads(body)["event_id"])


def settled(gateway: GatewayProcess, app_id: str) -> None:
    """Wait until nothing of the app is being sent and nothing waits in the retry queue.

    The in-flight gauge is exact; the queue depth gauge is refreshed on each queue tick (every
    ``QUEUE_POLL_S``), so it counts only when it stayed 0 over several ticks.
    """
    ticks = 5
    quiet: list[bool] = []

    def probe() -> bool:
        quiet.append(gateway.metric(INFLIGHT, {"app": app_id}) == 0 and gateway.metric(QUEUE_DEPTH) == 0)
        return len(quiet) > ticks and all(quiet[-ticks - 1:])

    def wait() -> bool:
        time.sleep(QUEUE_POLL_S)
        return probe()

    eventually(wait, f"the gateway to finish sending for {app_id}")


def stall_first_apns_push(scene: Scene, received: Received, gateway: GatewayProcess) -> tuple[Any, Any]:
    """Two messages; APNs never answers the first attempt of the first. Returns (stalled request, its retry)."""
    ios, token = apns_pushkey()
    received.apns_fake.script(token, Stall())
    scene.receiver.set_pusher(IOS_APP, ios, scene.notify_url)

    first = scene.sender.send_text(scene.room_id, "first")
    second = scene.sender.send_text(scene.room_id, "second")

    received.wait_apns(token, 3)
    settled(gateway, IOS_APP)
    stalled, *answered = received.apns(token)
    assert isinstance(stalled.answer, Stall) and event_of(stalled.body) == first
    # Each event answered once; the second is not held up by the first one's retry from the queue.
    assert sorted(event_of(r.body) for r in answered) == sorted([first, second])
    assert all(r.answer is not None and not isinstance(r.answer, Stall) for r in answered)
    return stalled, next(r for r in answered if event_of(r.body) == first)


def test_stalled_apns_push_is_answered_in_time_and_delivered_once_later(
        scene: Scene, received: Received, gateway: GatewayProcess, notify_statuses: dict[str, float]) -> None:
    stalled, retry = stall_first_apns_push(scene, received, gateway)
    assert retry.body == stalled.body


def test_retry_of_a_stalled_apns_push_keeps_its_apns_id(
        scene: Scene, received: Received, gateway: GatewayProcess, notify_statuses: dict[str, float]) -> None:
    stalled, retry = stall_first_apns_push(scene, received, gateway)
    assert retry.headers["apns-id"] == stalled.headers["apns-id"]


def test_slow_fcm_answer_is_answered_in_time_and_sent_once(
        scene: Scene, received: Received, gateway: GatewayProcess, notify_statuses: dict[str, float]) -> None:
    android = fcm_pushkey()
    received.fcm_fake.script(android, FcmReply(delay_s=3))  # accepted, but answered after the request timeout
    scene.receiver.set_pusher(ANDROID_APP, android, scene.notify_url)

    first = scene.sender.send_text(scene.room_id, "first")
    second = scene.sender.send_text(scene.room_id, "second")

    received.wait_fcm(android, 2)
    settled(gateway, ANDROID_APP)
    events = [r.json()["message"]["data"]["event_id"] for r in received.fcm(android)]
    assert sorted(events) == sorted([first, second])


def test_slow_pushkin_is_answered_in_time_and_delivers_each_event_once(
        scene: Scene, received: Received, gateway: GatewayProcess, notify_statuses: dict[str, float]) -> None:
    # The scripted pushkin takes 3 s for this key and then succeeds, without any retry of its own.
    slow = f"slow-3-{uuid.uuid4().hex}"
    scene.receiver.set_pusher(SCRIPTED_APP, slow, scene.notify_url)

    first = scene.sender.send_text(scene.room_id, "first")
    second = scene.sender.send_text(scene.room_id, "second")

    # Waiting stops early as soon as any event was delivered twice.
    def delivered() -> list[str] | None:
        events = [r["event_id"] for r in received.scripted(slow)]
        return events if len(set(events)) < len(events) or set(events) == {first, second} else None

    assert eventually(delivered, "late deliveries of both events") == [first, second]
    settled(gateway, SCRIPTED_APP)
    assert [r["event_id"] for r in received.scripted(slow)] == [first, second]
