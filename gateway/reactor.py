"""Install Twisted's asyncio reactor exactly once, on one event loop shared with asyncio code.

aioapns is asyncio-only, so the whole process runs on `AsyncioSelectorReactor`. Since Twisted 26.x a
reactor constructed without a loop creates its *own* loop, distinct from `asyncio.get_event_loop()`;
Twisted's cooperator-driven body producers then run on one loop and aioapns on the other, and outgoing
request bodies hang. We therefore create one loop, make it the current loop, and hand that same loop
to the reactor. Only the CLI (process start) calls `install()`; importing this module does nothing.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

_installed: Any = None


def install() -> Any:
    """Install the asyncio reactor on a fresh shared loop (idempotent); returns the reactor."""
    global _installed
    if _installed is not None:
        return _installed
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor as existing

        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        if not isinstance(existing, AsyncioSelectorReactor):
            raise RuntimeError("a non-asyncio Twisted reactor was imported before gateway.reactor.install()")
        _installed = existing
        return existing
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    _installed = reactor
    return reactor


def shares_loop(reactor: Any) -> bool:
    """True when the reactor drives the loop asyncio code sees as current (the invariant above)."""
    try:
        current = asyncio.get_event_loop()
    except RuntimeError:
        return False
    return getattr(reactor, "_asyncioEventloop", None) is current
