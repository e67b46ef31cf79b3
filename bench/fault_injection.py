"""Fault injection under sustained load: nothing lost, nothing duplicated, every dead token rejected.

Starts the real gateway (default backend sqlite) with the scripted provider in chaos mode: per attempt
5 % answer 503-like temporary failures, 1 % reset the connection (the pushkin raises), 2 % stall 2 s
(longer than the 1.5 s request timeout, so those go through the retry queue). Homeserver-like clients
send notifications for fresh events to 1-3 devices each for `--seconds`, retry on 503 / connection errors
with backoff (same body, like Synapse), re-send 5 % of answered requests (a lost response), and stop
using a pushkey once it comes back rejected. 5 % of pushkeys are dead tokens (rejected by the provider,
possibly only on a background retry). Afterwards the queue is drained and every dead token not yet
reported is named once more, as the homeserver's next event would.

Counted from the provider's delivery log: lost = answered-200 (pushkey, event) never delivered;
duplicated = deliveries beyond the first per (pushkey, event).

    python bench/fault_injection.py [--seconds 30] [--clients 6] [--backend sqlite|memory|redis]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

APP = "com.example.chaos"


class Homeserver:
    def __init__(self, port: int, seed: int, keys: list[str]) -> None:
        self.port = port
        self.rng = random.Random(seed)
        self.keys = keys
        self.conn: http.client.HTTPConnection | None = None
        self.accepted: set[tuple[str, str]] = set()  # (pushkey, event) answered 200 and not rejected
        self.rejected_seen: set[str] = set()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.retries = 0

    def post(self, body: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
        """Send until answered (retrying 503 and connection errors with backoff, as homeservers do)."""
        delay = 0.05
        while True:
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.request("POST", "/_matrix/push/v1/notify", body, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
                self.statuses[resp.status] += 1
                if resp.status == 200:
                    return 200, orjson.loads(data)
                if resp.status not in (429, 503):
                    raise AssertionError(f"unexpected status {resp.status}: {data[:200]!r}")
            except (OSError, http.client.HTTPException):
                self.statuses[0] += 1
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
            self.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def notify(self, event: str, keys: list[str]) -> None:
        body = orjson.dumps({"notification": {"event_id": event, "room_id": "!r:hs", "counts": {"unread": 1},
                                              "devices": [{"app_id": APP, "pushkey": k} for k in keys]}})
        status, doc = self.post(body)
        rejected = set(doc["rejected"])
        self.rejected_seen |= rejected
        for k in keys:
            if k not in rejected:
                self.accepted.add((k, event))
        if self.rng.random() < 0.05:  # the response was "lost": the homeserver sends the same request again
            self.post(body)

    def run(self, until: float, tag: str) -> None:
        n = 0
        while time.monotonic() < until:
            live = [k for k in self.keys if k not in self.rejected_seen]
            if not live:
                break
            self.notify(f"${tag}-{n}", self.rng.sample(live, min(len(live), self.rng.randint(1, 3))))
            n += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--keys", type=int, default=40, help="pushkeys per client")
    ap.add_argument("--backend", default="sqlite", choices=("memory", "sqlite", "redis"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fault-injection-"))
    record = work / "delivered.jsonl"
    state: dict = {"backend": args.backend, "retry_queue": True, "retry_poll_interval_s": 0.1, "retry_backoff_base_s": 0.2,
                   "retry_backoff_max_s": 1.0}
    redis = None
    if args.backend == "sqlite":
        state["path"] = str(work / "state.db")
    elif args.backend == "redis":
        redis = RedisServer(work).start()
        state.update(redis_url=redis.url, retry_lease_s=5)
    config = {"server": {"request_timeout_s": 1.5}, "logging": {"level": "WARNING", "access_log": False},
              "state": state,
              "apps": {APP: {"type": "tests.support.pushkins.ScriptedPushkin", "record_file": str(record),
                             "chaos": {"unavailable": 0.05, "reset": 0.01, "stall": 0.02, "stall_s": 2}}}}
    gw = GatewayProcess(work, config).start()
    try:
        clients = []
        for c in range(args.clients):
            keys = [f"chaos-{c}-{i}" + ("-dead-" if i % 20 == 0 else "-live-") for i in range(args.keys)]
            clients.append(Homeserver(gw.port, seed=c, keys=keys))
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=hs.run, args=(until, f"c{i}")) for i, hs in enumerate(clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_s = time.monotonic() - started
        drain_until = time.monotonic() + 120
        while time.monotonic() < drain_until and gw.metric("tim_push_queue_depth") > 0:
            time.sleep(0.2)
        time.sleep(0.5)
        # The homeserver's next event names every dead key it still has a pusher for.
        for hs in clients:
            for k in [k for k in hs.keys if "-dead-" in k and k not in hs.rejected_seen]:
                hs.notify(f"$final-{k}", [k])
        deliveries = collections.Counter((d["pushkey"], d["event_id"]) for d in
                                         (orjson.loads(x) for x in record.read_bytes().splitlines()))
        accepted = set().union(*(hs.accepted for hs in clients))
        live_accepted = {a for a in accepted if "-dead-" not in a[0]}
        lost = [a for a in live_accepted if deliveries[a] == 0]
        duplicated = sum(n - 1 for n in deliveries.values() if n > 1)
        dead_keys = {k for hs in clients for k in hs.keys if "-dead-" in k}
        dead_rejected = {k for hs in clients for k in hs.rejected_seen}
        statuses = sum((hs.statuses for hs in clients), collections.Counter())
        print(f"fault injection: backend={args.backend}, {load_s:.0f}s load, {args.clients} homeserver clients, "
              "provider faults 5% 503 / 1% reset / 2% 2s-stall (request timeout 1.5s)")
        print(f"  notify answers: {dict(sorted(statuses.items()))} (0 = connection error), homeserver retries "
              f"{sum(hs.retries for hs in clients)}")
        print(f"  pushes accepted (200) {len(live_accepted)}, delivered {sum(1 for a in live_accepted if deliveries[a])}"
              f", queued deadline/temporary {gw.metric('tim_push_queue_queued_total', {'reason': 'deadline'}):.0f}/"
              f"{gw.metric('tim_push_queue_queued_total', {'reason': 'temporary'}):.0f}, queue retries "
              f"{sum(gw.metric('tim_push_queue_retried_total', {'outcome': o}) for o in ('delivered', 'temporary', 'rejected', 'failed')):.0f}"
              f", deduplicated {sum(gw.metric('tim_push_queue_deduplicated_total', {'kind': k}) for k in ('settled', 'in_flight', 'badge')):.0f}")
        print(f"  lost {len(lost)}, duplicated {duplicated}, dead tokens rejected {len(dead_keys & dead_rejected)}"
              f"/{len(dead_keys)}, expired {gw.metric('tim_push_queue_expired_total', {'app': APP}):.0f}")
        ok = not lost and duplicated == 0 and dead_keys <= dead_rejected
        print("  RESULT:", "ok" if ok else "FAILED")
    finally:
        gw.stop()
        if redis:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
