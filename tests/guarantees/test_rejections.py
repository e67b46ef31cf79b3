"""Rejected-pushkey memory: dead keys are answered without calling the provider, until re-registered."""

from __future__ import annotations

from collections.abc import Callable

from tests.guarantees.conftest import APP, Harness, notification
from tests.support.wait import eventually
from tests.support.gateway import GatewayProcess

GatewayFactory = Callable[..., GatewayProcess]


def test_rejected_key_is_remembered_until_a_newer_pushkey_ts(harness: Harness,
                                                             gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    key = "reject-dead"
    assert gw.notify(notification(key, "$e1", pushkey_ts=1000)).json() == {"rejected": [key]}
    assert len(harness.tried(key)) == 1
    # Later events for the same key: rejected from memory, the provider is not called.
    assert gw.notify(notification(key, "$e2", pushkey_ts=1000)).json() == {"rejected": [key]}
    assert gw.notify(notification(key, "$e3")).json() == {"rejected": [key]}
    assert gw.notify(notification(key, None, counts={"unread": 1})).json() == {"rejected": [key]}
    assert gw.notify(notification(key, "$e4", pushkey_ts=999)).json() == {"rejected": [key]}
    assert len(harness.tried(key)) == 1
    assert gw.metric("tim_push_rejections_remembered_total") == 4
    # A newer pushkey_ts: the device registered the key again, so the provider is asked again ...
    assert gw.notify(notification(key, "$e5", pushkey_ts=2000)).json() == {"rejected": [key]}
    assert len(harness.tried(key)) == 2
    # ... and its new rejection is remembered against that registration.
    assert gw.notify(notification(key, "$e6", pushkey_ts=2000)).json() == {"rejected": [key]}
    assert len(harness.tried(key)) == 2
    # Other keys and other apps are unaffected.
    assert gw.notify(notification("pk-live", "$e1")).json() == {"rejected": []}


def test_rejection_found_by_a_background_retry_is_reported_on_the_next_request(
        harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    key = "dies-1-k"
    # First attempt fails temporarily: queued, 200; the queue's retry then learns the key is dead.
    assert gw.notify(notification(key, "$e1")).json() == {"rejected": []}
    eventually(lambda: gw.metric("tim_push_queue_retried_total", {"app": APP, "outcome": "rejected"}) == 1,
             "the queue's retry to be rejected")
    eventually(lambda: gw.metric("tim_push_queue_depth") == 0, "the queue to drain")
    assert gw.notify(notification(key, "$e2")).json() == {"rejected": [key]}
    assert len(harness.tried(key)) == 2


def test_rejection_ttl_zero_disables_the_memory(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config(rejection_ttl_s=0))
    for event in ("$e1", "$e2"):
        assert gw.notify(notification("reject-k", event)).json() == {"rejected": ["reject-k"]}
    assert len(harness.tried("reject-k")) == 2
