"""TiMessengerInformation with hostile query parameters and Authorization headers: the spec's 400/401 JSON."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.fakes.userinfo import FakeUserinfo
from tests.hardening.conftest import GOOD_TOKEN, Secrets
from tests.hardening.rawhttp import RawConnection, exchange, http_request
from tests.support.gateway import GatewayProcess, Response, request
from tests.timinfo.test_api_http import check_contract

PREFIX = "/tim-information"
FIND = "/v1/server/findByIk"
IS_INS = "/v1/server/isInsurance"


def get(gw: GatewayProcess, path: str, authorization: str | None = f"Bearer {GOOD_TOKEN}") -> Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    r = request(gw.port, "GET", PREFIX + path, None, headers)
    check_contract(path, "GET", r)
    return r


IK_CASES = {
    "valid": ("ikNumber=104940005", 200, None),
    "valid, unknown extra parameter": ("ikNumber=104940005&x=%00", 200, None),
    "repeated, same value": ("ikNumber=104940005&ikNumber=104940005", 400, "INVALID_PARAMETER"),
    "repeated, second empty": ("ikNumber=104940005&ikNumber=", 400, "INVALID_PARAMETER"),
    "Arabic-Indic digits": ("ikNumber=" + quote("١٠٤٩٤٠٠٠٥"), 400, "INVALID_PARAMETER"),
    "Devanagari digits": ("ikNumber=" + quote("१०४९४०००५"), 400, "INVALID_PARAMETER"),
    "fullwidth digits": ("ikNumber=" + quote("１０４９４０００５"), 400, "INVALID_PARAMETER"),
    "superscript digits": ("ikNumber=" + quote("¹⁰⁴⁹⁴⁰⁰⁰⁵"), 400, "INVALID_PARAMETER"),
    "leading space": ("ikNumber=%20104940005", 400, "INVALID_PARAMETER"),
    "plus as space": ("ikNumber=+104940005", 400, "INVALID_PARAMETER"),
    "trailing tab": ("ikNumber=104940005%09", 400, "INVALID_PARAMETER"),
    "trailing newline": ("ikNumber=104940005%0A", 400, "INVALID_PARAMETER"),
    "trailing NUL": ("ikNumber=104940005%00", 400, "INVALID_PARAMETER"),
    "RTL mark": ("ikNumber=%E2%80%8F104940005", 400, "INVALID_PARAMETER"),
    "signed": ("ikNumber=-10494000", 400, "INVALID_PARAMETER"),
    "exponent": ("ikNumber=1.0494e8", 400, "INVALID_PARAMETER"),
    "invalid UTF-8": ("ikNumber=%C0%B1%C0%B0", 400, "INVALID_PARAMETER"),
    "very long": ("ikNumber=" + "1" * 8000, 400, "INVALID_PARAMETER"),
    "empty": ("ikNumber=", 400, "MISSING_PARAMETER"),
    "no value": ("ikNumber", 400, "MISSING_PARAMETER"),
    "wrong case name": ("IKNUMBER=104940005", 400, "MISSING_PARAMETER"),
    "name with NUL": ("ikNumber%00=104940005", 400, "MISSING_PARAMETER"),
}


@pytest.mark.parametrize("query,status,code", IK_CASES.values(), ids=IK_CASES.keys())
def test_find_by_ik_hostile_parameters(gw: GatewayProcess, query: str, status: int, code: str | None) -> None:
    r = get(gw, f"{FIND}?{query}")
    assert r.status == status, r
    if code is None:
        assert r.json() == {"serverName": "epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live"}
    else:
        assert r.json()["errorCode"] == code


SERVER_CASES = {
    "listed": ("cirosec.de", True),
    "uppercase is case-folded": ("CIROSEC.DE", True),
    "mixed case": ("CiRoSeC.dE", True),
    "with port": ("cirosec.de:8448", False),
    "IPv4": ("127.0.0.1", False),
    "IPv6 literal": ("[::1]", False),
    "IPv6 literal with port": ("[2001:db8::1]:8448", False),
    "IPv6 mapped IPv4": ("[::ffff:192.0.2.1]", False),
    "uppercase IPv6": ("[2001:DB8::1]", False),
    "punycode": ("xn--bcher-kva.example", False),
    "255 characters": (".".join(["a" * 63] * 4)[:255], False),
    "IPv6 with zone id": ("[fe80::1%25eth0]", None),
    "unbracketed IPv6": ("::1", None),
    "IPv6 without closing bracket": ("[::1", None),
    "IPv6 junk after bracket": ("[::1]x", None),
    "bad IPv6": ("[::g]", None),
    "port zero": ("cirosec.de:0", None),
    "port too big": ("cirosec.de:65536", None),
    "empty port": ("cirosec.de:", None),
    "two ports": ("cirosec.de:1:2", None),
    "256 characters": ("a" * 256, None),
    "very long": ("a" * 8000 + ".de", None),
    "RTL mark": ("%E2%80%8Fcirosec.de", None),
    "unicode host": (quote("bücher.example"), None),
    "fullwidth dot": (quote("cirosec．de"), None),
    "leading space": ("%20cirosec.de", None),
    "trailing space": ("cirosec.de%20", None),
    "trailing dot": ("cirosec.de.", None),
    "NUL": ("cirosec.de%00", None),
    "underscore": ("ciro_sec.de", None),
    "user part": ("@u:cirosec.de", None),
    "path": ("cirosec.de/x", None),
    "repeated": ("cirosec.de&serverName=cirosec.de", None),
}


@pytest.mark.parametrize("name,expected", SERVER_CASES.values(), ids=SERVER_CASES.keys())
def test_is_insurance_hostile_parameters(gw: GatewayProcess, name: str, expected: bool | None) -> None:
    r = get(gw, f"{IS_INS}?serverName={name}")
    if expected is None:
        assert r.status == 400, r
        assert r.json()["errorCode"] == "INVALID_PARAMETER"
    else:
        assert r.status == 200, r
        assert r.json() == {"isInsurance": expected}


AUTH_CASES = {
    "no header": (None, 401),
    "empty": ("", 401),
    "no scheme": (GOOD_TOKEN, 401),
    "Basic": ("Basic " + GOOD_TOKEN, 401),
    "scheme only": ("Bearer", 401),
    "scheme and space": ("Bearer ", 401),
    "tab separator": ("Bearer\t" + GOOD_TOKEN, 401),
    "token with space": (f"Bearer {GOOD_TOKEN} x", 401),
    "lowercase scheme": ("bearer " + GOOD_TOKEN, 200),
    "uppercase scheme": ("BEARER " + GOOD_TOKEN, 200),
    "two spaces": ("Bearer  " + GOOD_TOKEN, 200),
    "huge token": ("Bearer " + "A" * 12000, 401),
    "non-ASCII token": ("Bearer " + "tök\u00e9n".encode().decode("latin-1"), 401),
    "non-ASCII scheme": ("B\u00e9arer " + GOOD_TOKEN, 401),
    "quoted token": (f'Bearer "{GOOD_TOKEN}"', 401),
    "padding in the middle": ("Bearer ab=cd", 401),
    "unknown token": ("Bearer SECRET-TOKEN-hardening-unknown", 401),
}


@pytest.mark.parametrize("authorization,status", AUTH_CASES.values(), ids=AUTH_CASES.keys())
def test_hostile_authorization(gw: GatewayProcess, secrets: Secrets, authorization: str | None,
                               status: int) -> None:
    if authorization:
        secrets.add(authorization.partition(" ")[2] or authorization)
    r = get(gw, f"{FIND}?ikNumber=104940005", authorization)
    assert r.status == status, r
    if status == 401:
        assert r.json()["errorCode"] == "UNAUTHORIZED"
        assert r.headers["www-authenticate"].startswith("Bearer")


def _raw_get(gw: GatewayProcess, header_lines: bytes) -> tuple[int, dict]:
    answer = exchange(gw.port, b"GET " + (PREFIX + FIND).encode() + b"?ikNumber=104940005 HTTP/1.1\r\nHost: x\r\n"
                      + header_lines + b"\r\n")
    assert answer is not None
    return answer.status, answer.json()


def test_repeated_authorization_is_malformed(gw: GatewayProcess, userinfo: FakeUserinfo) -> None:
    """Two Authorization fields (which one did a proxy in front check?) are 401, whatever their order."""
    good, bad = f"Bearer {GOOD_TOKEN}".encode(), b"Bearer SECRET-TOKEN-hardening-other"
    for first, second in ((good, bad), (bad, good), (good, good)):
        status, doc = _raw_get(gw, b"Authorization: " + first + b"\r\nAuthorization: " + second + b"\r\n")
        assert status == 401 and doc["errorCode"] == "UNAUTHORIZED"
    assert userinfo.calls["SECRET-TOKEN-hardening-other"] == 0


def test_authorization_with_control_characters(gw: GatewayProcess) -> None:
    status, doc = _raw_get(gw, b"Authorization: Bearer \x01" + GOOD_TOKEN.encode() + b"\r\n")
    assert status == 401 and doc["errorCode"] == "UNAUTHORIZED"
    status, doc = _raw_get(gw, b"Authorization: Bearer " + GOOD_TOKEN.encode() + b"\xff\r\n")
    assert status == 401


def test_authorization_over_the_header_limit_is_431(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(http_request("GET", PREFIX + FIND + "?ikNumber=104940005", None,
                               {"Authorization": "Bearer " + "A" * 20000}))
        answer = conn.read_response()
        assert answer.status == 431 and answer.header("content-type") == "application/json"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(gw: GatewayProcess, method: str) -> None:
    r = request(gw.port, method, PREFIX + FIND + "?ikNumber=104940005", b"{}" if method != "OPTIONS" else None,
                {"Authorization": f"Bearer {GOOD_TOKEN}"})
    assert r.status == 405 and r.json()["errorCode"] == "METHOD_NOT_ALLOWED"
    assert r.headers["allow"] == "GET, HEAD"


def test_head_has_no_body(gw: GatewayProcess) -> None:
    with RawConnection(gw.port) as conn:
        conn.send(http_request("HEAD", PREFIX + FIND + "?ikNumber=104940005", None,
                               {"Authorization": f"Bearer {GOOD_TOKEN}"}) + http_request("GET", "/health"))
        head = conn.read_response(head_only=True)
        assert head.status == 200 and head.body == b""
        assert conn.read_response().json() == {"status": "ok"}  # the connection stayed in sync
