"""The hardened aioapns protocol against the fake APNs over real HTTP/2 + TLS (asyncio side only).

Each case is one of the aioapns failure modes (hang, torn-down connection, swallowed error); the
assertions show the request resolves and the connection keeps serving other streams.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid

import pytest

from gateway.pushkins.apns_protocol import ApnsRequest, ApnsTransportError, PoolSettings, open_pool, send
from tests.apns.conftest import KEY_ID, TEAM_ID, TOPIC
from tests.fakes.apns import Close, Reply, Reset, Stall
from tests.fakes.connect_proxy import ConnectProxy

TOKEN = "ab" * 32


def settings(pki, fake, **kw) -> PoolSettings:
    ca, _d, p8, _pub = pki
    ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    base = dict(host="localhost", port=fake.port, topic=TOPIC, ssl_context=ctx, max_connections=1,
                key=p8.read_text(), key_id=KEY_ID, team_id=TEAM_ID)
    base.update(kw)
    return PoolSettings(**base)


def req(token=TOKEN, body=b'{"aps":{"badge":1}}', **kw) -> ApnsRequest:
    return ApnsRequest(token=token, body=body, apns_id=str(uuid.uuid4()), **kw)


async def attempt(pool, r, timeout=5.0):
    async with asyncio.timeout(timeout):
        return await send(pool, r)


def run(coro):
    return asyncio.run(coro)


def test_success_and_exact_request(pki, fake):
    async def main():
        pool = open_pool(settings(pki, fake))
        r = req(expiration=1234, collapse_id="!room:hs", push_type="alert", priority=5)
        resp = await attempt(pool, r)
        pool.close()
        return r, resp
    r, resp = run(main())
    assert (resp.status, resp.reason, resp.apns_id) == (200, "", r.apns_id)
    got = fake.requests[0]
    assert got.body == b'{"aps":{"badge":1}}'
    assert got.headers["apns-topic"] == TOPIC and got.headers["apns-id"] == r.apns_id
    assert (got.headers["apns-expiration"], got.headers["apns-priority"]) == ("1234", "5")
    assert (got.headers["apns-collapse-id"], got.headers["apns-push-type"]) == ("!room:hs", "alert")
    assert got.jwt_header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    assert got.jwt_claims["iss"] == TEAM_ID


def test_error_replies_resolve_without_hanging_and_connection_survives(pki, fake):
    fake.script("01" * 32, Reply(410, "Unregistered", timestamp=1700000000000))
    fake.script("02" * 32, Reply(500, raw_body=None, reason=None, apns_id=True))  # {"reason": ""}
    fake.script("03" * 32, Reply(503, raw_body=b""))  # non-200, empty DATA frame
    fake.script("04" * 32, Reply(200, raw_body=b""))  # 200 followed by an empty DATA frame
    fake.script("05" * 32, Reply(400, "BadDeviceToken", apns_id=False))  # no apns-id echoed
    fake.script("06" * 32, Reply(429, raw_body=b"not json"))
    fake.script("07" * 32, Reply(500, headers_only=True))  # error status, no DATA frame at all

    async def main():
        pool = open_pool(settings(pki, fake))
        out = [await attempt(pool, req(f"0{i}" * 32)) for i in range(1, 8)]
        out.append(await attempt(pool, req()))
        n = len(pool.connections)
        pool.close()
        return out, n
    out, connections = run(main())
    assert [(r.status, r.reason, r.timestamp) for r in out] == [
        (410, "Unregistered", 1700000000000), (500, "", None), (503, "", None), (200, "", None),
        (400, "BadDeviceToken", None), (429, "", None), (500, "", None), (200, "", None)]
    assert connections == 1


def test_timeout_resets_only_that_stream(pki, fake):
    stalled = "0f" * 32
    fake.script(stalled, Stall())

    async def main():
        pool = open_pool(settings(pki, fake))
        await attempt(pool, req())  # connection up
        slow = asyncio.ensure_future(attempt(pool, req(stalled), timeout=0.2))
        fast = [asyncio.ensure_future(attempt(pool, req())) for _ in range(5)]
        results = await asyncio.gather(*fast)
        with pytest.raises(TimeoutError):
            await slow
        after = await attempt(pool, req())
        conns = list(pool.connections)
        pool.close()
        return results, after, conns
    before = fake.connections
    results, after, conns = run(main())
    assert [r.status for r in results] == [200] * 5 and after.status == 200
    assert len(conns) == 1 and fake.connections == before + 1  # the same connection served everything
    fake.wait_resets(1)


def test_reset_and_close_surface_as_transport_errors(pki, fake):
    fake.script("0a" * 32, Reset())
    fake.script("0b" * 32, Close())

    async def main():
        pool = open_pool(settings(pki, fake))
        kinds = []
        for token in ("0a" * 32, "0b" * 32):
            try:
                await attempt(pool, req(token))
            except ApnsTransportError as e:
                kinds.append(e.kind)
        ok = await attempt(pool, req())  # a fresh connection replaces the dropped one
        pool.close()
        return kinds, ok
    kinds, ok = run(main())
    assert kinds == ["stream_reset", "connection_lost"] and ok.status == 200


def test_connect_failure_is_immediate_and_typed(pki, fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed port: connection refused

        async def main():
            pool = open_pool(settings(pki, fake, port=port))
            with pytest.raises(ApnsTransportError) as e:
                await attempt(pool, req())
            return e.value.kind
        with asyncio.Runner(loop_factory=_TimerLog) as runner:
            kind = runner.run(main())
            delays = runner.get_loop().delays  # type: ignore[attr-defined]
    assert kind == "connect"
    # aioapns sleeps a whole second before raising MaxAttemptsExceeded; nothing here waits at all.
    assert not [d for d in delays if d >= 0.5], delays


class _TimerLog(asyncio.SelectorEventLoop):
    """An event loop that notes every delay it is asked to wait (asyncio.sleep goes through call_later)."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: list[float] = []

    def call_later(self, delay, callback, *args, context=None):  # type: ignore[no-untyped-def,override]
        self.delays.append(delay)
        return super().call_later(delay, callback, *args, context=context)


def test_through_connect_proxy(pki, fake):
    with ConnectProxy() as proxy:
        async def main():
            pool = open_pool(settings(pki, fake, proxy_host="127.0.0.1", proxy_port=proxy.port))
            out = [await attempt(pool, req()) for _ in range(3)]
            pool.close()
            return out
        out = run(main())
    assert [r.status for r in out] == [200] * 3
    assert [c.target for c in proxy.connects] == [f"localhost:{fake.port}"]
    assert proxy.bytes_relayed > 0


def test_one_provider_token_for_all_connections(pki, fake):
    """Several connections present the same JWT (Apple wants one token per team, refreshed rarely)."""
    stalled = "0e" * 32
    fake.script(stalled, Stall(), Stall())

    fake.max_concurrent_streams = 1
    try:
        slow_first = asyncio.run(_open_three(pki, fake, stalled))
    finally:
        fake.max_concurrent_streams = 1000
    tokens = {r.headers["authorization"] for r in fake.requests}
    conns = {r.connection for r in fake.requests}
    assert slow_first == 3 and len(conns) == 3 and len(tokens) == 1


async def _open_three(pki, fake, stalled):
    pool = open_pool(settings(pki, fake, max_connections=3))
    # Two stalled streams hold connections 1 and 2 (MAX_CONCURRENT_STREAMS=1), forcing a third connection.
    stuck = []
    for _ in range(2):
        stuck.append(asyncio.ensure_future(attempt(pool, req(stalled), timeout=3)))
        await asyncio.sleep(0.3)
    ok = await attempt(pool, req())
    n = len(pool.connections)
    for t in stuck:
        t.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    pool.close()
    assert ok.status == 200
    return n


def test_body_larger_than_the_flow_control_window_is_sent_in_pieces(pki, tmp_path):
    ca, d, _p8, pub = pki
    from tests.fakes.apns import FakeAPNs, TokenAuth
    body = b'{"aps":{"alert":"' + b"x" * 3000 + b'"}}'
    with FakeAPNs(ca, tmp_path, topic=TOPIC, token_auth=TokenAuth(pub, KEY_ID, TEAM_ID),
                  initial_window_size=1000) as small:
        async def main():
            pool = open_pool(settings(pki, small))
            await attempt(pool, req())  # connection up, the peer's small window is known
            out = await asyncio.gather(*[attempt(pool, req(body=body)) for _ in range(3)])
            pool.close()
            return out
        out = run(main())
        assert [r.status for r in out] == [200] * 3
        assert [r.body for r in small.requests[1:]] == [body] * 3


def test_many_requests_on_one_connection_keep_h2_stream_table_small(pki, fake):
    """Requests are written as raw HEADERS+DATA frames; h2 must still track, answer and forget them."""
    async def main():
        pool = open_pool(settings(pki, fake))
        await attempt(pool, req())
        conn = pool.connections[0]
        statuses = []
        for _ in range(5):
            out = await asyncio.gather(*[attempt(pool, req(body=b'{"aps":{"badge":%d}}' % i)) for i in range(60)])
            statuses += [r.status for r in out]
        tracked = len(conn.conn.streams)
        pool.close()
        return statuses, tracked, len(pool.connections)
    statuses, tracked, _ = run(main())
    assert statuses == [200] * 300
    assert tracked <= 64 + 60  # closed streams are dropped every 64 requests, not kept for the connection's life
    bodies = sorted(r.body for r in fake.requests[1:])
    assert bodies == sorted(b'{"aps":{"badge":%d}}' % i for i in range(60) for _ in range(5))


def test_hand_written_hpack_block_decodes_exactly():
    from hpack import Decoder

    from gateway.pushkins.apns_protocol import _hpack_block
    headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/3/device/" + b"ab" * 50),
               (b"host", b"api.push.apple.com"), (b"apns-id", str(uuid.uuid4()).encode()),
               (b"apns-topic", b"org.example"), (b"apns-expiration", b"0"), (b"apns-priority", b"10"),
               (b"apns-collapse-id", b"x" * 64), (b"authorization", b"bearer " + b"j" * 300)]
    assert Decoder().decode(_hpack_block(headers), raw=True) == headers
