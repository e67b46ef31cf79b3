"""Hostile notify bodies: odd unicode, huge strings, deep nesting, duplicate keys, out-of-range numbers."""

from __future__ import annotations

import http.client

import orjson
import pytest

from tests.hardening.conftest import Secrets
from tests.hardening.rawhttp import exchange, http_request
from tests.support.gateway import NOTIFY, GatewayProcess

ODD_STRINGS = {
    "NUL": "a\x00b",
    "only NUL": "\x00",
    "RTL override": "\u202ekey\u202c",
    "RTL/LRM marks": "\u200f\u200ekey",
    "zero-width": "k\u200be\u200dy\ufeff",
    "line separators": "a\u2028b\u2029c\u0085d",
    "newlines and escapes": "a\nb\r\nc\x1b[31md",
    "emoji": "\U0001F600\U0001F469\u200d\U0001F4BB",
    "combining": "e\u0301" * 50,
    "noncharacters": "\ufffe\uffff\U0010ffff",
    "10 KB": "k" * 10240,
    "10 KB multibyte": "\u00e9" * 5120,
}


def post(gw: GatewayProcess, body: bytes) -> tuple[int, dict]:
    answer = exchange(gw.port, http_request("POST", NOTIFY, body, {"Content-Type": "application/json"}))
    assert answer is not None
    assert answer.status < 500, answer
    assert answer.header("content-type") == "application/json"
    return answer.status, answer.json()


@pytest.mark.parametrize("value", ODD_STRINGS.values(), ids=ODD_STRINGS.keys())
def test_odd_unicode_round_trips(gw: GatewayProcess, secrets: Secrets, value: str) -> None:
    """Odd strings are data: accepted, and a rejected pushkey comes back exactly as sent."""
    key = secrets.add("SECRET-PUSHKEY-" + value)
    doc = {"notification": {"event_id": value, "room_id": value, "sender": value, "sender_display_name": value,
                            "room_name": value, "type": value, "content": {value: value, "body": value},
                            "devices": [{"app_id": "com.example.log", "pushkey": key,
                                         "data": {value: value}, "tweaks": {"sound": value}},
                                        {"app_id": value, "pushkey": key + "-unknown-app"},
                                        {"app_id": "com.example.glob." + value, "pushkey": key + "-glob"}]}}
    status, answer = post(gw, orjson.dumps(doc))
    assert status == 200
    assert answer == {"rejected": [key + "-unknown-app"]}


@pytest.mark.parametrize("escaped", [b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\\udc00\\ud800"])
def test_lone_surrogate_escapes_are_not_json(gw: GatewayProcess, escaped: bytes) -> None:
    body = b'{"notification": {"devices": [{"app_id": "com.example.log", "pushkey": "' + escaped + b'"}]}}'
    assert post(gw, body) == (400, {"errcode": "M_NOT_JSON", "error": "Request body is not valid UTF-8 JSON"})


def _nested(depth: int, leaf: bytes = b"1") -> bytes:
    """An object `depth` levels deep (the object itself is level 1)."""
    return b'{"a":' * depth + leaf + b"}" * depth


def _with(field: str, value: bytes) -> bytes:
    device = b'{"app_id": "com.example.log", "pushkey": "nest-key"'
    if field in ("data", "tweaks"):
        return b'{"notification": {"devices": [' + device + b', "' + field.encode() + b'": ' + value + b"}]}}"
    return b'{"notification": {"' + field.encode() + b'": ' + value + b', "devices": [' + device + b"}]}}"


@pytest.mark.parametrize("field", ["content", "data", "tweaks"])
def test_deep_nesting_is_400_naming_the_field(gw: GatewayProcess, field: str) -> None:
    assert post(gw, _with(field, _nested(64)))[0] == 200
    for depth in (65, 300, 600, 1000):
        status, doc = post(gw, _with(field, _nested(depth)))
        assert status == 400 and doc["errcode"] == "M_BAD_JSON", (depth, doc)
        assert field in doc["error"] and "nested" in doc["error"]
    # Arrays count as levels too.
    status, doc = post(gw, _with(field, b'{"a":' + b"[" * 600 + b"]" * 600 + b"}"))
    assert status == 400 and doc["errcode"] == "M_BAD_JSON"


def test_nesting_beyond_the_json_parser_limit_is_not_json(gw: GatewayProcess) -> None:
    status, doc = post(gw, _with("content", _nested(5000)))
    assert status == 400 and doc["errcode"] == "M_NOT_JSON"
    status, doc = post(gw, b"[" * 100000 + b"]" * 100000)
    assert status == 400 and doc["errcode"] == "M_NOT_JSON"


def test_nesting_in_ignored_fields_is_harmless(gw: GatewayProcess) -> None:
    body = (b'{"extra": ' + _nested(1000) + b', "notification": {"future": ' + _nested(1000)
            + b', "devices": [{"app_id": "com.example.log", "pushkey": "k", "more": ' + _nested(1000) + b"}]}}")
    assert post(gw, body) == (200, {"rejected": []})


def test_duplicate_keys_last_one_wins(gw: GatewayProcess) -> None:
    body = (b'{"notification": {"devices": [{"app_id": "com.example.log", "pushkey": "first"}],'
            b' "devices": [{"app_id": "org.unknown", "pushkey": "dup-second"}]},'
            b' "notification": {"devices": [{"app_id": "org.unknown", "pushkey": "dup-third",'
            b' "pushkey": "dup-fourth"}]}}')
    assert post(gw, body) == (200, {"rejected": ["dup-fourth"]})


@pytest.mark.parametrize("fragment,errcode", [
    (b'"pushkey_ts": 18446744073709551616', "M_BAD_JSON"),   # beyond 64 bits: orjson reads a float
    (b'"pushkey_ts": 9223372036854775808', "M_BAD_JSON"),    # beyond int64
    (b'"pushkey_ts": -1', "M_BAD_JSON"),
    (b'"pushkey_ts": 1.0', "M_BAD_JSON"),
    (b'"pushkey_ts": 1e400', "M_NOT_JSON"),
    (b'"pushkey_ts": -0', None),
    (b'"data": {"format": ["event_id_only"]}', "M_BAD_JSON"),
])
def test_numbers_and_types_at_the_edges(gw: GatewayProcess, fragment: bytes, errcode: str | None) -> None:
    body = b'{"notification": {"devices": [{"app_id": "com.example.log", "pushkey": "k", ' + fragment + b"}]}}"
    status, doc = post(gw, body)
    if errcode is None:
        assert status == 200
    else:
        assert status == 400 and doc["errcode"] == errcode, doc


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b"\x00", b"\xfe\xff"])
def test_bom_and_binary_prefix_are_not_json(gw: GatewayProcess, prefix: bytes) -> None:
    body = prefix + b'{"notification": {"devices": [{"app_id": "com.example.log", "pushkey": "k"}]}}'
    assert post(gw, body)[1]["errcode"] == "M_NOT_JSON"


def test_many_devices_in_one_body(gw: GatewayProcess, secrets: Secrets) -> None:
    keys = [secrets.add(f"SECRET-PUSHKEY-many-{i}") for i in range(500)]
    devices = [{"app_id": "com.example.log" if i % 2 else "org.unknown", "pushkey": k} for i, k in enumerate(keys)]
    status, doc = post(gw, orjson.dumps({"notification": {"devices": devices}}))
    assert status == 200 and doc == {"rejected": keys[0::2]}


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def test_distinct_huge_app_ids_do_not_pin_memory(gw: GatewayProcess) -> None:
    """Each body may carry a ~200 KB app id; remembering them (a match cache) would grow without need."""
    assert gw.proc is not None
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)

    def send(i: int) -> None:
        body = orjson.dumps({"notification": {"devices": [{"app_id": f"org.unknown.{i}." + "a" * 200_000,
                                                           "pushkey": "k"}]}})
        conn.request("POST", NOTIFY, body)
        resp = conn.getresponse()
        assert resp.status == 200 and orjson.loads(resp.read()) == {"rejected": ["k"]}

    try:
        for i in range(30):  # warm up the allocator with bodies of this size
            send(i)
        before = _rss_kib(gw.proc.pid)
        for i in range(30, 330):
            send(i)
        grown_mib = (_rss_kib(gw.proc.pid) - before) / 1024
    finally:
        conn.close()
    # Retaining them would be 300 x 0.2 MB = 60 MiB.
    assert grown_mib < 20, f"RSS grew by {grown_mib:.0f} MiB for 300 distinct app ids"
