"""Malformed HTTP framing and odd request targets: a JSON 4xx (never a 5xx, never a crash), gateway stays up."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import MAX_BODY, notify_body
from tests.hardening.rawhttp import RawConnection, exchange, http_request
from tests.support.gateway import NOTIFY, GatewayProcess

BODY = notify_body({"app_id": "com.example.log", "pushkey": "framing-key"})
N = NOTIFY.encode()


def post_with(headers: bytes, body: bytes = BODY) -> bytes:
    return b"POST " + N + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


def chunked(raw_chunks: bytes) -> bytes:
    return post_with(b"Transfer-Encoding: chunked\r\n", raw_chunks)


MALFORMED = {
    # header block
    "header line over 16 KiB": (http_request("GET", "/health", None, {"X-Long": "a" * 20000}), 431),
    "headers over 16 KiB in total": (http_request("GET", "/health", None,
                                                  {f"X-H{i}": "v" * 1000 for i in range(20)}), 400),
    "thousands of headers": (http_request("GET", "/health", None, {f"X-H{i}": "v" for i in range(3000)}), 400),
    "header without colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nno-colon-here\r\n\r\n", 400),
    "space in header name": (b"GET /health HTTP/1.1\r\nHost: x\r\nX Bad: 1\r\n\r\n", 400),
    "NUL in header value": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    # request line
    "request line over 16 KiB": (http_request("GET", "/health?" + "a" * 20000), 414),
    "HTTP/0.9 request": (b"GET /health\r\n\r\n", 400),
    "HTTP/1.2": (b"GET /health HTTP/1.2\r\n\r\n", 400),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "double space": (b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "non-ASCII target": (b"GET /h\xc3\xa9alth HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "control char in target": (b"GET /he\x01alth HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "method with slash": (b"GE/T /health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    # body framing
    "duplicate Content-Length (same)": (post_with(b"Content-Length: %d\r\nContent-Length: %d\r\n"
                                                  % (len(BODY), len(BODY))), 400),
    "duplicate Content-Length (different)": (post_with(b"Content-Length: %d\r\nContent-Length: 5\r\n"
                                                       % len(BODY)), 400),
    "Content-Length list": (post_with(b"Content-Length: %d, %d\r\n" % (len(BODY), len(BODY))), 400),
    "Content-Length + Transfer-Encoding": (post_with(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"
                                                     % len(BODY)), 400),
    "Transfer-Encoding + Content-Length": (post_with(b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n"
                                                     % len(BODY)), 400),
    "negative Content-Length": (post_with(b"Content-Length: -1\r\n"), 400),
    "non-numeric Content-Length": (post_with(b"Content-Length: abc\r\n"), 400),
    "Content-Length with plus": (post_with(b"Content-Length: +%d\r\n" % len(BODY)), 400),
    "hex Content-Length": (post_with(b"Content-Length: 0x10\r\n"), 400),
    "fractional Content-Length": (post_with(b"Content-Length: 1.5\r\n"), 400),
    "empty Content-Length": (post_with(b"Content-Length: \r\n"), 400),
    "non-ASCII digits in Content-Length": (post_with("Content-Length: ١٠\r\n".encode()), 400),
    "absurd Content-Length": (post_with(b"Content-Length: " + b"9" * 40 + b"\r\n"), 413),
    "unknown Transfer-Encoding": (post_with(b"Transfer-Encoding: gzip\r\n"), 400),
    "Transfer-Encoding list": (post_with(b"Transfer-Encoding: gzip, chunked\r\n"), 400),
    "non-hex chunk size": (chunked(b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    "negative chunk size": (chunked(b"-1\r\nabc\r\n0\r\n\r\n"), 400),
    "0x chunk size": (chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
    "empty chunk size": (chunked(b"\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk longer than declared": (chunked(b"2\r\nabcdef\r\n0\r\n\r\n"), 400),
    "chunk-size line over limit": (chunked(b"1" * 20000 + b"\r\n"), 400),
    "huge chunk size, data over the body limit": (chunked(b"f" * 20 + b"\r\n" + b"x" * (MAX_BODY + 10)), 413),
}


@pytest.mark.parametrize("raw,status", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_gets_json_4xx_and_close(gw: GatewayProcess, raw: bytes, status: int) -> None:
    with RawConnection(gw.port) as conn:
        conn.try_send(raw)
        answer = conn.answer_or_close()
        assert answer is not None, "closed without an answer"
        assert answer.status == status, answer
        assert answer.header("content-type") == "application/json"
        assert answer.json()["errcode"] in ("M_UNRECOGNIZED", "M_TOO_LARGE")
        assert answer.header("connection") == "close"
    assert gw.get("/health", timeout=10).status == 200


def test_transfer_encoding_identity_cannot_smuggle_a_request(gw: GatewayProcess) -> None:
    """``Transfer-Encoding: identity`` frames nothing: the body is read as the next request, which is malformed."""
    smuggled = b"GET /_debug/last HTTP/1.1\r\nHost: x\r\n\r\n"
    with RawConnection(gw.port) as conn:
        conn.send(post_with(b"Transfer-Encoding: identity\r\n", BODY + smuggled))
        first = conn.read_response()
        assert first.status == 400 and first.json()["errcode"] == "M_NOT_JSON"
        second = conn.read_response()
        assert second.status == 400, second
        assert conn.wait_closed(10) == b""


@pytest.mark.parametrize("method,target,status", [
    ("POST", NOTIFY + "?x=1", 200),
    ("POST", NOTIFY + "?x=1&access_token=abc", 200),
    ("POST", "/" + NOTIFY, 404),
    ("POST", NOTIFY + "/", 404),
    ("POST", NOTIFY.replace("notify", "%6Eotify"), 404),
    ("POST", NOTIFY.replace("/", "%2F"), 404),
    ("POST", "/_matrix/push/v1/../v1/notify", 404),
    ("POST", NOTIFY + ";jsessionid=1", 404),
    ("POST", NOTIFY + "#frag", 404),
    ("POST", "http://gateway.test" + NOTIFY, 404),
    ("POST", "/_MATRIX/push/v1/notify", 404),
    ("GET", NOTIFY + "?x=1", 405),
    ("get", "/health", 405),
    ("OPTIONS", NOTIFY, 405),
    ("GET", "/health?" + "q" * 10000, 200),
    ("GET", "/" + "a/" * 5000, 404),
    ("GET", "/tim-information/../health", 404),
    ("GET", "/tim-information%2Fv1/server/findByIk", 404),
    ("BREW", "/health", 405),
])
def test_odd_targets_get_json_answers(gw: GatewayProcess, method: str, target: str, status: int) -> None:
    body = BODY if method == "POST" else None
    answer = exchange(gw.port, http_request(method, target, body))
    assert answer is not None and answer.status == status, answer
    assert answer.header("content-type") == "application/json"
    doc = answer.json()
    if status == 200:
        assert doc in ({"rejected": []}, {"status": "ok"})
    else:
        assert doc.get("errcode") == "M_UNRECOGNIZED" or doc.get("errorCode") in ("NOT_FOUND", "UNAUTHORIZED")
