from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support.gateway import GatewayProcess

# CI runs must be reproducible: the same examples every run (locally, hypothesis keeps exploring).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")



@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start gateways with a given config dict; all are stopped (and their log shown on failure) at the end."""
    started: list[GatewayProcess] = []

    def make(config: dict[str, Any], *, start: bool = True, **kw: Any) -> GatewayProcess:
        gw = GatewayProcess(tmp_path, config, **kw)
        started.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in started:
        gw.stop()
        print(f"--- gateway log (port {gw.port}) ---\n{gw.log()[-20000:]}")


LOG_APPS = {
    "com.example.log": {"type": "log"},
    "com.example.glob.*": {"type": "log"},
    "com.example.g?ob.x": {"type": "log"},
}


@pytest.fixture
def log_gateway(gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateway_factory({"apps": LOG_APPS, "debug": True})
