"""Bounded request time and the durable retry queue: slow or failing providers never cost a push."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.guarantees.conftest import APP, Harness, notification
from tests.support.wait import eventually
from tests.support.gateway import GatewayProcess

GatewayFactory = Callable[..., GatewayProcess]


def queue_empty(gw: GatewayProcess) -> bool:
    return gw.metric("tim_push_queue_depth") == 0


def test_stalled_provider_gets_200_and_is_delivered_later_once(harness: Harness,
                                                               gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config(request_timeout_s=1))
    r = gw.notify(notification("gate-s1-k", "$e1"))
    assert r.status == 200 and r.json() == {"rejected": []}
    # Answered while the provider was still stalled: nothing was delivered yet.
    assert harness.delivered() == [] and harness.tried("gate-s1-k") == []
    assert gw.metric("tim_push_queue_queued_total", {"app": APP, "reason": "deadline"}) == 1
    # The homeserver retrying anyway does not start a second send.
    assert gw.notify(notification("gate-s1-k", "$e1")).json() == {"rejected": []}
    harness.open_gate("s1")
    eventually(lambda: harness.delivered("gate-s1-k"), "the queued push to be delivered")
    eventually(lambda: queue_empty(gw), "the queue to drain")
    assert gw.notify(notification("gate-s1-k", "$e1")).status == 200
    assert len(harness.delivered("gate-s1-k")) == 1
    assert len(harness.tried("gate-s1-k")) == 1


def test_temporary_failures_are_retried_from_the_queue(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    r = gw.notify(notification("flaky-2-k", "$e1"))
    assert r.status == 200 and r.json() == {"rejected": []}
    eventually(lambda: harness.delivered("flaky-2-k"), "delivery after two temporary failures")
    assert [a["outcome"] for a in harness.tried("flaky-2-k")] == ["temporary", "temporary", "delivered"]
    eventually(lambda: queue_empty(gw), "the queue to drain")
    assert gw.metric("tim_push_queue_retried_total", {"app": APP, "outcome": "temporary"}) == 1
    assert gw.metric("tim_push_queue_retried_total", {"app": APP, "outcome": "delivered"}) == 1
    assert gw.metric("tim_push_queue_queued_total", {"app": APP, "reason": "temporary"}) == 1


def test_queue_gives_up_after_max_retry_age(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config(max_retry_age_s=1))
    assert gw.notify(notification("temp-forever", "$e1")).status == 200
    eventually(lambda: gw.metric("tim_push_queue_expired_total", {"app": APP}) == 1, "the entry to expire")
    eventually(lambda: queue_empty(gw), "the queue to drain")
    assert "gave up on queued push" in gw.log()
    assert harness.delivered() == []


def test_without_queue_a_stall_is_503_and_the_retry_does_not_duplicate(harness: Harness,
                                                                       gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config(request_timeout_s=1, retry_queue=False))
    r = gw.notify(notification("gate-n1-k", "$e1"))
    assert r.status == 503 and "retry-after" in r.headers
    harness.open_gate("n1")
    eventually(lambda: harness.delivered("gate-n1-k"), "the late send to finish")
    assert gw.notify(notification("gate-n1-k", "$e1")).json() == {"rejected": []}
    assert len(harness.tried("gate-n1-k")) == 1
    # A temporary failure is released, so the homeserver's retry sends again.
    assert gw.notify(notification("flaky-1-k", "$e2")).status == 503
    assert gw.notify(notification("flaky-1-k", "$e2")).status == 200
    assert len(harness.delivered("flaky-1-k")) == 1


@pytest.mark.parametrize("durable_harness", ["sqlite", "redis"], indirect=True)
@pytest.mark.parametrize("case", ["stalled", "backing_off"])
def test_killed_mid_queue_resumes_after_restart_exactly_once(durable_harness: Harness, case: str,
                                                             gateway_factory: GatewayFactory) -> None:
    h = durable_harness
    config = h.config(request_timeout_s=1, retry_backoff_base_s=1, retry_backoff_max_s=1)
    gw = gateway_factory(config)
    key = "gate-k1-x" if case == "stalled" else "flaky-1-x"
    assert gw.notify(notification(key, "$e1", content={"body": "hello"})).json() == {"rejected": []}
    assert h.delivered() == []
    gw.signal(signal.SIGKILL)
    gw.wait()
    restarted = gateway_factory(config)
    if case == "stalled":
        h.open_gate("k1")
    eventually(lambda: h.delivered(key), "the restarted gateway to deliver the queued push")
    eventually(lambda: queue_empty(restarted), "the queue to drain")
    # The homeserver never retries (it got 200), but if it did the record would still hold.
    assert restarted.notify(notification(key, "$e1")).status == 200
    assert len(h.delivered(key)) == 1


@pytest.mark.parametrize("durable_harness", ["sqlite", "redis"], indirect=True)
def test_delivered_queue_content_is_not_retained(durable_harness: Harness, gateway_factory: GatewayFactory) -> None:
    h = durable_harness
    secret_key, secret_body = "flaky-1-SECRETKEY4711", "PATIENT-DATA-0815"
    gw = gateway_factory(h.config())
    assert gw.notify(notification(secret_key, "$e1", content={"body": secret_body})).status == 200
    eventually(lambda: h.delivered(secret_key), "delivery from the queue")
    eventually(lambda: queue_empty(gw), "the queue to drain")
    gw.stop()
    if h.backend == "sqlite":
        blob = b"".join(p.read_bytes() for p in (h.dir / "state").iterdir() if p.is_file())
    else:
        client = h.redis.client()
        blob = b"".join(k + (client.dump(k) or b"") for k in client.scan_iter(h.state["key_prefix"] + "*"))
    assert blob  # the store was written to and read back
    assert secret_key.encode() not in blob and secret_body.encode() not in blob
