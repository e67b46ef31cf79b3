"""At most one push per (app_id, pushkey, event_id), whatever the homeserver retries (every backend)."""

from __future__ import annotations

from collections.abc import Callable

from tests.guarantees.conftest import APP, Background, Harness, metric_total, notification
from tests.support.wait import eventually
from tests.support.gateway import GatewayProcess

GatewayFactory = Callable[..., GatewayProcess]


def test_homeserver_retries_of_one_event_push_once(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    first = gw.notify(notification("pk-a", "$e1"))
    assert first.status == 200 and first.json() == {"rejected": []}
    # Sequential retries (after a lost response) and a burst of concurrent ones.
    for _ in range(3):
        assert gw.notify(notification("pk-a", "$e1")).json() == {"rejected": []}
    burst = [Background(lambda: gw.notify(notification("pk-a", "$e1"))) for _ in range(6)]
    assert all(b.result().status == 200 for b in burst)
    assert len(harness.delivered("pk-a")) == 1
    assert metric_total(gw, "tim_push_queue_deduplicated_total") == 9
    # A different event, or the same event to another pushkey, is a new push.
    gw.notify(notification("pk-a", "$e2"))
    gw.notify(notification("pk-b", "$e1"))
    assert len(harness.delivered("pk-a")) == 2 and len(harness.delivered("pk-b")) == 1


def test_concurrent_duplicates_share_the_first_attempt(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    first = Background(lambda: gw.notify(notification("gate-g1-k", "$e1")))
    eventually(lambda: gw.metric("tim_push_inflight_dispatches", {"app": APP}) == 1, "the first send to start")
    dups = [Background(lambda: gw.notify(notification("gate-g1-k", "$e1"))) for _ in range(3)]
    eventually(lambda: gw.metric("tim_push_queue_deduplicated_total", {"kind": "in_flight"}) == 3, "duplicates to coalesce")
    assert harness.tried("gate-g1-k") == []
    harness.open_gate("g1")
    assert first.result().json() == {"rejected": []}
    assert all(d.result().status == 200 and d.result().json() == {"rejected": []} for d in dups)
    assert len(harness.tried("gate-g1-k")) == 1 and len(harness.delivered("gate-g1-k")) == 1


def test_duplicate_of_a_rejected_push_reports_the_rejection(harness: Harness,
                                                            gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    assert gw.notify(notification("reject-x", "$e1")).json() == {"rejected": ["reject-x"]}
    assert gw.notify(notification("reject-x", "$e1")).json() == {"rejected": ["reject-x"]}
    assert len(harness.tried("reject-x")) == 1


def test_badge_only_pokes_are_not_deduplicated_by_event(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    for unread in (1, 2, 3):
        assert gw.notify(notification("pk-badge", None, counts={"unread": unread})).status == 200
    assert [x["unread"] for x in harness.delivered("pk-badge")] == [1, 2, 3]


def test_permanent_failure_is_not_resent_on_retry(harness: Harness, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(harness.config())
    assert gw.notify(notification("fail-x", "$e1")).json() == {"rejected": []}
    assert gw.notify(notification("fail-x", "$e1")).json() == {"rejected": []}
    assert len(harness.tried("fail-x")) == 1
