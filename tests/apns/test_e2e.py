"""Black-box: POST /_matrix/push/v1/notify to the real gateway process, which talks HTTP/2+TLS to the fake
APNs (a thread of this process). Asserts what APNs received byte for byte and what the homeserver is told.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import pytest

from tests.apns.conftest import KEY_ID, TEAM_ID, TOPIC
from tests.fakes.apns import Close, Reply, Reset, Stall
from tests.fakes.connect_proxy import ConnectProxy
from tests.support.gateway import GatewayProcess, free_port

APP = "org.example.tim.ios"
TIM_APP = "org.example.tim.ios.cf"
BG_APP = "org.example.tim.ios.bg"


def apns_app(pki, fake, **extra) -> dict:
    ca, _d, p8, _pub = pki
    return {"type": "apns", "keyfile": str(p8), "key_id": KEY_ID, "team_id": TEAM_ID, "topic": TOPIC,
            "apns_url": fake.url, "ca_file": str(ca.cert_path), "request_timeout_s": 0.5, **extra}


@pytest.fixture(scope="module")
def gateway(pki, fake_apns, tmp_path_factory):
    config = {
        "server": {"request_timeout_s": 6},
        "apps": {
            APP: apns_app(pki, fake_apns),
            TIM_APP: apns_app(pki, fake_apns, tim_content_free=True, collapse_id="room_id", push_type="alert",
                              ttl_s=0),
            BG_APP: apns_app(pki, fake_apns, push_type="background", send_badge_counts=False),
        },
    }
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), config)
    gw.start()
    yield gw
    gw.stop()
    print(gw.log()[-20000:])


def pushkey() -> tuple[str, str]:
    raw = uuid.uuid4().bytes * 2
    return base64.b64encode(raw).decode(), raw.hex()


def device(key: str, app: str = APP, **kw) -> dict:
    return {"app_id": app, "pushkey": key, "pushkey_ts": 1_700_000_000, **kw}


def note(*devices: dict, **kw) -> dict:
    base = {"event_id": "$ev1", "room_id": "!room:hs", "type": "m.room.message", "sender": "@alice:hs",
            "sender_display_name": "Alice", "room_name": "Lunch", "content": {"msgtype": "m.text", "body": "Hi 🍕"},
            "counts": {"unread": 2, "missed_calls": 1}, "prio": "high", "devices": list(devices)}
    base.update(kw)
    return base


def test_full_payload_headers_and_jwt_exact_and_shared_loop(gateway, fake):
    """A delivered push also proves Twisted and asyncio run on one loop (with two loops it hangs)."""
    key, token = pushkey()
    before = time.time()
    r = gateway.notify(note(device(key, tweaks={"sound": "default"})))
    assert (r.status, r.json()) == (200, {"rejected": []})
    [got] = fake.for_token(token)
    assert got.body == ('{"aps":{"alert":{"loc-key":"MSG_FROM_USER_IN_ROOM_WITH_CONTENT","loc-args":["Alice",'
                        '"Lunch","Hi 🍕"]},"sound":"default","badge":3},"room_id":"!room:hs","event_id":"$ev1"}'
                        ).encode()
    h = got.headers
    assert h[":path"] == f"/3/device/{token}" and h[":method"] == "POST" and h["apns-topic"] == TOPIC
    assert h["apns-priority"] == "10" and "apns-push-type" not in h and "apns-collapse-id" not in h
    assert uuid.UUID(h["apns-id"])
    assert before + 86400 - 5 <= int(h["apns-expiration"]) <= time.time() + 86400 + 5
    assert got.jwt_header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"} and got.jwt_claims["iss"] == TEAM_ID


def test_content_free_app(gateway, fake):
    key, token = pushkey()
    r = gateway.notify(note(device(key, TIM_APP), room_alias="#secret:hs"))
    assert r.json() == {"rejected": []}
    [got] = fake.for_token(token)
    assert got.body == (b'{"aps":{"alert":{"loc-key":"TIM_NEW_EVENT"},"mutable-content":1,"badge":3},'
                        b'"room_id":"!room:hs","event_id":"$ev1"}')
    assert (got.headers["apns-expiration"], got.headers["apns-collapse-id"]) == ("0", "!room:hs")
    assert got.headers["apns-push-type"] == "alert"


def test_priorities(gateway, fake):
    low_key, low_token = pushkey()
    bg_key, bg_token = pushkey()
    r = gateway.notify(note(device(low_key), device(bg_key, BG_APP), prio="low"))
    assert r.json() == {"rejected": []}
    assert fake.for_token(low_token)[0].headers["apns-priority"] == "5"
    r = gateway.notify(note(device(bg_key, BG_APP), event_id="$ev2"))
    bg = fake.for_token(bg_token)
    assert [g.headers["apns-priority"] for g in bg] == ["5", "5"]  # background is always 5
    assert bg[0].headers["apns-push-type"] == "background" and b"badge" not in bg[0].body


def test_event_id_only_and_badge_only(gateway, fake):
    key, token = pushkey()
    d = device(key, data={"format": "event_id_only", "default_payload": {"aps": {"content-available": 1}}})
    assert gateway.notify(note(d)).json() == {"rejected": []}
    r = gateway.notify({"devices": [device(key)], "counts": {"unread": 0}})
    assert r.json() == {"rejected": []}
    got = fake.for_token(token)
    assert [g.body for g in got] == [
        b'{"aps":{"content-available":1},"room_id":"!room:hs","event_id":"$ev1","unread_count":2,"missed_calls":1}',
        b'{"aps":{"badge":0}}']


def test_hex_pushkey_is_delivered_and_invalid_pushkey_is_not_rejected(gateway, fake):
    _key, token = pushkey()
    bad = "fcmtoken:APA91bHun4MxP5egoKMwt2KZFBaFUH"
    r = gateway.notify(note(device(token), device(bad)))
    assert r.json() == {"rejected": []}
    assert len(fake.for_token(token)) == 1 and len(fake.requests) == 1
    assert bad not in gateway.log()


@pytest.mark.parametrize("reply,rejected", [
    (Reply(400, "BadDeviceToken"), True),
    (Reply(400, "DeviceTokenNotForTopic"), True),
    (Reply(400, "TopicDisallowed"), True),
    (Reply(410, "Unregistered", timestamp=1_600_000_000_000), False),  # pusher refreshed after that: kept
    (Reply(410, "Unregistered", timestamp=1_800_000_000_000), True),
    (Reply(410, "Unregistered"), True),
    (Reply(403, "ExpiredProviderToken"), False),
    (Reply(403, "InvalidProviderToken"), False),
    (Reply(403, "BadCertificate"), False),
    (Reply(413, "PayloadTooLarge"), False),
    (Reply(400, "BadTopic"), False),
])
def test_permanent_outcomes(gateway, fake, reply, rejected):
    key, token = pushkey()
    fake.script(token, reply)
    r = gateway.notify(note(device(key)))
    assert (r.status, r.json()) == (200, {"rejected": [key] if rejected else []})
    assert len(fake.for_token(token)) == 1  # never retried
    assert gateway.metric("tim_push_apns_requests_total",
                          {"app": APP, "status": str(reply.status), "reason": reply.reason}) >= 1


def test_auth_error_logged_once_per_minute(gateway, fake):
    for _ in range(3):
        key, token = pushkey()
        fake.script(token, Reply(403, "InvalidProviderToken"))
        assert gateway.notify(note(device(key))).json() == {"rejected": []}
    lines = [ln for ln in gateway.log().splitlines() if "refused our credentials" in ln]
    assert len(lines) == 1


@pytest.mark.parametrize("first", [Reply(500, "InternalServerError"), Reply(503, "ServiceUnavailable"),
                                   Reply(429, "TooManyRequests"), Reset(), Close(), Reply(502, raw_body=b""),
                                   Stall()])
def test_temporary_then_success_reuses_apns_id(gateway, fake, first):
    key, token = pushkey()
    fake.script(token, first)
    r = gateway.notify(note(device(key)))
    assert (r.status, r.json()) == (200, {"rejected": []})
    got = fake.for_token(token)
    assert len(got) == 2
    assert got[0].headers["apns-id"] == got[1].headers["apns-id"] and got[0].body == got[1].body


def test_retries_are_bounded_then_temporary(gateway, fake):
    key, token = pushkey()
    fake.script(token, *[Reply(503, "ServiceUnavailable")] * 5)
    r = gateway.notify(note(device(key)))
    assert r.status == 503 and "retry-after" in r.headers
    got = fake.for_token(token)
    assert len(got) == 3 and len({g.headers["apns-id"] for g in got}) == 1
    assert gateway.metric("tim_push_apns_retries_total", {"app": APP, "reason": "ServiceUnavailable"}) >= 2


def test_stalled_device_does_not_delay_others(gateway, fake):
    slow_key, slow_token = pushkey()
    fake.script(slow_token, Stall(), Stall(), Stall())
    answers: dict[str, object] = {}

    def post(name, doc):
        answers[name] = gateway.notify(doc)

    slow = threading.Thread(target=post, args=("slow", note(device(slow_key))))
    slow.start()
    fake.wait_requests(1)  # the stalled stream is open on the shared connection
    keys = [pushkey() for _ in range(3)]
    post("fast", note(*[device(k) for k, _ in keys]))
    assert slow.is_alive(), "the fast request was answered while the stalled one is still pending"
    assert answers["fast"].json() == {"rejected": []}
    assert all(len(fake.for_token(t)) == 1 for _, t in keys)
    slow.join(30)
    assert answers["slow"].status == 503
    assert len(fake.for_token(slow_token)) == 3  # retried after each per-attempt timeout
    fake.wait_resets(3)  # each timed-out attempt reset only its own stream


def test_metrics_exposed(gateway, fake):
    text = gateway.get("/metrics").body.decode()
    for name in ("tim_push_apns_requests_total", "tim_push_apns_request_seconds_bucket",
                 "tim_push_apns_retries_total", "tim_push_apns_inflight_requests", "tim_push_apns_connections", "tim_push_apns_token_refreshes_total"):
        assert name in text
    assert "pushkey" not in text
    # One provider token for the app so far, however many connections; the pool is open.
    assert gateway.metric("tim_push_apns_token_refreshes_total", {"app": APP, "status": "ok"}) == 1
    assert gateway.metric("tim_push_apns_connections", {"app": APP}) >= 1
    assert gateway.metric("tim_push_apns_inflight_requests", {"app": APP}) == 0


def test_through_connect_proxy_from_https_proxy_env(pki, fake, tmp_path):
    with ConnectProxy(credentials="user:p@ss") as proxy:
        gw = GatewayProcess(tmp_path, {"apps": {APP: apns_app(pki, fake)}},
                            env={"HTTPS_PROXY": f"http://user:p%40ss@127.0.0.1:{proxy.port}"})
        gw.start()
        try:
            key, token = pushkey()
            r = gw.notify(note(device(key)))
        finally:
            gw.stop()
    assert r.json() == {"rejected": []}
    assert len(fake.for_token(token)) == 1
    assert [(c.target, c.status) for c in proxy.connects] == [(f"localhost:{fake.port}", 200)]


def test_proxy_refusing_is_a_temporary_failure(pki, fake, tmp_path):
    with ConnectProxy(refuse_with=502) as proxy:
        gw = GatewayProcess(tmp_path, {"server": {"request_timeout_s": 3}, "apps": {APP: apns_app(pki, fake)},
                                       "proxy": proxy.url})
        gw.start()
        try:
            r = gw.notify(note(device(pushkey()[0])))
        finally:
            gw.stop()
    assert r.status == 503
    assert len(proxy.connects) >= 2 and fake.requests == []


def test_huge_multibyte_body_is_truncated_to_4096_bytes(gateway, fake):
    key, token = pushkey()
    text = "Grüße 😀 " * 20000  # ~240 KB of UTF-8, near the request body limit
    r = gateway.notify(note(device(key), content={"msgtype": "m.text", "body": text}))
    assert r.json() == {"rejected": []}
    [got] = fake.for_token(token)
    assert len(got.body) <= 4096 and len(got.body) > 4000
    args = json.loads(got.body)["aps"]["alert"]["loc-args"]
    assert args[:2] == ["Alice", "Lunch"] and text.startswith(args[2])
    assert gateway.metric("tim_push_apns_payload_truncated_total", {"app": APP}) >= 1


@pytest.mark.parametrize("trust", ["ssl_cert_file", "none"])
def test_tls_verification_uses_system_store_or_ssl_cert_file(pki, fake, tmp_path, trust):
    ca = pki[0]
    app = apns_app(pki, fake)
    del app["ca_file"]
    env = {"SSL_CERT_FILE": str(ca.cert_path)} if trust == "ssl_cert_file" else {"SSL_CERT_FILE": "/nonexistent"}
    gw = GatewayProcess(tmp_path, {"server": {"request_timeout_s": 3}, "apps": {APP: app}}, env=env).start()
    try:
        r = gw.notify(note(device(pushkey()[0])))
        connect_errors = gw.metric("tim_push_apns_requests_total", {"app": APP, "status": "connect"})
    finally:
        gw.stop()
    if trust == "ssl_cert_file":
        assert r.json() == {"rejected": []} and len(fake.requests) == 1
    else:  # the test CA is not trusted: TLS fails, nothing reaches the fake, the homeserver should retry
        assert r.status == 503 and fake.requests == [] and connect_errors >= 1


def test_unreachable_apns_is_temporary(pki, fake, tmp_path):
    closed = free_port()  # nothing listens there
    app = apns_app(pki, fake, apns_url=f"https://localhost:{closed}")
    gw = GatewayProcess(tmp_path, {"server": {"request_timeout_s": 3}, "apps": {APP: app}}).start()
    try:
        r = gw.notify(note(device(pushkey()[0])))
        attempts = gw.metric("tim_push_apns_requests_total", {"app": APP, "status": "connect"})
    finally:
        gw.stop()
    assert r.status == 503 and r.json()["errcode"] == "M_UNKNOWN"
    assert attempts == 3  # retried within the request, bounded by max_tries
