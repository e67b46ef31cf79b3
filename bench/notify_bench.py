"""Notify path cost: the gateway with a `log` app vs a bare twisted.web constant-JSON endpoint.

Run: `python bench/notify_bench.py [seconds]`. Prints req/s, p50/p99 latency and server CPU ms per request
for both, and the CPU ratio (target: notify <= 2x bare).
"""

from __future__ import annotations

import sys

import orjson

from bench.common import UNIQUE, free_port, measure, show, start, start_gateway

NOTIFY = orjson.dumps({"notification": {
    "event_id": "$" + UNIQUE, "room_id": "!slw48wfj34rtnrf:example.com", "type": "m.room.message",
    "sender": "@exampleuser:matrix.org", "sender_display_name": "Major Tom", "room_name": "Mission Control",
    "prio": "high", "content": {"msgtype": "m.text", "body": "I'm floating in a most peculiar way."},
    "counts": {"unread": 2, "missed_calls": 1},
    "devices": [{"app_id": "com.example.log", "pushkey": "V2h5IG9uIGVhcnRoIGRpZCB5b3UgZGVjb2RlIHRoaXM/",
                 "pushkey_ts": 12345678, "data": {}, "tweaks": {"sound": "bing"}}]}})

CONFIG = """
server: {port: $PORT}
logging: {level: WARNING, access_log: false}
apps:
  com.example.log: {type: log}
"""


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    port = free_port()
    bare = start([sys.executable, "bench/bare_server.py", str(port)], port)
    try:
        b = measure(bare, f"http://127.0.0.1:{port}/", NOTIFY, seconds=seconds)
    finally:
        bare.terminate()
        bare.wait()
    gw, gport = start_gateway(CONFIG)
    try:
        g = measure(gw, f"http://127.0.0.1:{gport}/_matrix/push/v1/notify", NOTIFY, seconds=seconds)
    finally:
        gw.terminate()
        gw.wait()
    show("bare twisted.web constant JSON", b)
    show("gateway notify (log pushkin)", g)
    print(f"CPU ratio notify/bare: {g['cpu_ms_per_req'] / b['cpu_ms_per_req']:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
