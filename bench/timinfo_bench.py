"""TiMessengerInformation benchmark: lookups/s vs a bare twisted.web constant-JSON endpoint, and the time
to verify + index a 100 000-entry federation list.

    python bench/timinfo_bench.py [--duration 3] [--connections 16] [--rounds 5]

Lists are generated and signed with a throwaway brainpoolP256r1 PKI (300 and 100 000 domains). For each
size, one server process (asyncio reactor, like the gateway) serves on one twisted.web Site:
``/const`` (a leaf returning a constant JSON body: the ceiling), and the real `timinfo` resource at
``/tim-information`` (real `build()`, file source, bearer token checked once at an in-process userinfo
endpoint, then cached). `wrk` drives each endpoint in turn; rounds alternate to even out noise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_seconds, free_port, wrk  # noqa: E402

TOKEN = "benchtoken0123456789"


def serve(args: argparse.Namespace) -> None:
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import defer, reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    import timinfo
    from timinfo.config import FederationListConfig, TimInfoConfig, TrustConfig

    class Const(Resource):
        isLeaf = True
        body = b'{"serverName":"epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live"}'

        def render_GET(self, request):  # noqa: N802
            request.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
            return self.body

    class Userinfo(Resource):
        isLeaf = True

        def render_GET(self, request):  # noqa: N802
            request.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
            return b'{"sub":"@bench:hs.example"}'

    cfg = TimInfoConfig(
        enabled=True, homeserver_urls=(f"http://127.0.0.1:{args.port}",),
        federation_list=FederationListConfig(source="file", path=args.list, file_poll_interval_s=3600,
                                             trust=TrustConfig(anchors=(args.root,), intermediates=(args.ca,))))
    service = timinfo.build(cfg, reactor, version="bench")
    root = Resource()
    root.putChild(b"const", Const())
    root.putChild(b"tim-information", service.resource)
    fed = Resource()
    root.putChild(b"_matrix", fed)
    node = fed
    for seg in (b"federation", b"v1", b"openid"):
        child = Resource()
        node.putChild(seg, child)
        node = child
    node.putChild(b"userinfo", Userinfo())

    async def start() -> None:
        await service.start()
        reactor.listenTCP(args.port, Site(root), interface="127.0.0.1", backlog=1024)
        print("ready", flush=True)

    reactor.callWhenRunning(lambda: defer.ensureDeferred(start()))
    reactor.run()


def wrk_rate(url: str, duration: int, connections: int, pid: int) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request)."""
    cpu0 = cpu_seconds(pid)
    res = wrk(url, None, seconds=duration, connections=connections, headers={"Authorization": f"Bearer {TOKEN}"})
    cpu = cpu_seconds(pid) - cpu0
    if res["non_2xx"]:
        raise RuntimeError(f"wrk saw {res['non_2xx']:.0f} non-2xx answers for {url}")
    return res["req_s"], 1e6 * cpu / res["requests"]


def make_lists(directory: Path) -> tuple[dict[int, Path], dict[int, str], Path, Path]:
    from tests.fakes.fedlist_pki import generated_entries, make_list_pki, make_payload, sign_jws

    pki = make_list_pki(directory / "pki")
    lists, iks = {}, {}
    for n in (300, 100_000):
        entries = generated_entries(n)
        path = directory / f"list-{n}.jws"
        path.write_bytes(sign_jws(make_payload(n, entries), pki.signer))
        lists[n] = path
        iks[n] = entries[(n // 2) // 3 * 3]["ik"][0]  # an insurer from the middle of the list
    return lists, iks, pki.root_pem, pki.ca_pem


def verify_time(path: Path, root: Path, ca: Path, rounds: int = 3) -> tuple[float, float]:
    from timinfo.config import TrustConfig
    from timinfo.pki import load_trust
    from timinfo.verify import verify_list

    cfg = TrustConfig(anchors=(str(root),), intermediates=(str(ca),))
    store = load_trust(cfg)
    raw = path.read_bytes()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        verify_list(raw, store, cfg)
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def run_server(list_path: Path, root: Path, ca: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--list", str(list_path),
                             "--root", str(root), "--ca", str(ca)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError("bench server did not start")
    return proc, port


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--serve", action="store_true")
    p.add_argument("--port", type=int)
    p.add_argument("--list")
    p.add_argument("--root")
    p.add_argument("--ca")
    p.add_argument("--duration", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    if args.serve:
        serve(args)
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    import logging

    logging.disable(logging.WARNING)  # the generated lists are clean; keep output to numbers
    tmp = Path(tempfile.mkdtemp(prefix="timinfo-bench-"))
    try:
        lists, iks, root, ca = make_lists(tmp)
        best, median = verify_time(lists[100_000], root, ca)
        print(f"verify + index 100000-entry list ({lists[100_000].stat().st_size / 1e6:.1f} MB): "
              f"best {best:.3f}s, median {median:.3f}s")
        best, median = verify_time(lists[300], root, ca)
        print(f"verify + index 300-entry list: best {best * 1000:.1f}ms, median {median * 1000:.1f}ms")
        for n, path in lists.items():
            proc, port = run_server(path, root, ca)
            try:
                base = f"http://127.0.0.1:{port}"
                # Warm the token cache (one userinfo call), then check the lookups answer 200.
                req = urllib.request.Request(f"{base}/tim-information/v1/server/findByIk?ikNumber={iks[n]}",
                                             headers={"Authorization": f"Bearer {TOKEN}"})
                assert urllib.request.urlopen(req).status == 200
                urls = {"const": f"{base}/const",
                        "findByIk": f"{base}/tim-information/v1/server/findByIk?ikNumber={iks[n]}",
                        "isInsurance": f"{base}/tim-information/v1/server/isInsurance?serverName=tim0.example-kk.de"}
                results: dict[str, list[float]] = {k: [] for k in urls}
                cpu: dict[str, list[float]] = {k: [] for k in urls}
                for _ in range(args.rounds):
                    for name, url in urls.items():
                        rps, us = wrk_rate(url, args.duration, args.connections, proc.pid)
                        results[name].append(rps)
                        cpu[name].append(us)
                print(f"list of {n} entries ({args.connections} connections, {args.rounds} interleaved rounds "
                      f"of {args.duration}s per endpoint):")
                for name, values in results.items():
                    # Ratio per round against the const run of the same round, so load from other processes
                    # on the machine affects both sides alike; the median over rounds is reported.
                    ratios = [v / c for v, c in zip(values, results["const"])]
                    print(f"  {name:12s} median {statistics.median(values):8.0f} req/s   "
                          f"{100 * statistics.median(ratios):5.1f} % of const (rounds: "
                          f"{', '.join(f'{100 * r:.0f}%' for r in ratios)})")
                print("  server CPU per request (load-independent; capacity relative to const = const/endpoint):")
                base_us = statistics.median(cpu["const"])
                for name, values in cpu.items():
                    us = statistics.median(values)
                    print(f"  {name:12s} {us:6.1f} us/request   capacity {100 * base_us / us:5.1f} % of const")
            finally:
                proc.terminate()
                proc.wait(10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
