"""Shared bench plumbing: start servers, read a process's CPU time, drive load with wrk.

wrk (Debian package) is the load generator: it is written in C, so the numbers measure our server and
not the client. CPU per request is the server process's utime+stime delta from /proc over the run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.gateway import REPO, free_port


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc): server CPU independent of what else loads the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def start_gateway(config_yaml: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    path = Path(tempfile.mkdtemp()) / "bench.yaml"
    path.write_text(config_yaml.replace("$PORT", str(port)))
    return start([sys.executable, "-m", "gateway", "--config", str(path)], port), port


def wrk(url: str, body: bytes | None, *, seconds: int = 10, connections: int = 50,
        headers: dict[str, str] | None = None) -> dict[str, float]:
    """One wrk run (POST `body` if given, else GET): req/s, request count, p50/p99 ms, non-2xx count."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    script = Path(tempfile.mkdtemp()) / "req.lua"
    script.write_text(lua_script(body))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {"req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": float(re.search(r"(\d+) requests in", out).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            res[f"p{pct}_ms"] = float(m.group(1)) * scale
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return res


#: In a bench body, this marker is replaced by a value unique to each request (and each wrk run): the
#: gateway de-duplicates by event_id, so a bench that repeated one event would measure only the dedup path.
UNIQUE = "@UNIQUE@"


def lua_script(body: bytes | None) -> str:
    if body is None:
        return ""
    text = body.decode()
    head = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    if UNIQUE not in text:
        return head + f"wrk.body = [==[{text}]==]\n"
    before, after = text.split(UNIQUE, 1)
    run = os.urandom(4).hex()
    return head + (f"local n = 0\nlocal before = [==[{before}]==]\nlocal after = [==[{after}]==]\n"
                   f"request = function()\n  n = n + 1\n"
                   f"  return wrk.format(nil, nil, nil, before .. \"{run}-\" .. n .. after)\nend\n")


def measure(proc: subprocess.Popen[bytes], url: str, body: bytes | None, **kw: object) -> dict[str, float]:
    wrk(url, body, seconds=2, connections=10)  # warm-up
    before = cpu_seconds(proc.pid)
    res = wrk(url, body, **kw)  # type: ignore[arg-type]
    res["cpu_ms_per_req"] = (cpu_seconds(proc.pid) - before) * 1000 / max(1.0, res["requests"])
    return res


def show(name: str, res: dict[str, float]) -> None:
    print(f"{name:<34} {res['req_s']:>9.0f} req/s  p50 {res.get('p50_ms', 0):6.2f} ms  "
          f"p99 {res.get('p99_ms', 0):6.2f} ms  CPU {res['cpu_ms_per_req']:.3f} ms/req  non-2xx {res['non_2xx']:.0f}")


def ref_before_guarantees() -> str:
    """The git ref of the tree just before de-duplication/retry queue were added (for before/after benches)."""
    added = subprocess.check_output(["git", "log", "--diff-filter=A", "--format=%H", "--", "gateway/guarantees.py"],
                                    cwd=REPO, text=True).split()
    return f"{added[-1]}^"
