"""Two gateway processes sharing one Redis behave as one: one push per event, shared rejections."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.guarantees.conftest import APP, Background, Harness, notification
from tests.support.wait import eventually
from tests.support.gateway import GatewayProcess

GatewayFactory = Callable[..., GatewayProcess]

pytestmark = pytest.mark.parametrize("durable_harness", ["redis"], indirect=True)


def test_same_event_to_two_instances_pushes_once(durable_harness: Harness, gateway_factory: GatewayFactory) -> None:
    h = durable_harness
    a, b = gateway_factory(h.config()), gateway_factory(h.config())
    # Sequential: the load balancer sends the homeserver's retry to the other instance.
    assert a.notify(notification("pk-1", "$e1")).json() == {"rejected": []}
    assert b.notify(notification("pk-1", "$e1")).json() == {"rejected": []}
    assert len(h.delivered("pk-1")) == 1
    # Concurrent: B receives the event while A is still sending it, and reports A's result.
    on_a = Background(lambda: a.notify(notification("gate-g-k", "$e2")))
    eventually(lambda: a.metric("tim_push_inflight_dispatches", {"app": APP}) == 1, "A to start sending")
    on_b = Background(lambda: b.notify(notification("gate-g-k", "$e2")))
    eventually(lambda: b.metric("tim_push_queue_deduplicated_total", {"kind": "in_flight"}) == 1, "B to wait for A")
    h.open_gate("g")
    assert on_a.result().json() == {"rejected": []} and on_b.result().json() == {"rejected": []}
    assert len(h.tried("gate-g-k")) == 1


def test_rejection_learned_by_one_instance_is_known_to_the_other(durable_harness: Harness,
                                                                  gateway_factory: GatewayFactory) -> None:
    h = durable_harness
    a, b = gateway_factory(h.config()), gateway_factory(h.config())
    assert a.notify(notification("reject-z", "$e1")).json() == {"rejected": ["reject-z"]}
    assert b.notify(notification("reject-z", "$e2")).json() == {"rejected": ["reject-z"]}
    assert len(h.tried("reject-z")) == 1


def test_queue_entry_is_finished_by_the_surviving_instance(durable_harness: Harness,
                                                           gateway_factory: GatewayFactory) -> None:
    h = durable_harness
    config = h.config(request_timeout_s=1)
    a, b = gateway_factory(config), gateway_factory(config)
    assert a.notify(notification("gate-q-k", "$e1")).json() == {"rejected": []}
    a.kill()
    h.open_gate("q")
    eventually(lambda: h.delivered("gate-q-k"), "B to take over A's queued push after its lease")
    eventually(lambda: b.metric("tim_push_queue_depth") == 0, "the queue to drain")
    assert len(h.delivered("gate-q-k")) == 1
