"""Concurrency, isolation, in-flight limits and graceful drain, observed through HTTP."""

from __future__ import annotations

import concurrent.futures
import signal
import time

from tests.support.gateway import GatewayProcess, request
from tests.support.wait import eventually

SCRIPTED = "tests.support.pushkins.ScriptedPushkin"


def scripted(gateway_factory, tmp_path, **app: object) -> GatewayProcess:  # type: ignore[no-untyped-def]
    record = tmp_path / "deliveries.jsonl"
    return gateway_factory({"apps": {"app": {"type": SCRIPTED, "record_file": str(record), **app}},
                            "server": {"request_timeout_s": 20}})


def test_devices_are_dispatched_concurrently(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path)
    one = time.monotonic()
    gw.notify({"event_id": "$1", "devices": [{"app_id": "app", "pushkey": "slow-1-a"}]})
    one = time.monotonic() - one
    many = time.monotonic()
    r = gw.notify({"event_id": "$2", "devices": [{"app_id": "app", "pushkey": f"slow-1-{i}"} for i in range(5)]})
    many = time.monotonic() - many
    assert r.status == 200 and r.json() == {"rejected": []}
    # Five 1 s devices in sequence would take >= 5x one device; concurrently they take about the same.
    assert many < one * 2.5, (one, many)
    lines = (tmp_path / "deliveries.jsonl").read_text().splitlines()
    assert len(lines) == 6


def test_one_failing_device_does_not_fail_the_others(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path)
    r = gw.notify({"event_id": "$x", "devices": [
        {"app_id": "app", "pushkey": "raise-1"}, {"app_id": "app", "pushkey": "ok-1"},
        {"app_id": "app", "pushkey": "reject-1"}, {"app_id": "app", "pushkey": "fail-1"},
        {"app_id": "app", "pushkey": "ok-2"}]})
    # raise-1 is a temporary failure without a retry path: the homeserver must retry (503) ...
    assert r.status == 503 and r.json()["errcode"] == "M_UNKNOWN"
    assert int(r.headers["retry-after"]) >= 1
    # ... but the other devices were delivered all the same.
    delivered = (tmp_path / "deliveries.jsonl").read_text()
    assert '"ok-1"' in delivered and '"ok-2"' in delivered
    assert "scripted failure" in gw.log()


def test_rejected_and_permanent_failures_answer_200(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path)
    r = gw.notify({"event_id": "$x", "devices": [
        {"app_id": "app", "pushkey": "reject-1"}, {"app_id": "app", "pushkey": "fail-1"},
        {"app_id": "app", "pushkey": "reject-2"}]})
    assert r.status == 200 and r.json() == {"rejected": ["reject-1", "reject-2"]}
    assert gw.metric("tim_push_outcomes_total", {"app": "app", "outcome": "failed", "reason": "test_failed"}) == 1
    assert "push failed permanently" in gw.log()


def test_temporary_failure_carries_provider_retry_after(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path)
    r = gw.notify({"event_id": "$t", "devices": [{"app_id": "app", "pushkey": "temp-1"}]})
    assert r.status == 503 and r.headers["retry-after"] == "7"


def test_inflight_limit_answers_429_and_sends_nothing(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path, inflight_request_limit=2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(gw.notify, {"event_id": "$s", "devices": [
            {"app_id": "app", "pushkey": "slow-2-a"}, {"app_id": "app", "pushkey": "slow-2-b"}]})
        time.sleep(0.5)
        r = gw.notify({"event_id": "$o", "devices": [{"app_id": "app", "pushkey": "over-1"}]})
        assert r.status == 429
        assert r.json()["errcode"] == "M_LIMIT_EXCEEDED"
        assert int(r.headers["retry-after"]) >= 1
        assert slow.result().status == 200
    assert "over-1" not in (tmp_path / "deliveries.jsonl").read_text()
    assert gw.metric("tim_push_inflight_request_limit_drop_total", {"app": "app"}) == 1
    # Once the slots are free again, the same request goes through.
    assert gw.notify({"event_id": "$o", "devices": [{"app_id": "app", "pushkey": "over-1"}]}).status == 200


def test_request_larger_than_the_limit_passes_when_idle(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path, inflight_request_limit=2)
    r = gw.notify({"event_id": "$m", "devices": [{"app_id": "app", "pushkey": f"k{i}"} for i in range(3)]})
    # Refusing it would make the homeserver retry forever; an idle app takes it whole.
    assert r.status == 200
    assert len((tmp_path / "deliveries.jsonl").read_text().splitlines()) == 3
    # While the app is busy, the same oversized request waits its turn (429, nothing sent).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(gw.notify, {"event_id": "$s", "devices": [{"app_id": "app", "pushkey": "slow-2-a"}]})
        time.sleep(0.5)
        r = gw.notify({"event_id": "$n", "devices": [{"app_id": "app", "pushkey": f"n{i}"} for i in range(3)]})
        assert r.status == 429
        assert slow.result().status == 200
    assert '"n0"' not in (tmp_path / "deliveries.jsonl").read_text()


def test_deadline_bounds_the_answer(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "d.jsonl"
    gw = gateway_factory({"apps": {"app": {"type": SCRIPTED, "record_file": str(record),
                                           "control_dir": str(tmp_path)}},
                          "server": {"request_timeout_s": 1}})
    r = gw.notify({"event_id": "$d", "devices": [{"app_id": "app", "pushkey": "gate-held-x"},
                                                 {"app_id": "app", "pushkey": "fast"}]})
    assert r.status in (200, 503)
    # Answered while the held device was still sending (it is released only now, and delivers after).
    assert '"gate-held-x"' not in record.read_text() and '"fast"' in record.read_text()
    (tmp_path / "held").touch()
    eventually(lambda: '"gate-held-x"' in record.read_text(), "the held device's delivery")


def test_graceful_drain_finishes_inflight_then_exits_0(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = scripted(gateway_factory, tmp_path)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        inflight = pool.submit(gw.notify, {"event_id": "$g", "devices": [{"app_id": "app", "pushkey": "slow-2-g"}]})
        time.sleep(0.5)
        gw.signal(signal.SIGTERM)
        time.sleep(0.3)
        # No longer accepting new connections ...
        try:
            refused = request(gw.port, "GET", "/health", timeout=2).status != 200
        except OSError:
            refused = True
        assert refused
        # ... but the in-flight request completes normally.
        r = inflight.result()
    assert r.status == 200 and r.json() == {"rejected": []}
    assert gw.wait(20) == 0
    assert '"slow-2-g"' in (tmp_path / "deliveries.jsonl").read_text()


def test_grace_period_bounds_shutdown(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "d.jsonl"
    gw = gateway_factory({"apps": {"app": {"type": SCRIPTED, "record_file": str(record),
                                           "control_dir": str(tmp_path)}},
                          "server": {"request_timeout_s": 60, "shutdown_grace_s": 1}})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: _ignore_errors(gw.notify, {"event_id": "$h",
                                                       "devices": [{"app_id": "app", "pushkey": "gate-never-h"}]}))
        time.sleep(0.5)
        gw.signal(signal.SIGINT)
        assert gw.wait(20) == 0  # exited although the in-flight device was never released
    assert not record.exists() or '"gate-never-h"' not in record.read_text()
    assert "grace period over" in gw.log()


def _ignore_errors(fn, *a):  # type: ignore[no-untyped-def]
    try:
        return fn(*a)
    except OSError:
        return None
