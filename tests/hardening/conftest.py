"""Two real gateways for the hostile-input tests, plus the registry of strings that must never be logged.

`gw` has a long idle timeout (many held connections, pipelining, odd input); `gw_short` has a 2 s idle
timeout so the slow-client tests see connections being cut. Both serve the log pushkin and the
TiMessengerInformation API (real v1650 list, fake homeserver userinfo) and log at DEBUG, so the final
log-leak test (always run last) sees everything the gateway could possibly write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.userinfo import FakeUserinfo
from tests.support.gateway import GatewayProcess
from tests.timinfo.conftest import REAL_TRUST, V1650

MAX_BODY = 256 * 1024
#: Bearer tokens the fake homeserver knows; distinctive so the log-leak test can grep for them.
TOKENS = {"SECRET-TOKEN-hardening-good-1": "@alice:hs.example", "SECRET-TOKEN-hardening-good-2": "@bob:hs.example"}
GOOD_TOKEN = next(iter(TOKENS))
APPS = {"com.example.log": {"type": "log"}, "com.example.glob.*": {"type": "log"}}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log-leak check greps the logs after everything else here has run."""
    items.sort(key=lambda item: item.path.name == "test_log_leak.py")


class Secrets:
    """Pushkeys, tokens and content strings sent to the gateways; none may appear in their logs."""

    def __init__(self) -> None:
        self.values: set[str] = set(TOKENS)

    def add(self, value: str) -> str:
        self.values.add(value)
        return value


@pytest.fixture(scope="session")
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture(scope="session")
def userinfo() -> Iterator[FakeUserinfo]:
    with FakeUserinfo(TOKENS) as fake:
        yield fake


def _config(userinfo: FakeUserinfo, idle_timeout_s: float) -> dict[str, Any]:
    return {"apps": APPS, "logging": {"level": "DEBUG"},
            "server": {"max_body_bytes": MAX_BODY, "idle_timeout_s": idle_timeout_s},
            "tim_information": {"homeserver_url": userinfo.url, "userinfo_timeout_s": 2,
                                "federation_list": {"source": "file", "path": str(V1650), "trust": REAL_TRUST}}}


def _run(directory: Path, config: dict[str, Any]) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(directory, config).start()
    try:
        yield gw
    finally:
        gw.stop()
        print(f"--- gateway log (port {gw.port}) ---\n{gw.log()[-20000:]}")


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory, userinfo: FakeUserinfo) -> Iterator[GatewayProcess]:
    yield from _run(tmp_path_factory.mktemp("hardening-gw"), _config(userinfo, 60))


@pytest.fixture(scope="session")
def gw_short(tmp_path_factory: pytest.TempPathFactory, userinfo: FakeUserinfo) -> Iterator[GatewayProcess]:
    yield from _run(tmp_path_factory.mktemp("hardening-gw-short"), _config(userinfo, 2))


def notify_body(*devices: dict[str, Any], **fields: Any) -> bytes:
    import orjson

    return orjson.dumps({"notification": {"event_id": "$e", "room_id": "!r:hs", "devices": list(devices),
                                          **fields}})
