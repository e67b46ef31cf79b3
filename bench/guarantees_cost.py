"""CPU cost of the delivery guarantees on the notify path: gateway process CPU per request, before/after.

"before" is the gateway at a git ref without the guarantees (default: the merge-base with main, the
foundation), extracted with `git archive`; "after" is this tree with ``state.backend`` memory, sqlite
(and redis when `redis-server` is installed). Each run starts the real gateway with a scripted pushkin that
delivers at once (so the provider costs nothing and the guarantees' share is as large as it can be),
sends N notify requests over keep-alive connections (unique event ids, plus 10 % homeserver-style
duplicates), and reads the process's user+system CPU from /proc before and after. Rounds alternate
between variants and the median is reported, which keeps a shared, noisy machine honest.

    python bench/guarantees_cost.py [--requests 6000] [--rounds 3] [--base REF]
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.support.gateway as gateway_support  # noqa: E402
from bench.common import cpu_seconds, ref_before_guarantees  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

APP = "com.example.bench"


def load(port: int, n: int, concurrency: int, tag: str) -> None:
    per = n // concurrency

    def worker(w: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(per):
            event = f"${tag}-{w}-{i - 1 if i % 10 == 9 else i}"  # every 10th request repeats the previous event
            body = orjson.dumps({"notification": {
                "event_id": event, "room_id": "!room:hs", "type": "m.room.message", "sender": "@a:hs",
                "counts": {"unread": i % 7}, "devices": [{"app_id": APP, "pushkey": f"pk-{w}-{i % 50}",
                                                          "pushkey_ts": 1000}]}})
            conn.request("POST", "/_matrix/push/v1/notify", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
        conn.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run(variant: str, tree: Path, workdir: Path, n: int, redis_url: str | None) -> float:
    config: dict = {"logging": {"level": "WARNING", "access_log": False},
                    "apps": {APP: {"type": "tests.support.pushkins.ScriptedPushkin", "inflight_request_limit": 4096}}}
    if variant == "sqlite":
        config["state"] = {"backend": "sqlite", "path": str(workdir / f"state-{time.monotonic_ns()}.db")}
    elif variant == "redis":
        config["state"] = {"backend": "redis", "redis_url": redis_url, "key_prefix": f"b{time.monotonic_ns()}:"}
    elif variant == "memory":
        config["state"] = {"backend": "memory"}
    gw = GatewayProcess(workdir, config, env={"PYTHONPATH": str(tree)})
    # `python -m gateway` puts its working directory first on sys.path: run each variant from its own tree.
    gateway_support.REPO = tree
    try:
        gw.start()
    finally:
        gateway_support.REPO = REPO
    try:
        assert gw.proc is not None
        has_guarantees = b"tim_push_queue_deduplicated" in gw.get("/metrics").body
        assert has_guarantees == (variant != "before"), f"{variant} runs the wrong tree"
        load(gw.port, 400, 4, "warm")
        before = cpu_seconds(gw.proc.pid)
        load(gw.port, n, 8, "run")
        used = cpu_seconds(gw.proc.pid) - before
    finally:
        gw.stop()
    return used / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", default=None, help="git ref without the guarantees (default: the parent of the commit that added them)")
    args = ap.parse_args()
    base = args.base or ref_before_guarantees()
    work = Path(tempfile.mkdtemp(prefix="guarantees-bench-"))
    before_tree = work / "before"
    before_tree.mkdir()
    archive = subprocess.run(["git", "archive", base], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(before_tree)], input=archive, check=True)
    redis = None
    variants = ["before", "memory", "sqlite"]
    if shutil.which("redis-server"):
        redis = RedisServer(work).start()
        variants.append("redis")
    results: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for _ in range(args.rounds):
            for v in variants:
                tree = before_tree if v == "before" else REPO
                results[v].append(run(v, tree, work, args.requests, redis.url if redis else None))
    finally:
        if redis:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    base_us = statistics.median(results["before"])
    print(f"notify path CPU per request (gateway process, median of {args.rounds} x {args.requests} requests; "
          f"before = {base[:10]})")
    for v in variants:
        med = statistics.median(results[v])
        extra = "" if v == "before" else f"  {100 * (med - base_us) / base_us:+.1f}% vs before"
        print(f"  {v:7s} {med:7.1f} us/request   runs: {', '.join(f'{x:.0f}' for x in results[v])}{extra}")


if __name__ == "__main__":
    main()
