"""The process runs ONE asyncio loop shared by Twisted and asyncio code (aioapns, aiohttp, redis.asyncio)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.gateway import REPO


def run(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_installed_reactor_drives_the_current_asyncio_loop() -> None:
    out = run("""
        import asyncio
        from gateway import reactor as r
        rx = r.install()
        assert r.install() is rx                      # idempotent
        seen = []
        async def probe():
            seen.append(asyncio.get_running_loop() is rx._asyncioEventloop)
        def go():
            from twisted.internet import defer
            d = defer.Deferred.fromFuture(asyncio.ensure_future(probe()))
            d.addBoth(lambda _: rx.stop())
        rx.callWhenRunning(go)
        rx.run()
        print(r.shares_loop(rx), seen)
    """)
    assert out == "True [True]"


def test_a_reactor_built_without_our_loop_would_not_share_it() -> None:
    # The failure mode install() exists to prevent: a reactor on its own loop is not the loop asyncio sees.
    out = run("""
        import asyncio
        loop = asyncio.new_event_loop(); asyncio.set_event_loop(loop)
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor
        other = AsyncioSelectorReactor(asyncio.new_event_loop())
        from gateway.reactor import shares_loop
        print(shares_loop(other))
    """)
    assert out == "False"


def test_importing_the_package_installs_no_reactor() -> None:
    out = run("""
        import sys
        import gateway, gateway.app, gateway.web, gateway.pushkins.apns, gateway.pushkins.fcm, timinfo
        print("twisted.internet.reactor" in sys.modules)
    """)
    assert out == "False"
