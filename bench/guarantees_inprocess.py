"""In-process view of the guarantees' cost: parse + `NotifyService.handle` per request, before/after.

Complements `guarantees_cost.py` (whole-process CPU over HTTP) by leaving out the HTTP server, so the
guarantees' own cost is visible: a pushkin that returns at once, a `task.Clock` advanced 1 ms per request
(1000 requests/s, so the SQLite group commit batches like it would in production), 10k requests per round
with fresh event ids (each one claimed and settled), 7 rounds, median of process CPU time. The SQLite
table grows to 70k rows over the run. "before" runs the same loop against the tree at a git ref without
the guarantees (default: the parent of the commit that added them).

    python bench/guarantees_inprocess.py [--base REF]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import ref_before_guarantees  # noqa: E402

LOOP = r'''
import statistics, sys, tempfile, os, time
import orjson
from twisted.internet import defer, task
from gateway.config.model import AppConfig
from gateway.dispatch import Dispatcher
from gateway.model import Outcome
from gateway.notify import NotifyService
from gateway.notify_parse import parse_body
from gateway.pushkins.base import PushkinContext
from gateway.pushkins.log import LogOptions, LogPushkin

class Instant(LogPushkin):
    async def dispatch(self, notification, device):
        return Outcome.delivered()

mode = sys.argv[1]
clock = task.Clock()
pushkin = Instant(AppConfig("com.x", "log", inflight_request_limit=10000, options=LogOptions()),
                  PushkinContext(clock, None, 10))
dispatcher = Dispatcher([pushkin])
if mode == "before":
    svc = NotifyService(dispatcher, clock, 10)
else:
    from gateway.config.model import StateConfig
    from gateway.guarantees import Guarantees
    if mode == "memory":
        from gateway.state.memory import MemoryStore
        store = MemoryStore()
    else:
        from gateway.state.sqlite import SqliteStore
        store = SqliteStore(os.path.join(tempfile.mkdtemp(), "state.db"), clock)
        defer.ensureDeferred(store.start())
    svc = NotifyService(dispatcher, clock, 10, Guarantees(store, StateConfig(), clock, 10))
runs = []
for r in range(7):
    bodies = [orjson.dumps({"notification": {"event_id": f"$r{r}-{i}", "room_id": "!r", "counts": {"unread": 1},
              "devices": [{"app_id": "com.x", "pushkey": f"pk{i % 50}", "pushkey_ts": 1000}]}}) for i in range(10000)]
    t = time.process_time()
    for b in bodies:
        defer.ensureDeferred(svc.handle(parse_body(b)))
        clock.advance(0.001)
    runs.append((time.process_time() - t) / len(bodies) * 1e6)
print(statistics.median(runs))
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=None)
    args = ap.parse_args()
    base = args.base or ref_before_guarantees()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", base], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        results = {}
        for mode in ("before", "memory", "sqlite"):
            tree = tmp if mode == "before" else str(REPO)
            proc = subprocess.run([sys.executable, "-c", LOOP, mode], env={**os.environ, "PYTHONPATH": tree}, cwd=tree,
                                  capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{mode} failed:\n{proc.stderr}")
            out = proc.stdout
            results[mode] = float(out.strip().splitlines()[-1])
    before = results["before"]
    print(f"parse + NotifyService.handle, process CPU per request (median of 7 x 10k; before = {base[:10]})")
    for mode, us in results.items():
        extra = "" if mode == "before" else f"  guarantees add {us - before:+.1f} us/request"
        print(f"  {mode:7s} {us:6.1f} us{extra}")


if __name__ == "__main__":
    main()
