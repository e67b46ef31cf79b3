"""Token checks with several homeservers and a restricted set of allowed server names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.userinfo import FakeUserinfo
from tests.support.gateway import GatewayProcess, free_port, request
from tests.support.wait import eventually
from tests.timinfo.conftest import REAL_TRUST, V1650, start_gateway, stop_gateway, tim_config

PATH = "/tim-information/v1/server/isInsurance?serverName=cirosec.de"


@pytest.fixture(scope="module")
def second_hs() -> Iterator[FakeUserinfo]:
    with FakeUserinfo({"remote-ok": "@bob:other.example", "local-ok": "@carol:hs.example"}) as fake:
        yield fake


@pytest.fixture(scope="module")
def multi_gateway(tmp_path_factory: pytest.TempPathFactory, second_hs: FakeUserinfo) -> Iterator[GatewayProcess]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    cfg = tim_config(dead, {"source": "file", "path": str(V1650), "trust": REAL_TRUST},
                     allowed_server_names=["HS.example"])
    cfg["tim_information"]["homeserver_url"] = [dead, second_hs.url]
    gw = start_gateway(Path(tmp_path_factory.mktemp("multi")), cfg)
    yield gw
    stop_gateway(gw)


def status(gw: GatewayProcess, token: str) -> int:
    return request(gw.port, "GET", PATH, None, {"Authorization": f"Bearer {token}"}).status


def test_valid_at_a_later_homeserver_is_accepted(multi_gateway: GatewayProcess) -> None:
    assert status(multi_gateway, "local-ok") == 200


def test_user_of_a_server_not_allowed_is_401(multi_gateway: GatewayProcess) -> None:
    assert status(multi_gateway, "remote-ok") == 401


def test_unknown_token_while_one_homeserver_is_down_is_503(multi_gateway: GatewayProcess) -> None:
    # One homeserver said "unknown", the other could not be asked: the token may be valid there.
    assert status(multi_gateway, "who-knows") == 503


def test_distinct_token_flood_is_bounded(tmp_path: Path) -> None:
    """Every unknown token costs a homeserver request; beyond max_concurrent_checks new ones get 503."""
    import threading

    with FakeUserinfo({"t1": "@a:hs.example", "t2": "@b:hs.example"}) as hs:
        cfg = tim_config(hs.url, {"source": "file", "path": str(V1650), "trust": REAL_TRUST},
                         max_concurrent_checks=1)
        gw = start_gateway(tmp_path / "flood", cfg)
        try:
            hs.mode, hs.delay_s = "slow", 0.8  # below userinfo_timeout_s (1 s)
            first: list[int] = []
            t = threading.Thread(target=lambda: first.append(status(gw, "t1")))
            t.start()
            eventually(lambda: hs.calls.get("t1"), "the first check at the homeserver")
            assert status(gw, "t2") == 503
            t.join()
            hs.mode, hs.delay_s = "ok", 0.0
            assert first == [200]
            assert status(gw, "t2") == 200
            assert gw.metric("tim_information_token_checks_total", {"result": "overloaded"}) == 1
        finally:
            stop_gateway(gw)
