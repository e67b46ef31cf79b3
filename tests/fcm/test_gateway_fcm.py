"""Black-box: notify → real gateway process → HTTPS (test CA) → fake Google OAuth2 + FCM v1."""

from __future__ import annotations

import concurrent.futures
import email.utils
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fcm import FakeGoogle, Reply
from tests.fcm.conftest import account, dev, fcm_app, key, note, start_gateway
from tests.fakes.connect_proxy import ConnectProxy
from tests.support.gateway import GatewayProcess
from tests.support.tls import TestCA

A = "org.example.fcm"
TIM = "org.example.tim"
NOBADGE = "org.example.nobadge"
OPTS = "org.example.opts"
NARROW = "org.example.narrow"
CONC = "org.example.conc"
BADSA = "org.example.badsa"
WRONG = "org.example.wrongproject"

USED_KEYS: list[str] = []


def fresh(prefix: str = "pk") -> str:
    k = key(prefix)
    USED_KEYS.append(k)
    return k


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, pki: tuple[Path, TestCA],
       fake: FakeGoogle) -> Iterator[GatewayProcess]:
    ca = pki[1]
    main = account(pki, fake, "main")
    apps = {
        A: fcm_app(main, fake, ca, max_connections=4, request_timeout_s=1.0),
        TIM: fcm_app(main, fake, ca, tim_content_free=True),
        NOBADGE: fcm_app(main, fake, ca, send_badge_counts=False),
        OPTS: {**fcm_app(main, fake, ca, ttl_s=3600, collapse_key="room"), "type": "gcm",
               "fcm_options": {"android": {"notification": {"channel_id": "chat"}},
                               "apns": {"headers": {"apns-push-type": "background"}}}},
        NARROW: fcm_app(main, fake, ca, max_connections=3),
        CONC: fcm_app(account(pki, fake, "conc"), fake, ca),
        BADSA: fcm_app(account(pki, fake, "unknown", register=False), fake, ca),
        WRONG: fcm_app(main, fake, ca, project_id="other-project"),
    }
    g = start_gateway(tmp_path_factory.mktemp("gw"), apps, server={"request_timeout_s": 6})
    yield g
    g.stop()
    print(g.log()[-20000:])


def sent_data(fake: FakeGoogle, pushkey: str) -> dict[str, str]:
    (rec,) = fake.sends_for(pushkey)
    return rec.json()["message"]["data"]


def test_delivery_bytes_and_headers(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk = fresh()
    r = gw.notify(note(dev(A, pk), type="m.room.message", sender="@alice:hs", sender_display_name="Alice",
                       room_name="Room", content={"msgtype": "m.text", "body": "hi"},
                       counts={"unread": 0, "missed_calls": 1}))
    assert (r.status, r.json()) == (200, {"rejected": []})
    (rec,) = fake.sends_for(pk)
    assert rec.path == f"/v1/projects/{fake.project_id}/messages:send"
    assert rec.body == (
        b'{"message":{"android":{"priority":"high"},"data":{"content":"{\\"msgtype\\":\\"m.text\\",\\"body\\":\\"hi\\"}",'
        b'"content_body":"hi","content_msgtype":"m.text","event_id":"$ev:hs","missed_calls":"1","prio":"high",'
        b'"room_id":"!room:hs","room_name":"Room","sender":"@alice:hs","sender_display_name":"Alice",'
        b'"type":"m.room.message","unread":"0"},"token":"' + pk.encode() + b'"},"validate_only":false}')
    assert rec.header("Content-Type") == "application/json"
    assert (rec.header("Authorization") or "").startswith("Bearer ya29.fake-")
    assert rec.header("User-Agent", ).startswith("tim-push-gateway/")  # type: ignore[union-attr]


def test_badge_only_reset_is_delivered(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk = fresh()
    r = gw.notify({"devices": [dev(A, pk)], "counts": {"unread": 0}})
    assert (r.status, r.json()) == (200, {"rejected": []})
    assert sent_data(fake, pk) == {"prio": "high", "unread": "0"}


def test_tim_mode_sends_ids_and_counts_only(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk = fresh()
    gw.notify(note(dev(TIM, pk), type="m.room.encrypted", sender="@a:hs", sender_display_name="A", room_name="R",
                   content={"ciphertext": "abc"}, counts={"unread": 3}))
    assert sent_data(fake, pk) == {"event_id": "$ev:hs", "room_id": "!room:hs", "prio": "high", "unread": "3"}


def test_send_badge_counts_off(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk, badge_only = fresh(), fresh()
    gw.notify(note(dev(NOBADGE, pk), counts={"unread": 5}))
    assert sent_data(fake, pk) == {"event_id": "$ev:hs", "room_id": "!room:hs", "prio": "high"}
    r = gw.notify({"devices": [dev(NOBADGE, badge_only)], "counts": {"unread": 1}})
    assert (r.status, r.json()) == (200, {"rejected": []}) and fake.sends_for(badge_only) == []


def test_fcm_options_ttl_collapse_key_and_no_shared_mutation(gw: GatewayProcess, fake: FakeGoogle) -> None:
    high, low = fresh(), fresh()
    gw.notify(note(dev(OPTS, high)))
    gw.notify(note(dev(OPTS, low), prio="low"))
    m1 = fake.sends_for(high)[0].json()["message"]
    m2 = fake.sends_for(low)[0].json()["message"]
    assert m1["android"] == {"collapse_key": "room", "notification": {"channel_id": "chat"}, "priority": "high",
                             "ttl": "3600s"}
    assert m2["android"]["priority"] == "normal" and m2["data"]["prio"] == "normal"
    assert m1["apns"] == {"headers": {"apns-push-type": "background"}}
    gw.notify(note(dev(OPTS, high), event_id="$ev2:hs"))  # a new event: the same one would be de-duplicated
    assert fake.sends_for(high)[1].json()["message"]["android"]["priority"] == "high"


def test_large_ciphertext_is_never_truncated(gw: GatewayProcess, fake: FakeGoogle) -> None:
    fits, too_big = fresh(), fresh()
    before = gw.metric("tim_push_fcm_content_dropped_total", {"app": A, "reason": "content"})
    ct = "Q" * 3000
    gw.notify(note(dev(A, fits), type="m.room.encrypted", content={"algorithm": "m.megolm.v1.aes-sha2",
                                                                   "ciphertext": ct}))
    data = sent_data(fake, fits)
    assert data["content_ciphertext"] == ct and "content" not in data
    gw.notify(note(dev(A, too_big), type="m.room.encrypted", content={"ciphertext": "Q" * 5000},
                   counts={"unread": 1}))
    data = sent_data(fake, too_big)
    assert not any(k.startswith("content") for k in data)
    assert data["event_id"] == "$ev:hs" and data["unread"] == "1"
    assert gw.metric("tim_push_fcm_content_dropped_total", {"app": A, "reason": "content"}) == before + 1


@pytest.mark.parametrize("reply,rejected,reason", [
    (Reply(404, "UNREGISTERED"), True, "unregistered"),
    (Reply(403, "SENDER_ID_MISMATCH"), True, "sender_id_mismatch"),
    (Reply(400, "INVALID_ARGUMENT", token_violation=True), True, "invalid_token"),
    (Reply(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"), True,
     "invalid_token"),
    (Reply(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'"), False, "invalid_argument"),
    (Reply(401, "THIRD_PARTY_AUTH_ERROR"), False, "third_party_auth_error"),
    (Reply(400, body=b"<html>proxy says no</html>"), False, "invalid_argument"),
])
def test_permanent_answers_not_retried(gw: GatewayProcess, fake: FakeGoogle, reply: Reply, rejected: bool,
                                       reason: str) -> None:
    pk = fresh()
    fake.script(pk, reply, Reply())
    status = "rejected" if rejected else "failed"
    before = gw.metric("tim_push_outcomes_total", {"app": A, "outcome": status, "reason": reason})
    r = gw.notify(note(dev(A, pk)))
    assert (r.status, r.json()) == (200, {"rejected": [pk] if rejected else []})
    assert len(fake.sends_for(pk)) == 1
    assert gw.metric("tim_push_outcomes_total", {"app": A, "outcome": status, "reason": reason}) == before + 1
    if not rejected:
        assert f"FCM did not accept the message: {reason}" in gw.log()


def test_not_found_without_unregistered_never_rejects(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk = fresh()
    r = gw.notify(note(dev(WRONG, pk)))  # project "other-project" does not exist at the fake: plain 404
    assert (r.status, r.json()) == (200, {"rejected": []})
    assert gw.metric("tim_push_outcomes_total", {"app": WRONG, "outcome": "failed", "reason": "not_found"}) >= 1


@pytest.mark.parametrize("first", [
    Reply(503, "UNAVAILABLE"), Reply(500, "INTERNAL"), Reply(429, "QUOTA_EXCEEDED"), Reply(502),
    Reply(reset=True), Reply(delay_s=1.5),  # slower than the app's request_timeout_s (1 s)
])
def test_retryable_then_delivered(gw: GatewayProcess, fake: FakeGoogle, first: Reply) -> None:
    pk = fresh()
    fake.script(pk, first, Reply())
    r = gw.notify(note(dev(A, pk)))
    assert (r.status, r.json()) == (200, {"rejected": []})
    sends = fake.sends_for(pk)
    assert len(sends) == 2 and sends[0].body == sends[1].body


def test_retries_are_bounded_then_temporary(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk = fresh()
    fake.script(pk, *[Reply(503, "UNAVAILABLE")] * 5)
    r = gw.notify(note(dev(A, pk)))
    assert r.status == 503 and "retry-after" in r.headers
    assert len(fake.sends_for(pk)) == 3  # max_tries
    assert gw.metric("tim_push_fcm_retries_total", {"app": A, "reason": "unavailable"}) >= 2


def http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


@pytest.mark.parametrize("retry_after", ["1", "date"])
def test_retry_after_is_honoured(gw: GatewayProcess, fake: FakeGoogle, retry_after: str) -> None:
    pk = fresh()
    value = http_date(2) if retry_after == "date" else retry_after
    fake.script(pk, Reply(429, "QUOTA_EXCEEDED", retry_after=value), Reply())
    r = gw.notify(note(dev(A, pk)))
    assert (r.status, r.json()) == (200, {"rejected": []})
    first, second = fake.sends_for(pk)
    assert second.at - first.at >= 0.99  # never earlier than the provider asked


@pytest.mark.parametrize("retry_after", ["120", "date"])
def test_retry_after_beyond_budget_becomes_temporary(gw: GatewayProcess, fake: FakeGoogle,
                                                     retry_after: str) -> None:
    pk = fresh()
    value = http_date(120) if retry_after == "date" else retry_after
    fake.script(pk, Reply(503, "UNAVAILABLE", retry_after=value), Reply())
    r = gw.notify(note(dev(A, pk)))
    assert r.status == 503
    assert 100 <= int(r.headers["retry-after"]) <= 121
    assert len(fake.sends_for(pk)) == 1


def notify_many(gw: GatewayProcess, notes: list[dict[str, Any]]) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(len(notes)) as pool:
        return list(pool.map(gw.notify, notes))


def test_concurrency_is_bounded_by_max_connections(gw: GatewayProcess, fake: FakeGoogle) -> None:
    keys = [fresh("narrow") for _ in range(12)]
    for k in keys:
        fake.script(k, Reply(delay_s=0.4))
    gw.notify(note(dev(NARROW, fresh())))  # token fetched before the burst
    fake.reset_stats()
    answers = notify_many(gw, [note(dev(NARROW, k)) for k in keys])
    assert all(a.status == 200 and a.json() == {"rejected": []} for a in answers)
    assert fake.max_inflight == 3
    peers = {fake.sends_for(k)[0].peer for k in keys}
    assert len(peers) <= 3  # pooled, persistent connections


def test_one_token_refresh_for_concurrent_senders(gw: GatewayProcess, fake: FakeGoogle) -> None:
    email_ = next(e for e in fake.accounts if e.startswith("conc@"))
    assert fake.tokens_for(email_) == []
    fake.token_delay_s = 0.5
    try:
        answers = notify_many(gw, [note(dev(CONC, fresh())) for _ in range(10)])
        assert all(a.status == 200 for a in answers)
        assert len(fake.tokens_for(email_)) == 1
        fake.revoke_tokens()  # every sender now gets 401 with the cached token
        keys = [fresh() for _ in range(10)]
        answers = notify_many(gw, [note(dev(CONC, k)) for k in keys])
        assert all(a.status == 200 and a.json() == {"rejected": []} for a in answers)
        assert len(fake.tokens_for(email_)) == 2
        # Senders that saw the 401 resend once; later ones waited for the refresh and sent once.
        tries = [len(fake.sends_for(k)) for k in keys]
        assert set(tries) <= {1, 2} and 2 in tries
    finally:
        fake.token_delay_s = 0.0


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_after_refresh_fails_without_rejecting(gw: GatewayProcess, fake: FakeGoogle,
                                                          status: int) -> None:
    email_ = next(e for e in fake.accounts if e.startswith("main@"))
    pk = fresh()
    fake.script(pk, Reply(status), Reply(status), Reply())
    gw.notify(note(dev(A, fresh())))  # make sure a token is cached
    tokens = len(fake.tokens_for(email_))
    r = gw.notify(note(dev(A, pk)))
    assert (r.status, r.json()) == (200, {"rejected": []})
    assert len(fake.sends_for(pk)) == 2
    assert len(fake.tokens_for(email_)) == tokens + 1
    assert "FCM refuses our access token after a refresh" in gw.log()


def test_token_endpoint_refusal_fails_without_rejecting(gw: GatewayProcess, fake: FakeGoogle) -> None:
    pk = fresh()
    r = gw.notify(note(dev(BADSA, pk)))  # the fake does not know this service account: invalid_grant
    assert (r.status, r.json()) == (200, {"rejected": []})
    assert fake.sends_for(pk) == []
    assert gw.metric("tim_push_fcm_token_refreshes_total", {"app": BADSA, "status": "permanent_error"}) == 1
    assert "cannot get an access token" in gw.log()


def test_token_assertion_is_rs256_jwt_bearer(fake: FakeGoogle) -> None:
    import urllib.parse

    import jwt

    rec = fake.token_requests[0]
    sa = fake.accounts[rec.key or ""]
    assert rec.header("Content-Type") == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(rec.body.decode(), strict_parsing=True)
    assert sorted(form) == ["assertion", "grant_type"]
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(form["assertion"][0], sa.public_key_pem, algorithms=["RS256"], options={"verify_aud": False})
    assert claims["iss"] == sa.client_email and claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert jwt.get_unverified_header(form["assertion"][0])["kid"] == sa.key_id


def test_no_pushkeys_or_tokens_in_logs_or_metrics(gw: GatewayProcess, fake: FakeGoogle) -> None:
    text = gw.log() + gw.get("/metrics").body.decode()
    assert USED_KEYS and not [k for k in USED_KEYS if k in text]
    assert "ya29." not in text
    assert "Traceback" not in text and "Unclosed" not in text


def test_proxy_path(tmp_path: Path, pki: tuple[Path, TestCA], fake: FakeGoogle) -> None:
    proxy = ConnectProxy(credentials="user:s3cret").start()
    try:
        sa = account(pki, fake, "proxied")
        g = start_gateway(tmp_path, {A: fcm_app(sa, fake, pki[1])},
                          proxy=proxy.url.replace("http://", "http://user:s3cret@"))
        try:
            pk = fresh()
            r = g.notify(note(dev(A, pk)))
            assert (r.status, r.json()) == (200, {"rejected": []})
            assert len(fake.sends_for(pk)) == 1 and len(fake.tokens_for(sa.client_email)) == 1
        finally:
            g.stop()
        target = f"127.0.0.1:{fake.port}"
        assert len(proxy.connects) >= 2  # token endpoint and FCM both tunnelled
        assert all(c.target == target and c.status == 200 and
                   c.headers.get("proxy-authorization") == "Basic dXNlcjpzM2NyZXQ=" for c in proxy.connects)
    finally:
        proxy.stop()


def test_proxy_refusal_is_temporary(tmp_path: Path, pki: tuple[Path, TestCA], fake: FakeGoogle) -> None:
    proxy = ConnectProxy(credentials="user:right").start()
    try:
        url = proxy.url.replace("http://", "http://user:wrong@")
        g = start_gateway(tmp_path, {A: fcm_app(account(pki, fake, "proxied2"), fake, pki[1])}, proxy=url,
                          server={"request_timeout_s": 2})
        try:
            pk = fresh()
            r = g.notify(note(dev(A, pk)))
            assert r.status == 503 and fake.sends_for(pk) == []
        finally:
            g.stop()
        assert proxy.connects and all(c.status == 407 for c in proxy.connects)
    finally:
        proxy.stop()


def test_legacy_api_is_a_clear_config_error(tmp_path: Path, pki: tuple[Path, TestCA], fake: FakeGoogle) -> None:
    app = {**fcm_app(account(pki, fake, "legacy"), fake, pki[1]), "api_version": "legacy"}
    with pytest.raises(RuntimeError) as e:
        start_gateway(tmp_path, {A: app})
    assert f"apps.{A}.api_version: the legacy FCM API was shut down" in str(e.value)


def test_fake_rejects_bad_bearer(fake: FakeGoogle) -> None:
    """The fake really checks tokens (so the refresh tests above can fail)."""
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=None)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(f"{fake.url}/v1/projects/{fake.project_id}/messages:send",
                                 data=json.dumps({"message": {"token": "x"}}).encode(),
                                 headers={"Authorization": "Bearer forged"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx, timeout=5)
    assert e.value.code == 401


def test_trust_from_ssl_cert_file(tmp_path: Path, pki: tuple[Path, TestCA], fake: FakeGoogle) -> None:
    app = fcm_app(account(pki, fake, "envtrust"), fake, pki[1])
    del app["ca_file"]
    g = GatewayProcess(tmp_path, {"apps": {A: app}}, env={"SSL_CERT_FILE": str(pki[1].cert_path)}).start()
    try:
        pk = fresh()
        assert g.notify(note(dev(A, pk))).json() == {"rejected": []} and len(fake.sends_for(pk)) == 1
    finally:
        g.stop()


def test_untrusted_certificate_is_never_delivered(tmp_path: Path, pki: tuple[Path, TestCA],
                                                  fake: FakeGoogle) -> None:
    sa = account(pki, fake, "notrust")
    app = fcm_app(sa, fake, pki[1])
    del app["ca_file"]
    g = start_gateway(tmp_path, {A: app}, server={"request_timeout_s": 3})
    try:
        pk = fresh()
        r = g.notify(note(dev(A, pk)))
        assert r.status == 503 and fake.sends_for(pk) == [] and fake.tokens_for(sa.client_email) == []
        assert "CertificateError" in g.log()
    finally:
        g.stop()


def test_token_reused_until_shortly_before_expiry(tmp_path: Path, pki: tuple[Path, TestCA],
                                                  fake: FakeGoogle) -> None:
    sa = account(pki, fake, "shortlived")
    fake.token_lifetime_s = 2  # refreshed at half its lifetime when that is under the 5-minute margin
    try:
        g = start_gateway(tmp_path, {A: fcm_app(sa, fake, pki[1])})
        try:
            for _ in range(3):
                g.notify(note(dev(A, fresh())))
            assert len(fake.tokens_for(sa.client_email)) == 1
            time.sleep(1.2)
            g.notify(note(dev(A, fresh())))
            assert len(fake.tokens_for(sa.client_email)) == 2
            assert "Unclosed" not in g.log() and "Traceback" not in g.log()
        finally:
            g.stop()
        assert "Unclosed" not in g.log() and "Traceback" not in g.log()
    finally:
        fake.token_lifetime_s = 3600
