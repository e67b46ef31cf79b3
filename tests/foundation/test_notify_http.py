"""Black-box tests of the notify endpoint's HTTP contract against a running gateway."""

from __future__ import annotations

import socket

import pytest

from tests.support.gateway import NOTIFY, GatewayProcess, request



def note(*devices: dict, **extra: object) -> dict:
    return {"event_id": "$ev", "room_id": "!r:hs", "devices": list(devices), **extra}


def dev(app_id: str = "com.example.log", pushkey: str = "pk1", **kw: object) -> dict:
    return {"app_id": app_id, "pushkey": pushkey, **kw}


def test_success_is_json_with_rejected_list(log_gateway: GatewayProcess) -> None:
    r = log_gateway.notify(note(dev()))
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"rejected": []}
    assert int(r.headers["content-length"]) == len(r.body)


def test_unknown_app_id_is_rejected(log_gateway: GatewayProcess) -> None:
    r = log_gateway.notify(note(dev(), dev("org.unknown", "k2"), dev("com.example.log", "k3")))
    assert r.status == 200
    assert r.json() == {"rejected": ["k2"]}


@pytest.mark.parametrize("app_id,ok", [
    ("com.example.log", True),            # exact
    ("com.example.glob.anything", True),  # glob *
    ("com.example.glob.", True),          # * matches empty
    ("COM.EXAMPLE.LOG", False),           # case-sensitive
    ("com.example.glob", False),          # literal dot required
    ("com.example.gXob.x", True),         # only the "g?ob.x" glob matches
])
def test_app_id_matching(log_gateway: GatewayProcess, app_id: str, ok: bool) -> None:
    r = log_gateway.notify(note(dev(app_id, "k")))
    assert r.status == 200
    assert r.json() == {"rejected": [] if ok else ["k"]}


def test_ambiguous_glob_is_rejected(log_gateway: GatewayProcess) -> None:
    # "com.example.glob.x" matches "com.example.glob.*" and "com.example.g?ob.x": ambiguous.
    r = log_gateway.notify(note(dev("com.example.glob.x", "amb")))
    assert r.json() == {"rejected": ["amb"]}


@pytest.mark.parametrize("body,errcode", [
    (b"", "M_NOT_JSON"),
    (b"{", "M_NOT_JSON"),
    (b'{"notification": NaN}', "M_NOT_JSON"),
    (b'{"notification": {"devices": [], "x": Infinity}}', "M_NOT_JSON"),
    (b'\xff\xfe{"notification": {}}', "M_NOT_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": "\xed\xa0\x80"}]}}', "M_NOT_JSON"),
    (b"5", "M_BAD_JSON"),
    (b"null", "M_BAD_JSON"),
    (b"[]", "M_BAD_JSON"),
    (b"{}", "M_BAD_JSON"),
    (b'{"notification": []}', "M_BAD_JSON"),
    (b'{"notification": {}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": {}}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": []}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [5]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": ["x"]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"pushkey": "k"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": 1, "pushkey": "k"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": null}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": "k", "pushkey_ts": "1"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": "k", "pushkey_ts": true}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": "k", "data": []}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": "k", "tweaks": "x"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"devices": [{"app_id": "a", "pushkey": "k", "tweaks": {"sound": 1}}]}}', "M_BAD_JSON"),
    (b'{"notification": {"counts": 5, "devices": [{"app_id": "a", "pushkey": "k"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"counts": {"unread": "2"}, "devices": [{"app_id": "a", "pushkey": "k"}]}}',
     "M_BAD_JSON"),
    (b'{"notification": {"counts": {"missed_calls": -1}, "devices": [{"app_id": "a", "pushkey": "k"}]}}',
     "M_BAD_JSON"),
    (b'{"notification": {"prio": "urgent", "devices": [{"app_id": "a", "pushkey": "k"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"content": "hi", "devices": [{"app_id": "a", "pushkey": "k"}]}}', "M_BAD_JSON"),
    (b'{"notification": {"sender_display_name": 5, "devices": [{"app_id": "a", "pushkey": "k"}]}}',
     "M_BAD_JSON"),
    (b'{"notification": {"user_is_target": "yes", "devices": [{"app_id": "a", "pushkey": "k"}]}}',
     "M_BAD_JSON"),
    (b'{"notification": {"event_id": ["x"], "devices": [{"app_id": "a", "pushkey": "k"}]}}', "M_BAD_JSON"),
])
def test_bad_bodies_are_400_with_matrix_error(log_gateway: GatewayProcess, body: bytes, errcode: str) -> None:
    r = log_gateway.post(NOTIFY, body)
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["errcode"] == errcode
    assert isinstance(doc["error"], str) and doc["error"]


def test_bad_json_error_names_the_field(log_gateway: GatewayProcess) -> None:
    r = log_gateway.post(NOTIFY, b'{"notification": {"devices": [{"app_id": "a", "pushkey": "k", "pushkey_ts": "x"}]}}')
    assert "devices[0].pushkey_ts" in r.json()["error"]


def test_unknown_fields_are_ignored(log_gateway: GatewayProcess) -> None:
    r = log_gateway.notify(note(dev(extra=1), future_field={"a": 1}))
    assert r.status == 200 and r.json() == {"rejected": []}


def test_body_over_limit_is_413_without_reading_it(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory({"apps": {"a": {"type": "log"}}, "server": {"max_body_bytes": 4096}})
    r = gw.post(NOTIFY, b"{" + b" " * 10000 + b"}")
    assert r.status == 413
    assert r.json()["errcode"] == "M_TOO_LARGE"
    # A declared length far beyond the limit is answered from the headers alone, before any body byte.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"POST /_matrix/push/v1/notify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    # The gateway is still healthy afterwards.
    assert gw.get("/health").status == 200


def test_chunked_body_over_limit_is_413(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory({"apps": {"a": {"type": "log"}}, "server": {"max_body_bytes": 4096}})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"POST /_matrix/push/v1/notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 3000
        for _ in range(3):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("method,path,status", [
    ("GET", NOTIFY, 405), ("PUT", NOTIFY, 405), ("HEAD", NOTIFY, 405), ("DELETE", NOTIFY, 405),
    ("GET", "/nope", 404), ("POST", "/_matrix/push/v1/notify/extra", 404), ("GET", "/", 404),
    ("POST", "/health", 405),
])
def test_unrecognized_paths_and_methods(log_gateway: GatewayProcess, method: str, path: str, status: int) -> None:
    r = request(log_gateway.port, method, path, b"{}" if method in ("POST", "PUT") else None)
    assert r.status == status
    if method != "HEAD":
        assert r.json()["errcode"] == "M_UNRECOGNIZED"
    if status == 405:
        assert "allow" in r.headers


def test_request_id_is_echoed_or_generated(log_gateway: GatewayProcess) -> None:
    r = log_gateway.notify(note(dev()), headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r2 = log_gateway.notify(note(dev()), headers={"X-Request-ID": "bad id\twith spaces"})
    assert r2.headers["x-request-id"] != "bad id\twith spaces" and len(r2.headers["x-request-id"]) == 32
    assert "abc-123" in log_gateway.log()


def test_pushkeys_never_appear_in_logs(log_gateway: GatewayProcess) -> None:
    secret = "SECRETPUSHKEY-4711-very-distinctive"
    log_gateway.notify(note(dev(pushkey=secret), dev("org.unknown", secret + "X"),
                            content={"body": "PATIENT-DATA-xyz"}, sender_display_name="Dr. Secret Name"))
    text = log_gateway.log()
    assert secret not in text
    assert "PATIENT-DATA-xyz" not in text
    assert "Dr. Secret Name" not in text


def test_notify_time_is_observed_once_per_notify(log_gateway: GatewayProcess) -> None:
    before = log_gateway.metric("tim_push_notify_time_seconds_count")
    for _ in range(3):
        log_gateway.notify(note(dev()))
    log_gateway.get("/health")
    assert log_gateway.metric("tim_push_notify_time_seconds_count") - before == 3
    r = log_gateway.get("/health")
    assert r.headers["server"].startswith("TwistedWeb") and r.headers["date"].endswith(" GMT")


def test_health_ready_metrics(log_gateway: GatewayProcess) -> None:
    assert log_gateway.get("/health").json() == {"status": "ok"}
    assert log_gateway.get("/ready").json() == {"ready": True}
    log_gateway.notify(note(dev(), dev("org.unknown", "x")))
    assert log_gateway.metric("tim_push_notifications_received_total") >= 1
    assert log_gateway.metric("tim_push_outcomes_total", {"app": "com.example.log", "outcome": "delivered"}) >= 1
    assert log_gateway.metric("tim_push_pushgateway_status_codes_total", {"code": "200"}) >= 1


def test_debug_last_keeps_redacted_summaries(log_gateway: GatewayProcess) -> None:
    log_gateway.notify(note(dev(pushkey="debugkey"), counts={"unread": 3}))
    items = log_gateway.get("/_debug/last").json()["notifications"]
    last = items[-1]
    assert last["event_id"] == "$ev" and last["unread"] == 3
    assert "debugkey" not in str(items)


def test_debug_endpoint_absent_without_debug(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory({"apps": {"a": {"type": "log"}}})
    assert gw.get("/_debug/last").status == 404
