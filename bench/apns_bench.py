"""APNs path throughput: notify → gateway → aioapns (HTTP/2+TLS) → fake APNs, 1 and 3 devices per request.

Run: `python bench/apns_bench.py [seconds]`. wrk drives the gateway; the fake APNs is Node's built-in
http2 server (bench/fake_apns.mjs) so the fake is not the bottleneck. Prints pushes/s and the gateway's CPU
ms per request and per push, and checks the fake saw every push. Targets: >= 2500 pushes/s, <= 0.35 ms CPU
per single-device notify.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from bench.common import REPO, UNIQUE, free_port, measure, show, start_gateway
from tests.fakes.apns import make_p8
from tests.support.tls import make_ca


def notify(devices: int) -> bytes:
    return orjson.dumps({"notification": {
        "event_id": "$" + UNIQUE, "room_id": "!slw48wfj34rtnrf:example.com", "type": "m.room.message",
        "sender": "@exampleuser:matrix.org", "sender_display_name": "Major Tom", "room_name": "Mission Control",
        "prio": "high", "content": {"msgtype": "m.text", "body": "I'm floating in a most peculiar way."},
        "counts": {"unread": 2, "missed_calls": 1},
        "devices": [{"app_id": "org.example.ios", "pushkey": base64.b64encode(bytes([i + 1]) * 32).decode(),
                     "pushkey_ts": 12345678, "data": {}, "tweaks": {"sound": "bing"}} for i in range(devices)]}})


CONFIG = """
server: {port: $PORT}
logging: {level: WARNING, access_log: false}
apps:
  org.example.ios:
    type: apns
    keyfile: %(p8)s
    key_id: ABC123DEFG
    team_id: TEAM456789
    topic: org.example.ios
    apns_url: https://localhost:%(apns_port)d
    ca_file: %(ca)s
    max_connections: %(conns)d
    inflight_request_limit: 100000
  org.example.log: {type: log}
"""


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    conns = int(os.environ.get("APNS_CONNECTIONS", "2"))
    if shutil.which("node") is None:
        raise SystemExit("node not found")
    d = Path(tempfile.mkdtemp())
    ca = make_ca(d)
    server = ca.issue(d, "fake-apns")
    p8, _ = make_p8(d)
    apns_port = free_port()
    fake = subprocess.Popen(["node", str(REPO / "bench/fake_apns.mjs"), str(apns_port), str(server.cert),
                             str(server.key)], stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
    gw, port = start_gateway(CONFIG % {"p8": p8, "apns_port": apns_port, "ca": ca.cert_path, "conns": conns})
    results = []
    try:
        log_body = notify(1).replace(b"org.example.ios", b"org.example.log")
        baseline = measure(gw, f"http://127.0.0.1:{port}/_matrix/push/v1/notify", log_body, seconds=seconds)
        for devices in (1, 3):
            res = measure(gw, f"http://127.0.0.1:{port}/_matrix/push/v1/notify", notify(devices), seconds=seconds)
            results.append((devices, res))
    finally:
        gw.terminate()
        gw.wait()
        fake.terminate()
        out, _ = fake.communicate(timeout=10)
    sent = int(out.split()[-1])
    expected = sum(d * r["requests"] for d, r in results)
    show("same gateway, log pushkin (baseline)", baseline)
    for devices, res in results:
        show(f"APNs notify, {devices} device(s)", res)
        print(f"{'':34} {res['req_s'] * devices:>9.0f} pushes/s  CPU {res['cpu_ms_per_req'] / devices:.3f} ms/push"
              f"  (APNs part {(res['cpu_ms_per_req'] - baseline['cpu_ms_per_req']) / devices:.3f} ms/push over the "
              f"log-pushkin request)")
    print(f"fake APNs answered {sent} pushes; measured runs sent {expected:.0f} (+ warm-ups); "
          f"non-2xx notify answers: {sum(r['non_2xx'] for _, r in results):.0f}")


if __name__ == "__main__":
    main()
