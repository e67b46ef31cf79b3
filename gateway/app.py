"""Application wiring: config → pushkins, dispatcher, routes, timinfo mount, listeners, shutdown.

This is the only place that knows both `gateway` and `timinfo`; it uses timinfo's public `build()` only.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer, task

import gateway
import timinfo
from gateway import metrics, web
from gateway.config.model import GatewayConfig
from gateway.dispatch import Dispatcher
from gateway.guarantees import Guarantees
from gateway.notify import NotifyService
from gateway.pushkins import PushkinContext, resolve
from gateway.pushkins.base import Pushkin
from gateway.pushkins.log import LogPushkin
from gateway.retryqueue import RetryQueue
from gateway.site import GatewayRequest, GatewaySite
from gateway.state import open_store

log = logging.getLogger("gateway.app")

_ROUTE_LABELS = {web.NOTIFY_PATH: "notify", b"/health": "health", b"/ready": "ready", b"/metrics": "metrics",
                 b"/_debug/last": "debug"}


class StartupError(Exception):
    """Start-up cannot continue; the message is the one line printed before exiting non-zero."""


class GatewayApp:
    def __init__(self, config: GatewayConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        ctx = PushkinContext(reactor=reactor, proxy=config.proxy, request_timeout_s=config.server.request_timeout_s,
                             queue_takes_over=config.state.retry_queue)
        self.pushkins: list[Pushkin] = [resolve(app.type)(app, ctx) for app in config.apps]
        self.dispatcher = Dispatcher(self.pushkins)
        state = config.state
        self.store = open_store(state, reactor)
        self.guard = Guarantees(self.store, state, reactor, config.server.request_timeout_s)
        self.queue: RetryQueue | None = None
        if state.retry_queue:
            if state.backend == "memory":
                log.warning("state.retry_queue with backend memory: queued pushes are lost on restart")
            self.queue = RetryQueue(self.store, self.dispatcher, state, reactor, self.guard.record_final,
                                    self.guard.record_expired)
            self.guard.queue = self.queue
        self.notify = NotifyService(self.dispatcher, reactor, config.server.request_timeout_s, self.guard)
        self.timinfo: Any = None
        tim_cfg = config.tim_information
        if tim_cfg is not None and getattr(tim_cfg, "enabled", False):
            self.timinfo = timinfo.build(tim_cfg, reactor, version=gateway.__version__)
        self.root = self._routes()
        self.site = GatewaySite(self.root, max_body_bytes=config.server.max_body_bytes,
                                idle_timeout_s=config.server.idle_timeout_s, access_log=config.logging.access_log)
        self.site.on_status = self._count_status
        self.ports: list[Any] = []
        self.started = False
        self.draining = False

    def _routes(self) -> web.Root:
        root = web.Root()
        root.add(web.NOTIFY_PATH, b"POST", web.NotifyHandler(self.notify))
        root.add(b"/health", b"GET", web.health)
        root.add(b"/ready", b"GET", web.make_ready(self.ready))
        if self.config.metrics.enabled and self.config.metrics.port is None:
            root.add(b"/metrics", b"GET", web.metrics_handler)
        if self.config.debug:
            root.add(b"/_debug/last", b"GET",
                     web.make_debug_last([p for p in self.pushkins if isinstance(p, LogPushkin)]))
        if self.timinfo is not None:
            root.mount(self.timinfo.prefix, self.timinfo.resource)
        return root

    def _count_status(self, request: GatewayRequest, code: int) -> None:
        route = _ROUTE_LABELS.get(request.path)
        if route is None:
            route = "tim-information" if self.timinfo is not None and request.prepath else "other"
        metrics.child(metrics.HTTP_REQUESTS, route, str(code)).inc()
        if route == "notify":
            metrics.child(metrics.STATUS_CODES, str(code)).inc()

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "shutting down"
        if not self.started:
            return False, "starting"
        if self.timinfo is not None:
            return self.timinfo.ready()
        return True, ""

    async def start(self) -> None:
        """Start pushkins and timinfo, then listen. Raises StartupError with one clear line."""
        # callWhenRunning fires before the asyncio loop runs; yield once so asyncio users see a running loop.
        await task.deferLater(self.reactor, 0, lambda: None)
        try:
            await self.store.start()
        except Exception as e:
            raise StartupError(f"state: cannot open the {self.config.state.backend} state store: {e}") from e
        for p in self.pushkins:
            try:
                await p.start()
            except Exception as e:
                raise StartupError(f"apps.{p.app_id}: cannot start {p.app.type} pushkin: {e}") from e
        if self.timinfo is not None:
            await self.timinfo.start()
        if self.queue is not None:
            self.queue.start()
        self.guard.start_sweeping()
        srv = self.config.server
        for addr in srv.bind:
            try:
                self.ports.append(self.reactor.listenTCP(srv.port, self.site, backlog=srv.backlog, interface=addr))
            except Exception as e:
                raise StartupError(f"server.bind: cannot listen on {addr}:{srv.port}: {e}") from e
        m = self.config.metrics
        if m.enabled and m.port is not None:
            from twisted.web.server import Site

            try:
                self.ports.append(self.reactor.listenTCP(m.port, Site(web.MetricsRoot()), interface=m.bind))
            except Exception as e:
                raise StartupError(f"metrics: cannot listen on {m.bind}:{m.port}: {e}") from e
        self.started = True
        metrics.READY.set(1 if self.ready()[0] else 0)
        for port in self.ports:
            h = port.getHost()
            log.info("listening on %s:%d", h.host, h.port)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, then stop pushkins."""
        self.draining = True
        metrics.READY.set(0)
        await defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in self.ports], consumeErrors=True)
        grace = self.config.server.shutdown_grace_s
        if self.site.inflight:
            log.info("draining %d in-flight request(s), up to %.0fs", self.site.inflight, grace)
            drained = self.site.wait_drained()
            timer = self.reactor.callLater(grace, lambda: drained.called or drained.callback(None))
            await drained
            if timer.active():
                timer.cancel()
            if self.site.inflight:
                log.warning("grace period over; %d request(s) cut off", self.site.inflight)
            # Give the reactor a moment to flush the last responses to their sockets before it stops.
            await task.deferLater(self.reactor, 0.2, lambda: None)
        if self.queue is not None:
            await self.queue.stop(min(grace, 5.0))
        self.guard.stop_sweeping()
        for p in self.pushkins:
            try:
                await p.stop()
            except Exception:
                log.exception("stopping app %s failed", p.app_id)
        if self.timinfo is not None:
            await self.timinfo.stop()
        try:
            await self.store.close()
        except Exception:
            log.exception("closing the state store failed")
