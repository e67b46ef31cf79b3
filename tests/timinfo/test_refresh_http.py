"""Federation list sources end to end: fake VZD (token flow, 200/204, 5xx, slow), file reloads, persistence,
rejection of bad or older lists (the old list stays), on-demand refresh on a lookup miss."""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fedlist_pki import ListPki, generated_entries, ik_with_check, make_ca, make_signer
from tests.fakes.userinfo import FakeUserinfo
from tests.fakes.vzd import AUTH_PATH, LIST_PATH, TOKEN_PATH, FakeVzd
from tests.support.gateway import GatewayProcess, request
from tests.support.wait import eventually
from tests.timinfo.conftest import start_gateway, stop_gateway, tim_config

AUTH = {"Authorization": "Bearer good0"}


def find(gw: GatewayProcess, ik: str) -> tuple[int, Any]:
    r = request(gw.port, "GET", f"/tim-information/v1/server/findByIk?ikNumber={ik}", None, AUTH)
    return r.status, r.json()


def outcome(gw: GatewayProcess, name: str) -> float:
    return gw.metric("tim_information_federation_list_refresh_total", {"outcome": name})


@pytest.fixture
def vzd() -> Iterator[FakeVzd]:
    with FakeVzd() as fake:
        yield fake


@pytest.fixture
def gateways() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        stop_gateway(gw)


def vzd_config(userinfo: FakeUserinfo, vzd: FakeVzd, pki: ListPki, state: Path, **fl: Any) -> dict[str, Any]:
    secret = state.parent / "vzd-secret"
    secret.write_text(vzd.client_secret + "\n")
    return tim_config(userinfo.url, {
        "source": "vzd", "state_dir": str(state), "trust": pki.trust_config(),
        "refresh_interval_s": 1, "refresh_jitter": 0, "retry_interval_s": 0.2, "on_demand_min_interval_s": 0,
        "vzd": {"token_url": vzd.token_url, "base_url": vzd.url, "client_id": vzd.client_id,
                "client_secret_file": str(secret), "timeout_s": 1},
        **fl})


def start_ready(gateways: list[GatewayProcess], tmp_path: Path, cfg: dict[str, Any]) -> GatewayProcess:
    """Start without waiting for /ready (the first list arrives asynchronously), then wait for it."""
    gw = start_gateway(tmp_path / "gw", cfg, wait_ready=False)
    gateways.append(gw)
    eventually(lambda: gw.get("/ready").status == 200, "ready")
    return gw


def test_vzd_token_flow_updates_and_persists(tmp_path: Path, userinfo: FakeUserinfo, vzd: FakeVzd,
                                             test_pki: ListPki, gateways: list[GatewayProcess]) -> None:
    vzd.serve(test_pki.sign(5), 5)
    gw = start_ready(gateways, tmp_path, vzd_config(userinfo, vzd, test_pki, tmp_path / "state"))
    assert find(gw, "104940005") == (200, {"serverName": "kk.example.de"})
    assert vzd.calls[TOKEN_PATH] == 1 and vzd.calls[AUTH_PATH] == 1
    assert (tmp_path / "state" / "federation-list.jws").read_bytes() == vzd.jws  # persisted as received
    assert gw.metric("tim_information_federation_list_version") == 5

    # 204 while unchanged; the client sends its version.
    eventually(lambda: outcome(gw, "unchanged") >= 1, "an unchanged refresh")
    assert "5" in vzd.list_versions_asked

    # A newer list is picked up by the periodic refresh.
    entries = generated_entries(10) + [{"domain": "new.example.de", "isInsurance": True,
                                       "ik": [ik_with_check("10777777")]}]
    vzd.serve(test_pki.sign(6, entries), 6)
    eventually(lambda: gw.metric("tim_information_federation_list_version") == 6, "v6")
    assert find(gw, ik_with_check("10777777")) == (200, {"serverName": "new.example.de"})
    assert find(gw, "104940005")[0] == 404  # the old list's data is gone

    # Tokens are reused across refreshes (one token + one provider token for all list fetches so far).
    assert vzd.calls[LIST_PATH] >= 3 and vzd.calls[TOKEN_PATH] == 1 and vzd.calls[AUTH_PATH] == 1

    # Revoked tokens: the 401 makes the client fetch new ones and retry.
    vzd.revoke_tokens()
    before = outcome(gw, "unchanged")
    eventually(lambda: outcome(gw, "unchanged") > before, "refresh with renewed tokens")
    assert vzd.calls[TOKEN_PATH] == 2


def _rejects(gw: GatewayProcess, vzd: FakeVzd, raw: bytes, version: int, reason: str) -> None:
    before = outcome(gw, reason)
    current = gw.metric("tim_information_federation_list_version")
    vzd.serve(raw, version)
    eventually(lambda: outcome(gw, reason) > before, f"a {reason} outcome")
    assert gw.metric("tim_information_federation_list_version") == current
    assert find(gw, "104940005") == (200, {"serverName": "kk.example.de"})


def test_bad_lists_and_outages_keep_the_old_list(tmp_path: Path, userinfo: FakeUserinfo, vzd: FakeVzd,
                                                 test_pki: ListPki, gateways: list[GatewayProcess]) -> None:
    vzd.serve(test_pki.sign(10), 10)
    gw = start_ready(gateways, tmp_path, vzd_config(userinfo, vzd, test_pki, tmp_path / "state"))
    vzd.ignore_version = True

    _rejects(gw, vzd, test_pki.sign(9), 9, "older_version")
    raw = bytearray(test_pki.sign(11))
    raw[-5] = ord("A") if raw[-5] != ord("A") else ord("B")
    _rejects(gw, vzd, bytes(raw), 11, "bad_signature")
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = make_signer(test_pki.ca, not_before=now - datetime.timedelta(days=90),
                          not_after=now - datetime.timedelta(days=1))
    _rejects(gw, vzd, test_pki.sign(12, signer=expired), 12, "cert_not_valid")
    foreign = make_signer(make_ca("TEST.KOMP-CA", issuer=make_ca("OTHER.RCA")))
    _rejects(gw, vzd, test_pki.sign(13, signer=foreign), 13, "untrusted_chain")
    _rejects(gw, vzd, test_pki.sign(14, x5c=[]), 14, "missing_x5c")
    _rejects(gw, vzd, b"<html>oops</html>", 15, "malformed")

    vzd.serve(test_pki.sign(10), 10)
    vzd.fail_status = 503
    before = outcome(gw, "fetch_failed")
    eventually(lambda: outcome(gw, "fetch_failed") > before, "fetch_failed on 503")
    vzd.fail_status = None
    vzd.delay_s = 1.5  # longer than vzd.timeout_s
    before = outcome(gw, "fetch_failed")
    eventually(lambda: outcome(gw, "fetch_failed") > before, "fetch_failed on a slow VZD")
    assert find(gw, "104940005") == (200, {"serverName": "kk.example.de"})
    assert gw.get("/ready").status == 200
    vzd.delay_s = 0
    stop_gateway(gateways.pop())

    # Restart while the VZD is down: the persisted list is loaded and served.
    vzd.fail_status = 500
    gw2 = start_gateway(tmp_path / "gw2", vzd_config(userinfo, vzd, test_pki, tmp_path / "state"))
    gateways.append(gw2)
    assert gw2.metric("tim_information_federation_list_version") == 10
    assert find(gw2, "104940005") == (200, {"serverName": "kk.example.de"})


def test_no_list_means_not_ready_and_503(tmp_path: Path, userinfo: FakeUserinfo, vzd: FakeVzd,
                                         test_pki: ListPki, gateways: list[GatewayProcess]) -> None:
    vzd.fail_status = 500
    gw = start_gateway(tmp_path / "gw", vzd_config(userinfo, vzd, test_pki, tmp_path / "state"), wait_ready=False)
    gateways.append(gw)
    eventually(lambda: outcome(gw, "fetch_failed") >= 1, "a failed fetch")
    r = gw.get("/ready")
    assert r.status == 503 and b"no verified federation list" in r.body
    status, body = find(gw, "104940005")
    assert status == 503 and body["errorCode"] == "UNAVAILABLE"


def test_on_demand_refresh_on_miss_is_rate_limited(tmp_path: Path, userinfo: FakeUserinfo, vzd: FakeVzd,
                                                   test_pki: ListPki, gateways: list[GatewayProcess]) -> None:
    vzd.serve(test_pki.sign(20), 20)
    cfg = vzd_config(userinfo, vzd, test_pki, tmp_path / "state", refresh_interval_s=3600,
                     on_demand_min_interval_s=3600)
    gw = start_ready(gateways, tmp_path, cfg)
    fetches = vzd.calls[LIST_PATH]
    new_ik = ik_with_check("10555555")
    vzd.serve(test_pki.sign(21, [{"domain": "late.example.de", "isInsurance": True, "ik": [new_ik]}]), 21)
    assert find(gw, new_ik)[0] == 404  # the miss triggers one refresh
    eventually(lambda: find(gw, new_ik)[0] == 200, "the on-demand refresh")
    for _ in range(10):
        find(gw, "108433248")  # more misses within the rate limit
    assert vzd.calls[LIST_PATH] == fetches + 1


def test_file_source_reloads_on_change(tmp_path: Path, userinfo: FakeUserinfo, test_pki: ListPki,
                                       gateways: list[GatewayProcess]) -> None:
    path = tmp_path / "list.jws"
    path.write_bytes(test_pki.sign(30))
    gw = start_gateway(tmp_path / "gw", tim_config(userinfo.url, {
        "source": "file", "path": str(path), "trust": test_pki.trust_config(), "file_poll_interval_s": 0.1}))
    gateways.append(gw)
    assert gw.metric("tim_information_federation_list_version") == 30
    tmp = tmp_path / "new.jws"
    tmp.write_bytes(test_pki.sign(31, [{"domain": "file.example.de", "isInsurance": True,
                                        "ik": [ik_with_check("10666666")]}]))
    shutil.move(tmp, path)
    eventually(lambda: gw.metric("tim_information_federation_list_version") == 31, "reload")
    assert find(gw, ik_with_check("10666666")) == (200, {"serverName": "file.example.de"})
    before = outcome(gw, "older_version")
    tmp.write_bytes(test_pki.sign(29))
    shutil.move(tmp, path)
    eventually(lambda: outcome(gw, "older_version") > before, "older list rejected")
    assert gw.metric("tim_information_federation_list_version") == 31
