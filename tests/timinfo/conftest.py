from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fedlist_pki import ListPki, make_list_pki
from tests.fakes.userinfo import FakeUserinfo
from tests.support.gateway import GatewayProcess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vzd"
V1650 = FIXTURES / "federationList-ru-v1650.jws"
V956 = FIXTURES / "federationList-ru-v956.jws"
ROOTS = FIXTURES / "tsl-roots-ru.json"
KOMP_CA50 = FIXTURES / "GEM.KOMP-CA50-TEST-ONLY.pem"


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> ListPki:
    return make_list_pki(tmp_path_factory.mktemp("pki"))

APPS = {"com.example.log": {"type": "log"}}
REAL_TRUST = {"tsl_roots": [str(ROOTS)], "intermediates": [str(KOMP_CA50)]}
GOOD_TOKENS = {f"good{i}": f"@user{i}:hs.example" for i in range(50)}


def tim_config(userinfo_url: str, federation_list: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"apps": APPS, "logging": {"level": "DEBUG"},
            "tim_information": {"homeserver_url": userinfo_url, "userinfo_timeout_s": 1,
                                "federation_list": federation_list, **extra}}


@pytest.fixture(scope="module")
def userinfo() -> Iterator[FakeUserinfo]:
    with FakeUserinfo(GOOD_TOKENS) as fake:
        yield fake


def start_gateway(directory: Path, config: dict[str, Any], wait_ready: bool = True) -> GatewayProcess:
    directory.mkdir(parents=True, exist_ok=True)
    return GatewayProcess(directory, config).start(wait_ready=wait_ready)


def stop_gateway(gw: GatewayProcess) -> None:
    gw.stop()
    print(f"--- gateway log (port {gw.port}) ---\n{gw.log()[-20000:]}")


@pytest.fixture(scope="module")
def file_gateway(tmp_path_factory: pytest.TempPathFactory, userinfo: FakeUserinfo) -> Iterator[GatewayProcess]:
    """A gateway serving the real v1650 list from a file."""
    d = tmp_path_factory.mktemp("file-gw")
    path = d / "list.jws"
    shutil.copy(V1650, path)
    gw = start_gateway(d, tim_config(userinfo.url, {"source": "file", "path": str(path), "trust": REAL_TRUST}))
    yield gw
    stop_gateway(gw)
