"""FCM path benchmark: notify → gateway process → HTTPS → fake FCM (separate process), all on 127.0.0.1.

Measures (1) pushes/s and gateway CPU ms per push under saturation (wrk, closed loop) and (2) notify
latency percentiles at a fixed 100 requests/s (open loop, one keep-alive connection).
Pushes are counted at the fake FCM, not at the client, so a silently dropped push cannot inflate them.

    /work/venv/bin/python bench/fcm_bench.py [--duration 10] [--connections 32] [--max-connections 50]
                                             [--devices 1] [--rate 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import UNIQUE, cpu_seconds, wrk  # noqa: E402
from tests.fakes.fcm import FakeGoogle, make_service_account  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.tls import CertFiles, make_ca  # noqa: E402

APP = "org.example.bench"
NOTIFICATION = {"notification": {
    "event_id": "$bench:hs", "room_id": "!room:hs", "type": "m.room.encrypted", "sender": "@alice:hs",
    "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "A" * 400, "device_id": "D",
                "sender_key": "k" * 43, "session_id": "s" * 43},
    "counts": {"unread": 1}, "devices": [{"app_id": APP, "pushkey": "bench-token-" + "x" * 140}]}}


def fake_main(cert: CertFiles, sa_path: str, conn: multiprocessing.connection.Connection) -> None:
    fake = FakeGoogle(cert).start()
    conn.send(fake.token_uri)
    sa_info = conn.recv()
    from tests.fakes.fcm import ServiceAccount

    fake.add_account(ServiceAccount(Path(sa_path), *sa_info))
    while True:
        cmd = conn.recv()
        if cmd == "count":
            conn.send(len(fake.sends))
        else:
            fake.stop()
            return


def saturate(port: int, duration: int, connections: int, devices: int = 1) -> dict[str, float]:
    doc = json.loads(json.dumps(NOTIFICATION))
    doc["notification"]["devices"] = [{"app_id": APP, "pushkey": f"bench-token-{i}-" + "x" * 140}
                                      for i in range(devices)]
    doc["notification"]["event_id"] = "$" + UNIQUE + ":hs"  # a new event per request: no de-duplication
    return wrk(f"http://127.0.0.1:{port}/_matrix/push/v1/notify", json.dumps(doc).encode(), seconds=duration,
               connections=connections)


def fixed_rate(port: int, rate: float, count: int) -> list[float]:
    run = os.urandom(4).hex()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        doc = {"notification": {**NOTIFICATION["notification"], "event_id": f"$fixed-{run}-{i}:hs"}}
        body = json.dumps(doc).encode()
        t0 = time.perf_counter()
        conn.request("POST", "/_matrix/push/v1/notify", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        latencies.append(time.perf_counter() - t0)
        if resp.status != 200:
            raise RuntimeError(f"notify answered {resp.status}")
    conn.close()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--max-connections", type=int, default=50)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--devices", type=int, default=1, help="devices per notify in the saturation run")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="fcm-bench-"))
    ca = make_ca(tmp)
    cert = ca.issue(tmp, "fake-google", ("127.0.0.1",))
    parent, child = multiprocessing.Pipe()
    sa_dummy = tmp / "placeholder"
    proc = multiprocessing.Process(target=fake_main, args=(cert, str(sa_dummy), child), daemon=True)
    proc.start()
    token_uri = parent.recv()
    sa = make_service_account(tmp, token_uri)
    parent.send((sa.client_email, sa.key_id, sa.public_key_pem))
    fcm_url = token_uri.rsplit("/", 1)[0]
    gw = GatewayProcess(tmp, {
        "apps": {APP: {"type": "fcm", "service_account_file": str(sa.path), "fcm_url": fcm_url,
                       "ca_file": str(ca.cert_path), "max_connections": args.max_connections}},
        "logging": {"level": "WARNING", "access_log": False}})
    gw.start()
    try:
        assert gw.notify(NOTIFICATION["notification"]).status == 200
        saturate(gw.port, 2, args.connections)  # warm-up: pool filled, code paths hot
        parent.send("count")
        sends0 = parent.recv()
        cpu0, t0 = cpu_seconds(gw.proc.pid), time.perf_counter()  # type: ignore[union-attr]
        load = saturate(gw.port, args.duration, args.connections, args.devices)
        cpu1, t1 = cpu_seconds(gw.proc.pid), time.perf_counter()  # type: ignore[union-attr]
        parent.send("count")
        pushes = parent.recv() - sends0
        lat = fixed_rate(gw.port, args.rate, int(args.rate * args.duration))
        lat.sort()
        pct = {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000 for p in (50, 90, 99)}
        print(f"cores: {os.cpu_count()} (gateway, fake FCM and wrk share them)")
        print(f"saturation: wrk -c{args.connections} {args.duration}s, {args.devices} device(s)/notify, "
              f"max_connections={args.max_connections}")
        print(f"  notify req/s (wrk):      {load['req_s']:.0f}  non-2xx: {load['non_2xx']:.0f}")
        print(f"  pushes/s (at fake FCM):  {pushes / (t1 - t0):.0f}")
        print(f"  gateway CPU ms/push:     {(cpu1 - cpu0) * 1000 / max(1, pushes):.3f}")
        print(f"fixed rate {args.rate:.0f} req/s, {len(lat)} requests, one keep-alive connection:")
        print(f"  latency ms p50={pct[50]:.2f} p90={pct[90]:.2f} p99={pct[99]:.2f} "
              f"mean={statistics.mean(lat) * 1000:.2f}")
    finally:
        gw.stop()
        parent.send("stop")
        proc.join(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
