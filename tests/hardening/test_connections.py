"""Connection handling: many held connections, pipelining, 413 mid-pipeline, Expect: 100-continue, HTTP/1.0."""

from __future__ import annotations

import orjson

from tests.hardening.conftest import MAX_BODY, Secrets, notify_body
from tests.hardening.rawhttp import RawConnection, http_request
from tests.support.gateway import NOTIFY, GatewayProcess

HELD = 200


def test_many_concurrent_connections_are_all_served(gw: GatewayProcess, secrets: Secrets) -> None:
    delivered = {"app": "com.example.log", "outcome": "delivered"}
    before = gw.metric("tim_push_outcomes_total", delivered)
    conns: list[tuple[RawConnection, bytes, str]] = []
    try:
        for i in range(HELD):
            key = secrets.add(f"SECRET-PUSHKEY-held-{i}")
            data = http_request("POST", NOTIFY, notify_body({"app_id": "com.example.log", "pushkey": key}))
            conn = RawConnection(gw.port)
            conn.send(data[:40])  # a request line cut short: the connection is now held open
            conns.append((conn, data, key))
        # With all of them held, a newcomer is still served at once.
        assert gw.get("/health", timeout=10).status == 200
        newcomer = secrets.add("SECRET-PUSHKEY-newcomer")
        r = gw.notify({"event_id": "$n", "devices": [{"app_id": "com.example.log", "pushkey": newcomer}]}, timeout=10)
        assert r.status == 200 and r.json() == {"rejected": []}
        for conn, data, _ in conns:
            conn.send(data[40:])
        for conn, _, _ in conns:
            answer = conn.read_response()
            assert answer.status == 200 and answer.json() == {"rejected": []}, answer
    finally:
        for conn, _, _ in conns:
            conn.close()
    # Nothing lost: every held request was delivered exactly once, plus the newcomer.
    assert gw.metric("tim_push_outcomes_total", delivered) == before + HELD + 1


def test_pipelined_requests_are_answered_in_order(gw: GatewayProcess, secrets: Secrets) -> None:
    key = secrets.add("SECRET-PUSHKEY-pipelined")
    with RawConnection(gw.port) as conn:
        conn.send(http_request("GET", "/health")
                  + http_request("POST", NOTIFY, notify_body({"app_id": "com.example.log", "pushkey": key},
                                                             {"app_id": "org.unknown", "pushkey": key + "-2"}))
                  + http_request("GET", "/nope")
                  + http_request("POST", NOTIFY, b"{")
                  + http_request("HEAD", "/health")
                  + http_request("PUT", NOTIFY, b"{}")
                  + http_request("GET", "/health", None, {"Connection": "close"}))
        answers = [conn.read_response(head_only=(i == 4)) for i in range(7)]
        assert [a.status for a in answers] == [200, 200, 404, 400, 200, 405, 200]
        assert answers[1].json() == {"rejected": [key + "-2"]}
        assert answers[2].json()["errcode"] == "M_UNRECOGNIZED"
        assert answers[3].json()["errcode"] == "M_NOT_JSON"
        assert answers[4].body == b"" and answers[4].header("content-length") == "15"
        assert answers[5].json()["errcode"] == "M_UNRECOGNIZED"
        assert conn.wait_closed(10) == b""
    assert len({a.header("x-request-id") for a in answers}) == 7


def test_413_ends_the_pipeline(gw: GatewayProcess) -> None:
    """After a 413 the connection closes (Connection: close); a pipelined request behind it is not run."""
    with RawConnection(gw.port) as conn:
        conn.send(http_request("POST", NOTIFY, b"x" * (MAX_BODY + 1)) + http_request("GET", "/health"))
        answer = conn.read_response()
        assert answer.status == 413 and answer.json()["errcode"] == "M_TOO_LARGE"
        assert answer.header("connection") == "close"
        assert conn.wait_closed(10) == b""
    assert gw.get("/health").status == 200


def test_chunked_413_ends_the_pipeline(gw: GatewayProcess) -> None:
    chunk = b"x" * (MAX_BODY // 2 + 1)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    with RawConnection(gw.port) as conn:
        conn.send(http_request("POST", NOTIFY, body, {"Transfer-Encoding": "chunked"}) + http_request("GET", "/health"))
        answer = conn.read_response()
        assert answer.status == 413 and answer.json()["errcode"] == "M_TOO_LARGE"
        assert conn.wait_closed(10) == b""


def test_bad_body_keeps_the_connection_usable(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(http_request("POST", NOTIFY, b'{"notification": 1}'))
        assert conn.read_response().status == 400
        conn.send(http_request("GET", "/health"))
        assert conn.read_response().json() == {"status": "ok"}


def test_expect_continue_over_the_limit_gets_only_413(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(http_request("POST", NOTIFY, None, {"Content-Length": str(MAX_BODY * 4), "Expect": "100-continue"}))
        answer = conn.read_response()
        assert answer.status == 413
        # The client was told not to send: no "100 Continue" may follow the final answer (it would be
        # written in the same reactor turn as the 413, so it is in the same segment or right behind it).
        rest = conn.buf
        if conn.readable(0.5):
            rest += conn.sock.recv(65536)
        assert b"100 Continue" not in rest, rest


def test_expect_continue_within_the_limit(gw: GatewayProcess, secrets: Secrets) -> None:
    key = secrets.add("SECRET-PUSHKEY-expect")
    body = notify_body({"app_id": "com.example.log", "pushkey": key})
    with RawConnection(gw.port) as conn:
        conn.send(http_request("POST", NOTIFY, None, {"Content-Length": str(len(body)), "Expect": "100-continue"}))
        assert conn.read_response().status == 100
        conn.send(body)
        answer = conn.read_response()
        assert answer.status == 200 and answer.json() == {"rejected": []}


def test_http_1_0_requests(gw: GatewayProcess, secrets: Secrets) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(http_request("GET", "/health", version="HTTP/1.0"))
        answer = conn.read_response()
        assert answer.status == 200 and answer.json() == {"status": "ok"}
        assert conn.wait_closed(10) == b""  # HTTP/1.0 without keep-alive: one request per connection
    key = secrets.add("SECRET-PUSHKEY-http10")
    with RawConnection(gw.port) as conn:
        conn.send(http_request("POST", NOTIFY, notify_body({"app_id": "org.unknown", "pushkey": key}),
                               version="HTTP/1.0"))
        answer = conn.read_response()
        assert answer.status == 200 and answer.json() == {"rejected": [key]}
    with RawConnection(gw.port) as conn:  # no Content-Length: an empty body
        conn.send(b"POST " + NOTIFY.encode() + b" HTTP/1.0\r\n\r\n")
        answer = conn.read_response()
        assert answer.status == 400 and answer.json()["errcode"] == "M_NOT_JSON"


def test_odd_bodies_on_get_are_ignored(gw: GatewayProcess) -> None:
    """A GET with a body: the body is read and discarded, the connection stays in sync."""
    with RawConnection(gw.port) as conn:
        conn.send(http_request("GET", "/health", orjson.dumps({"x": 1})) + http_request("GET", "/health"))
        assert [conn.read_response().status for _ in range(2)] == [200, 200]
