"""Property test: thousands of hostile bodies never produce a 5xx, and the gateway stays healthy."""

from __future__ import annotations

import http.client
import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway import NOTIFY, GatewayProcess


scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=12)
maybe = lambda strat: st.one_of(strat, json_values)  # noqa: E731
device = st.fixed_dictionaries({}, optional={
    "app_id": maybe(st.sampled_from(["com.example.log", "com.example.glob.x", "x", ""])),
    "pushkey": maybe(st.text(min_size=0, max_size=64)),
    "pushkey_ts": maybe(st.integers(min_value=-5, max_value=2**40)),
    "data": maybe(st.dictionaries(st.sampled_from(["format", "default_payload", "url"]), json_values, max_size=3)),
    "tweaks": maybe(st.dictionaries(st.sampled_from(["sound", "highlight"]), json_values, max_size=2)),
})
notification = st.fixed_dictionaries({}, optional={
    "event_id": maybe(st.text(max_size=30)), "room_id": maybe(st.text(max_size=30)),
    "type": maybe(st.sampled_from(["m.room.message", "m.room.encrypted", "m.call.invite", "m.room.member"])),
    "sender": maybe(st.text(max_size=30)), "sender_display_name": maybe(st.text(max_size=30)),
    "room_name": maybe(st.text(max_size=30)), "room_alias": maybe(st.text(max_size=30)),
    "user_is_target": maybe(st.booleans()), "prio": maybe(st.sampled_from(["high", "low", "x"])),
    "content": maybe(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
    "counts": maybe(st.fixed_dictionaries({}, optional={"unread": maybe(st.integers(-3, 2**40)),
                                                        "missed_calls": maybe(st.integers(-3, 2**40))})),
    "devices": maybe(st.lists(maybe(device), max_size=4)),
})

def dumps(doc: object) -> bytes:
    # stdlib json: it also writes integers beyond 64 bits, which orjson cannot.
    return json.dumps(doc).encode()


valid_device = st.fixed_dictionaries(
    {"app_id": st.sampled_from(["com.example.log", "com.example.glob.y", "unknown"]),
     "pushkey": st.text(min_size=1, max_size=64)},
    optional={"pushkey_ts": st.integers(0, 2**40), "data": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
              "tweaks": st.fixed_dictionaries({}, optional={"sound": st.text(max_size=10)})})
valid_notification = st.fixed_dictionaries(
    {"devices": st.lists(valid_device, min_size=1, max_size=4)},
    optional={"event_id": st.text(max_size=30), "room_id": st.text(max_size=30), "type": st.text(max_size=20),
              "sender_display_name": st.text(max_size=30), "prio": st.sampled_from(["high", "low"]),
              "content": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
              "counts": st.fixed_dictionaries({}, optional={"unread": st.integers(0, 1000),
                                                            "missed_calls": st.integers(0, 1000)})})

bodies = st.one_of(
    st.fixed_dictionaries({"notification": valid_notification}).map(dumps),
    st.binary(max_size=200),
    json_values.map(dumps),
    st.fixed_dictionaries({"notification": maybe(notification)}).map(dumps),
    st.fixed_dictionaries({"notification": notification}).map(dumps),
    st.fixed_dictionaries({"notification": notification}).map(lambda d: dumps(d)[:-3]),
)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            try:
                self.conn.request("POST", NOTIFY, body=body, headers={"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def test_random_bodies_never_5xx(log_gateway: GatewayProcess) -> None:
    client = Client(log_gateway.port)
    seen: dict[int, int] = {}

    @settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(bodies)
    def check(body: bytes) -> None:
        status, payload = client.post(body)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (status, body, payload)
        doc = orjson.loads(payload)
        if status == 200:
            assert isinstance(doc["rejected"], list)
        else:
            assert doc["errcode"] in ("M_NOT_JSON", "M_BAD_JSON") and doc["error"]

    check()
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen
    assert log_gateway.get("/health").status == 200
    assert "Traceback" not in log_gateway.log()
