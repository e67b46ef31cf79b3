"""Run the real gateway as a subprocess on 127.0.0.1 and talk HTTP to it.

`GatewayProcess` writes a YAML config, starts ``python -m gateway --config ...`` on a free port, waits
for ``/health``, and stops it with SIGTERM (collecting its log for assertions and for failure output).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

REPO = Path(__file__).resolve().parents[2]
#: The push gateway API endpoint homeservers POST to.
NOTIFY = "/_matrix/push/v1/notify"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def wait_http_ok(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``GET path`` until it answers 200 (True); False once `proc` has exited or `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if request(port, "GET", path, timeout=2).status == 200:
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


class GatewayProcess:
    def __init__(self, tmp_path: Path, config: dict[str, Any], *, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        config = dict(config)
        server = dict(config.get("server") or {})
        server.setdefault("bind", ["127.0.0.1"])
        server["port"] = self.port
        config["server"] = server
        self.config = config
        self.dir = tmp_path
        self.config_path = tmp_path / f"gateway-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / f"gateway-{self.port}.log"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True, timeout: float = 30) -> GatewayProcess:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(self.config_path)],
                                     cwd=str(REPO), env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait_http_ok(self.proc, self.port, "/ready" if wait_ready else "/health", timeout):
            return self
        if self.proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
        self.stop()
        raise RuntimeError(f"gateway did not become ready:\n{self.log()}")

    def post(self, path: str, doc: Any, headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
        body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        return request(self.port, "POST", path, body, {"Content-Type": "application/json", **(headers or {})},
                       timeout=timeout)

    def notify(self, notification: dict[str, Any], **kw: Any) -> Response:
        return self.post(NOTIFY, {"notification": notification}, **kw)

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
        return request(self.port, "GET", path, None, headers, timeout=timeout)

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample called `name` in one scrape of /metrics, as (labels, value)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.get("/metrics").body.decode()
        return [(s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.name == name]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The value of the first sample of `name` carrying `labels` (0.0 when absent)."""
        for got, value in self.samples(name):
            if all(got.get(k) == v for k, v in (labels or {}).items()):
                return value
        return 0.0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
