"""Slow clients (slowloris): trickled headers, stalled or trickled bodies, idle keep-alive connections.

The gateway under test has ``server.idle_timeout_s: 2``. Bytes are trickled every 0.4 s — well inside
the idle timeout, so only a whole-request read deadline can cut such a client. Every wait is bounded;
the bounds are many times the deadline, so the assertions do not depend on machine speed.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.hardening.conftest import Secrets, notify_body
from tests.hardening.rawhttp import RawConnection, RawResponse, http_request
from tests.support.gateway import NOTIFY, GatewayProcess

STEP_S = 0.4
#: Trickle at most this many bytes (16 s at STEP_S): eight times the 2 s deadline.
MAX_STEPS = 40


def trickle(conn: RawConnection, data: bytes, others: Iterator[None] | None = None) -> int:
    """Send `data` one byte per STEP_S until the server answers or closes; the number of bytes sent."""
    for i, byte in enumerate(data[:MAX_STEPS]):
        if not conn.try_send(bytes([byte])):
            return i
        if others is not None:
            next(others)
        if conn.readable(STEP_S):
            return i + 1
    return min(len(data), MAX_STEPS)


def assert_cut_with_408(conn: RawConnection) -> RawResponse:
    answer = conn.answer_or_close()
    assert answer is not None, "connection closed without an answer"
    assert answer.status == 408, answer
    assert answer.header("connection") == "close"
    assert answer.header("content-type") == "application/json"
    assert answer.json()["errcode"] == "M_UNKNOWN"
    assert conn.wait_closed(20) == b""
    return answer


def other_clients_served(gw: GatewayProcess, secrets: Secrets) -> Iterator[None]:
    """Each step: one complete request from another client must be answered meanwhile."""
    i = 0
    while True:
        i += 1
        if i % 2:
            assert gw.get("/health", timeout=10).status == 200
        else:
            key = secrets.add(f"SECRET-PUSHKEY-slow-bystander-{i}")
            r = gw.notify({"event_id": "$b", "devices": [{"app_id": "com.example.log", "pushkey": key}]}, timeout=10)
            assert r.status == 200 and r.json() == {"rejected": []}
        yield


def test_trickled_headers_are_cut_at_the_read_deadline(gw_short: GatewayProcess, secrets: Secrets) -> None:
    data = http_request("GET", "/health", None, {"X-Padding": "p" * 200})
    with RawConnection(gw_short.port) as conn:
        sent = trickle(conn, data, other_clients_served(gw_short, secrets))
        assert sent < MAX_STEPS, "a byte every 0.4 s kept the connection open past 8x the deadline"
        assert_cut_with_408(conn)
    assert gw_short.get("/health").status == 200


def test_body_stalled_halfway_is_cut_and_not_dispatched(gw_short: GatewayProcess, secrets: Secrets) -> None:
    key = secrets.add("SECRET-PUSHKEY-stalled-body")
    body = notify_body({"app_id": "com.example.log", "pushkey": key})
    before = gw_short.metric("tim_push_notifications_received_total")
    with RawConnection(gw_short.port) as conn:
        full = http_request("POST", NOTIFY, body, {"Content-Type": "application/json"})
        conn.send(full[: len(full) - len(body) // 2])
        bystander = other_clients_served(gw_short, secrets)
        next(bystander)
        next(bystander)  # one /health and one notify from another client while this one stalls
        assert conn.readable(20), "a stalled body was never cut"
        assert_cut_with_408(conn)
    # Only the bystander's notification was received; the half body was never parsed or dispatched.
    assert gw_short.metric("tim_push_notifications_received_total") == before + 1


def test_trickled_body_is_cut_at_the_read_deadline(gw_short: GatewayProcess, secrets: Secrets) -> None:
    key = secrets.add("SECRET-PUSHKEY-trickled-body")
    body = notify_body({"app_id": "com.example.log", "pushkey": key})
    with RawConnection(gw_short.port) as conn:
        full = http_request("POST", NOTIFY, body)
        conn.send(full[: len(full) - len(body)])
        sent = trickle(conn, body)
        assert sent < MAX_STEPS
        assert_cut_with_408(conn)


def test_idle_keepalive_connection_is_closed_without_an_answer(gw_short: GatewayProcess) -> None:
    with RawConnection(gw_short.port) as conn:
        conn.send(http_request("GET", "/health"))
        assert conn.read_response().status == 200
        # Nothing was started, so nothing is answered: the server just closes.
        assert conn.wait_closed(20) == b""


def test_deadline_is_per_request_on_a_keepalive_connection(gw_short: GatewayProcess) -> None:
    """Requests spaced inside the idle timeout keep working past the first request's deadline."""
    with RawConnection(gw_short.port) as conn:
        for _ in range(4):  # 4 x (0.8 s pause) > the 2 s deadline of the first request
            conn.send(http_request("GET", "/health"))
            assert conn.read_response().status == 200
            assert not conn.readable(0.8)


def test_idle_connection_that_never_sends_is_closed(gw_short: GatewayProcess) -> None:
    with RawConnection(gw_short.port) as conn:
        assert conn.wait_closed(20) == b""
