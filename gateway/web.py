"""Routing and the small resources: notify, health, ready, metrics, debug; JSON errors everywhere.

One leaf root resource dispatches on the exact path instead of walking a Resource tree: every unknown
path or method gets the spec's JSON ``M_UNRECOGNIZED`` (404/405) instead of twisted.web's HTML pages,
and routing costs one dict lookup. The TiMessengerInformation resource is mounted under its prefix and
receives the remaining path segments in ``request.postpath``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from twisted.internet import defer
from twisted.web import resource, server

from gateway import metrics, tracing
from gateway.dispatch import OverLimit
from gateway.notify import NotifyService, count_request
from gateway.notify_parse import BadNotify, parse_body
from gateway.site import GatewayRequest, json_error

log = logging.getLogger("gateway.web")

NOTIFY_PATH = b"/_matrix/push/v1/notify"
_EMPTY_OK = orjson.dumps({})

Handler = Callable[[GatewayRequest], bytes | int]


class Root(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        #: path -> {method: handler}
        self.routes: dict[bytes, dict[bytes, Handler]] = {}
        #: (prefix segments, resource) for mounted sub-applications
        self.mounts: list[tuple[list[bytes], resource.Resource]] = []

    def add(self, path: bytes, method: bytes, handler: Handler) -> None:
        self.routes.setdefault(path, {})[method] = handler
        if method == b"GET":
            self.routes[path].setdefault(b"HEAD", handler)

    def mount(self, prefix: str, res: resource.Resource) -> None:
        segments = [s.encode() for s in prefix.strip("/").split("/") if s]
        self.mounts.append((segments, res))

    def render(self, request: GatewayRequest) -> bytes | int:  # type: ignore[override]
        methods = self.routes.get(request.path)
        if methods is None:
            mounted = self._mounted(request)
            if mounted is not None:
                return mounted.render(request)
            return request.respond(*json_error(404, "M_UNRECOGNIZED", "Unrecognized request"))
        handler = methods.get(request.method)
        if handler is None:
            status, body = json_error(405, "M_UNRECOGNIZED", "Unrecognized request method")
            return request.respond(status, body, headers={b"Allow": b", ".join(sorted(methods))})
        return handler(request)

    def _mounted(self, request: GatewayRequest) -> resource.Resource | None:
        segments = request.path.split(b"?", 1)[0].split(b"/")[1:]
        for prefix, res in self.mounts:
            if segments[: len(prefix)] == prefix:
                request.prepath = segments[: len(prefix)]
                request.postpath = segments[len(prefix):]
                return res
        return None


class NotifyHandler:
    def __init__(self, service: NotifyService) -> None:
        self.service = service

    def __call__(self, request: GatewayRequest) -> bytes | int:
        request.observe_time = metrics.NOTIFY_TIME
        span = tracing.start_notify(request)
        try:
            notification = parse_body(request.content.getvalue())
        except BadNotify as e:
            return request.respond(*json_error(400, e.errcode, e.message))
        count_request(notification)
        tracing.note_notification(span, notification)
        d = tracing.in_span(span, defer.ensureDeferred, self._handle(request, notification))
        d.addErrback(self._crash, request)
        return server.NOT_DONE_YET

    async def _handle(self, request: GatewayRequest, notification: Any) -> None:
        try:
            result = await self.service.handle(notification)
        except OverLimit as e:
            status, body = json_error(429, "M_LIMIT_EXCEEDED", "Too many notifications in flight for this app")
            request.finish_with(status, body, {b"Retry-After": str(e.retry_after).encode()})
            return
        if result.temporary:
            status, body = json_error(503, "M_UNKNOWN", f"{result.temporary} device(s) could not be notified "
                                      "yet; retry later")
            request.finish_with(status, body, {b"Retry-After": str(result.retry_after()).encode()})
            return
        request.finish_with(200, orjson.dumps({"rejected": list(result.rejected)}))

    @staticmethod
    def _crash(failure: Any, request: GatewayRequest) -> None:
        log.error("notify handling failed: %s", failure.getErrorMessage(),
                  exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        request.finish_with(*json_error(500, "M_UNKNOWN", "Internal error"))


def health(request: GatewayRequest) -> bytes:
    return request.respond(200, orjson.dumps({"status": "ok"}))


def make_ready(check: Callable[[], tuple[bool, str]]) -> Handler:
    def ready(request: GatewayRequest) -> bytes:
        ok, reason = check()
        body = orjson.dumps({"ready": ok} if ok else {"ready": False, "reason": reason})
        return request.respond(200 if ok else 503, body)

    return ready


def metrics_handler(request: GatewayRequest) -> bytes:
    return request.respond(200, generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.encode())


class MetricsRoot(resource.Resource):
    """The optional separate metrics listener (``metrics.bind``/``metrics.port``)."""

    isLeaf = True

    def render_GET(self, request: GatewayRequest) -> bytes:  # type: ignore[override]
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(REGISTRY)


def make_debug_last(sources: list[Any]) -> Handler:
    def debug_last(request: GatewayRequest) -> bytes:
        items = [item for src in sources for item in src.recent]
        return request.respond(200, orjson.dumps({"notifications": items}))

    return debug_last
