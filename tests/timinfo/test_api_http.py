"""Black-box tests of the TiMessengerInformation API on a running gateway, validated against the YAML."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

from tests.fakes.userinfo import FakeUserinfo
from tests.support.gateway import GatewayProcess, Response, request

SPEC_PATHS = [Path(__file__).resolve().parents[3] / "shared" / "reference" / "TiMessengerInformation.yaml",
              Path("/work/shared/reference/TiMessengerInformation.yaml")]
SPEC_PATH = next((p for p in SPEC_PATHS if p.exists()), SPEC_PATHS[0])
OPENAPI = OpenAPI.from_file_path(str(SPEC_PATH))
ERROR_SCHEMA = OAS30Validator(yaml.safe_load(SPEC_PATH.read_text())["components"]["schemas"]["Error"])
PREFIX = "/tim-information"
_tokens = iter(range(10**6))


def fresh_good(userinfo: FakeUserinfo) -> str:
    token = f"fresh{next(_tokens)}"
    userinfo.tokens[token] = "@someone:hs.example"
    return token


def get(gw: GatewayProcess, path: str, token: str | None = "good0", method: str = "GET",
        headers: dict[str, str] | None = None) -> Response:
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    r = request(gw.port, method, PREFIX + path, None, h)
    check_contract(path, method, r)
    return r


def check_contract(path: str, method: str, r: Response) -> None:
    """Declared statuses must validate against the YAML; undeclared ones (405, 503) carry the Error schema."""
    if method == "HEAD":
        return
    assert r.headers["content-type"] == "application/json"
    route, _, query = path.partition("?")
    declared = {"/": {200}, "": {200}, "/v1/server/findByIk": {200, 400, 401, 404},
                "/v1/server/isInsurance": {200, 400, 401}}.get(route, set())
    if method == "GET" and r.status in declared:
        args: dict[str, Any] = {}
        for part in filter(None, query.split("&")):
            k, _, v = part.partition("=")
            args[k] = v
        req = MockRequest("https://tobereplaced.de", "get", PREFIX + (route or "/"), args=args)
        OPENAPI.validate_response(req, MockResponse(r.body, status_code=r.status, content_type="application/json"))
    if r.status != 200:
        ERROR_SCHEMA.validate(r.json())


@pytest.mark.parametrize("path", ["", "/"])
def test_info(file_gateway: GatewayProcess, path: str) -> None:
    r = get(file_gateway, path)
    assert r.status == 200
    doc = r.json()
    assert doc["version"] == "1.0.0" and doc["title"]


def test_find_by_ik_real_fixture(file_gateway: GatewayProcess) -> None:
    r = get(file_gateway, "/v1/server/findByIk?ikNumber=104940005")
    assert r.status == 200
    assert r.json() == {"serverName": "epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live"}
    assert get(file_gateway, "/v1/server/findByIk?ikNumber=101575519").json() == {
        "serverName": "tim-test-evt.tk-online.net"}


def test_find_by_ik_listed_with_bad_check_digit_still_found(file_gateway: GatewayProcess) -> None:
    r = get(file_gateway, "/v1/server/findByIk?ikNumber=104940000")
    assert r.json() == {"serverName": "epa-proxy.tim-pro.tim.fg1.ffm.osc.live"}


def test_find_by_ik_unknown_is_404(file_gateway: GatewayProcess) -> None:
    r = get(file_gateway, "/v1/server/findByIk?ikNumber=108433248")
    assert r.status == 404
    assert r.json()["errorCode"] == "NOT_FOUND"


@pytest.mark.parametrize("query,code", [
    ("", "MISSING_PARAMETER"), ("?ikNumber=", "MISSING_PARAMETER"), ("?iknumber=104940005", "MISSING_PARAMETER"),
    ("?ikNumber=10494000", "INVALID_PARAMETER"), ("?ikNumber=1049400050", "INVALID_PARAMETER"),
    ("?ikNumber=10494000x", "INVALID_PARAMETER"), ("?ikNumber=%EF%BC%91%EF%BC%90%EF%BC%94", "INVALID_PARAMETER"),
    ("?ikNumber=104940005&ikNumber=101575519", "INVALID_PARAMETER"), ("?ikNumber=%FF%FE", "INVALID_PARAMETER"),
    ("?ikNumber=104940005%00", "INVALID_PARAMETER"),
])
def test_find_by_ik_bad_input(file_gateway: GatewayProcess, query: str, code: str) -> None:
    r = get(file_gateway, "/v1/server/findByIk" + query)
    assert r.status == 400
    assert r.json()["errorCode"] == code


@pytest.mark.parametrize("name,expected", [
    ("cirosec.de", True), ("CiroSec.DE", True), ("epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live", True),
    ("tim.test.gematik.de", False), ("unknown.example.org", False), ("cirosec.de:8448", False),
])
def test_is_insurance(file_gateway: GatewayProcess, name: str, expected: bool) -> None:
    r = get(file_gateway, f"/v1/server/isInsurance?serverName={name}")
    assert r.status == 200
    assert r.json() == {"isInsurance": expected}


@pytest.mark.parametrize("query", ["", "?serverName=", "?serverName=bad%20name", "?serverName=a_b.de",
                                   "?serverName=x.de:99999", "?serverName=x.de&serverName=y.de"])
def test_is_insurance_bad_input(file_gateway: GatewayProcess, query: str) -> None:
    assert get(file_gateway, "/v1/server/isInsurance" + query).status == 400


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer"},
                                     {"Authorization": "Bearer a b"}, {"Authorization": "Bearer " + "a" * 5000},
                                     {"Authorization": "Bearer tok\u00e9n".encode().decode("latin-1")}])
def test_missing_or_malformed_token_is_401(file_gateway: GatewayProcess, headers: dict[str, str]) -> None:
    r = get(file_gateway, "/v1/server/findByIk?ikNumber=104940005", token=None, headers=headers)
    assert r.status == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_unknown_token_is_401_and_briefly_cached(file_gateway: GatewayProcess, userinfo: FakeUserinfo) -> None:
    for _ in range(3):
        assert get(file_gateway, "/v1/server/isInsurance?serverName=cirosec.de", token="nope1").status == 401
    assert userinfo.calls["nope1"] == 1


def test_good_token_is_cached(file_gateway: GatewayProcess, userinfo: FakeUserinfo) -> None:
    token = fresh_good(userinfo)
    for _ in range(5):
        assert get(file_gateway, "/v1/server/findByIk?ikNumber=104940005", token=token).status == 200
    assert userinfo.calls[token] == 1


def test_concurrent_checks_of_one_token_are_coalesced(file_gateway: GatewayProcess, userinfo: FakeUserinfo) -> None:
    token = fresh_good(userinfo)
    userinfo.mode, userinfo.delay_s = "slow", 0.5
    results: list[int] = []
    try:
        threads = [threading.Thread(target=lambda: results.append(
            get(file_gateway, "/v1/server/isInsurance?serverName=cirosec.de", token=token).status)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        userinfo.mode, userinfo.delay_s = "ok", 0.0
    assert results == [200] * 8
    assert userinfo.calls[token] == 1


def test_homeserver_error_is_503_and_not_cached(file_gateway: GatewayProcess, userinfo: FakeUserinfo) -> None:
    token = fresh_good(userinfo)
    userinfo.mode = "error"
    try:
        r = get(file_gateway, "/v1/server/findByIk?ikNumber=104940005", token=token)
    finally:
        userinfo.mode = "ok"
    assert r.status == 503 and "retry-after" in r.headers
    assert get(file_gateway, "/v1/server/findByIk?ikNumber=104940005", token=token).status == 200


def test_homeserver_timeout_is_503(file_gateway: GatewayProcess, userinfo: FakeUserinfo) -> None:
    token = fresh_good(userinfo)
    userinfo.mode, userinfo.delay_s = "slow", 2.5  # userinfo_timeout_s is 1
    try:
        r = get(file_gateway, "/", token=token)
    finally:
        userinfo.mode, userinfo.delay_s = "ok", 0.0
    assert r.status == 503
    assert r.json()["errorCode"] == "UNAVAILABLE"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(file_gateway: GatewayProcess, method: str) -> None:
    r = get(file_gateway, "/v1/server/findByIk?ikNumber=104940005", method=method)
    assert r.status == 405
    assert "GET" in r.headers["allow"]


def test_head_is_allowed(file_gateway: GatewayProcess) -> None:
    r = get(file_gateway, "/v1/server/findByIk?ikNumber=104940005", method="HEAD")
    assert r.status == 200 and r.body == b""


@pytest.mark.parametrize("path", ["/v1", "/v1/server", "/v1/server/findByIk/", "/v2/server/findByIk",
                                  "/v1/server/FINDBYIK", "/x"])
def test_unknown_paths_are_404(file_gateway: GatewayProcess, path: str) -> None:
    r = get(file_gateway, path)
    assert r.status == 404 and r.json()["errorCode"] == "NOT_FOUND"


def test_metrics_and_ready(file_gateway: GatewayProcess) -> None:
    assert file_gateway.get("/ready").status == 200
    assert file_gateway.metric("tim_information_federation_list_version") == 1650
    assert file_gateway.metric("tim_information_federation_list_entries") == 277
    assert file_gateway.metric("tim_information_federation_list_insurers") == 18
    assert file_gateway.metric("tim_information_federation_list_age_seconds") >= 0
    assert file_gateway.metric("tim_information_requests_total", {"endpoint": "findByIk", "status": "200"}) >= 1
    assert file_gateway.metric("tim_information_token_checks_total", {"result": "valid"}) >= 1


def test_bundled_sample_config_serves_without_shared_files(tmp_path: Path, userinfo: FakeUserinfo) -> None:
    from tests.timinfo.conftest import start_gateway, stop_gateway, tim_config

    gw = start_gateway(tmp_path, tim_config(userinfo.url, {
        "source": "file", "path": "bundled:federationList-ru-v1650.jws",
        "trust": {"tsl_roots": ["bundled:tsl-roots-ru.json"], "intermediates": ["bundled:GEM.KOMP-CA50-TEST-ONLY.pem"]}}))
    try:
        r = get(gw, "/v1/server/findByIk?ikNumber=104940005")
        assert r.json() == {"serverName": "epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live"}
    finally:
        stop_gateway(gw)
