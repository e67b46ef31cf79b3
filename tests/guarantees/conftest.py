from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.gateway import GatewayProcess, Response
from tests.support.redis_server import RedisServer

APP = "com.example.scripted"
BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (CI installs it via apt in .ci/run); redis backend untested here")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class Harness:
    """Files and config shared by the gateways of one test: records, attempts, gates, state."""

    def __init__(self, tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
        self.dir = tmp_path
        self.record = tmp_path / "delivered.jsonl"
        self.attempts = tmp_path / "attempts.jsonl"
        self.control = tmp_path / "control"
        self.control.mkdir(exist_ok=True)
        self.backend = backend
        self.state: dict[str, Any] = {"backend": backend, "retry_queue": True, "retry_poll_interval_s": 0.1,
                                      "retry_backoff_base_s": 0.2, "retry_backoff_max_s": 0.5}
        if backend == "sqlite":
            self.state["path"] = str(tmp_path / "state" / "gateway.db")
        elif backend == "redis":
            redis: RedisServer = request.getfixturevalue("redis_server")
            self.redis = redis
            self.state.update(redis_url=redis.url, key_prefix=f"t{uuid.uuid4().hex[:8]}:", retry_lease_s=1)

    def config(self, request_timeout_s: float = 10, **state: Any) -> dict[str, Any]:
        return {
            "server": {"request_timeout_s": request_timeout_s},
            "state": {**self.state, **state},
            "apps": {APP: {"type": "tests.support.pushkins.ScriptedPushkin", "record_file": str(self.record),
                           "attempts_file": str(self.attempts), "control_dir": str(self.control)}},
        }

    def open_gate(self, name: str) -> None:
        (self.control / name).touch()

    @staticmethod
    def lines(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]

    def delivered(self, pushkey: str | None = None) -> list[dict[str, Any]]:
        return [x for x in self.lines(self.record) if pushkey is None or x["pushkey"] == pushkey]

    def tried(self, pushkey: str) -> list[dict[str, Any]]:
        return [x for x in self.lines(self.attempts) if x["pushkey"] == pushkey]


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return Harness(tmp_path, request.param, request)


@pytest.fixture
def durable_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return Harness(tmp_path, request.param, request)


def notification(pushkey: str, event_id: str | None = "$ev1", pushkey_ts: int | None = None,
                 **extra: Any) -> dict[str, Any]:
    device: dict[str, Any] = {"app_id": APP, "pushkey": pushkey}
    if pushkey_ts is not None:
        device["pushkey_ts"] = pushkey_ts
    n: dict[str, Any] = {"room_id": "!r:hs", "devices": [device], **extra}
    if event_id is not None:
        n["event_id"] = event_id
    return n


class Background:
    """Send a request from a thread, to hold it open while the test does something else."""

    def __init__(self, fn: Callable[[], Response]) -> None:
        self.response: Response | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Response]) -> None:
        try:
            self.response = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in result()
            self.error = e

    def result(self, timeout: float = 60) -> Response:
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.response is not None, "request did not finish"
        return self.response


def metric_total(gw: GatewayProcess, name: str) -> float:
    """The sum of all samples of one metric over its labels."""
    return sum(value for _, value in gw.samples(name))
