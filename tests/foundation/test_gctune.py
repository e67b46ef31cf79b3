"""GC settings are applied once the gateway has started: fewer young collections per request (counted
with the prometheus client's own ``python_gc_collections_total``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.support.gateway import GatewayProcess

APPS = {"com.example.log": {"type": "log"}}


def test_apply_freezes_and_sets_the_young_threshold() -> None:
    out = subprocess.run([sys.executable, "-c", "import gc; from gateway import gctune; gctune.apply(12345); "
                          "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["12345", "True"]


def _young_collections(gateway_factory: Callable[..., GatewayProcess], threshold: int) -> float:
    gw = gateway_factory({"apps": APPS, "server": {"gc_threshold": threshold}, "logging": {"access_log": False}})

    def young() -> float:
        return gw.metric("python_gc_collections_total", {"generation": "0"})
    before = young()
    for i in range(1000):
        assert gw.notify({"event_id": f"$e{i}", "devices": [{"app_id": "com.example.log",
                                                              "pushkey": f"k{i}"}]}).status == 200
    collections = young() - before
    gw.stop()
    return collections


def test_configured_threshold_reaches_the_running_gateway(gateway_factory: Callable[..., GatewayProcess]) -> None:
    python_default = _young_collections(gateway_factory, 700)
    tuned = _young_collections(gateway_factory, 50_000)
    assert python_default >= 10  # CPython's default collects every few dozen requests...
    assert tuned * 5 <= python_default  # ...and the tuned gateway many times less often
