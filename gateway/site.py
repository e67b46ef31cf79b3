"""The HTTP listener: body-size limit, request ids, access log, in-flight tracking for graceful drain.

twisted.web has no request-body limit and spools large bodies to temp files; `GatewayRequest` answers
413 from the declared Content-Length (or from the running total for chunked bodies) without buffering
the body, drains a bounded amount so the client can read the answer, then closes the connection.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from io import BytesIO
from typing import Any

import orjson
from twisted.internet import defer
from twisted.web import server

log = logging.getLogger("gateway.access")

_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
#: After a 413 we read and discard at most this much more, so the client sees the answer, not a reset.
_DRAIN_LIMIT = 8 * 1024 * 1024


def json_error(status: int, errcode: str, error: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"errcode": errcode, "error": error})


class GatewayRequest(server.Request):
    site: GatewaySite

    def __init__(self, channel: Any, queued: Any = None) -> None:
        super().__init__(channel)
        self.started = time.perf_counter()
        self.request_id = ""
        self._too_large = False
        self._body_seen = 0

    # -- body limit -----------------------------------------------------------------------------------
    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_body_bytes
        if length is not None and length > limit:
            self._reject_too_large()
            return
        # Bodies are bounded by the limit, so keep them in memory instead of twisted.web's temp files.
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._too_large:
            self._body_seen += len(data)
            if self._body_seen > _DRAIN_LIMIT:
                self.channel.transport.abortConnection()
            return
        self._body_seen += len(data)
        if self._body_seen > self.channel.site.max_body_bytes:
            self._reject_too_large()
            return
        self.content.write(data)

    def _reject_too_large(self) -> None:
        self._too_large = True
        self.content = BytesIO()
        status, body = json_error(413, "M_TOO_LARGE", "Request body is larger than "
                                  f"{self.channel.site.max_body_bytes} bytes")
        rid = self._pick_request_id()
        head = (b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n"
                b"X-Request-ID: " + rid.encode() + b"\r\n\r\n")
        self.channel.transport.write(head + body)
        self.code = 413
        self.channel.site.count_status(self, 413)
        self.channel.site.log_access(self, 413, len(body))

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._too_large:
            self.channel.transport.loseConnection()
            return
        super().requestReceived(command, path, version)

    # -- request id -----------------------------------------------------------------------------------
    def _pick_request_id(self) -> str:
        if not self.request_id:
            given = self.requestHeaders.getRawHeaders(b"x-request-id")
            value = given[0].decode("latin-1") if given else ""
            self.request_id = value if _REQUEST_ID.match(value) else uuid.uuid4().hex
        return self.request_id

    def process(self) -> None:
        self.setHeader(b"X-Request-ID", self._pick_request_id().encode())
        site = self.channel.site
        site.started_request(self)
        self.notifyFinish().addBoth(lambda _: site.finished_request(self))
        super().process()

    def respond(self, status: int, body: bytes, content_type: bytes = b"application/json",
                headers: dict[bytes, bytes] | None = None) -> bytes:
        """Set status and headers for `body` (returned, for render_* to return)."""
        self.setResponseCode(status)
        self.setHeader(b"Content-Type", content_type)
        self.setHeader(b"Content-Length", str(len(body)).encode())
        for k, v in (headers or {}).items():
            self.setHeader(k, v)
        return b"" if self.method == b"HEAD" else body

    def finish_with(self, status: int, body: bytes, headers: dict[bytes, bytes] | None = None) -> None:
        """Finish an asynchronous request unless the client went away meanwhile."""
        if self._disconnected or self.finished:
            return
        self.write(self.respond(status, body, headers=headers))
        self.finish()


class GatewaySite(server.Site):
    requestFactory = GatewayRequest  # type: ignore[assignment]

    def __init__(self, root: Any, *, max_body_bytes: int, idle_timeout_s: float, access_log: bool) -> None:
        # Notify bodies are JSON: skip twisted.web's form/multipart sniffing (an email-parser call per POST).
        super().__init__(root, timeout=idle_timeout_s, parsePOSTFormSubmission=False)
        self.noisy = False
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.inflight = 0
        self._drained: list[defer.Deferred[None]] = []
        self.on_status: Any = None

    def started_request(self, request: GatewayRequest) -> None:
        self.inflight += 1

    def finished_request(self, request: GatewayRequest) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            waiters, self._drained = self._drained, []
            for d in waiters:
                d.callback(None)

    def wait_drained(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if self.inflight == 0:
            d.callback(None)
        else:
            self._drained.append(d)
        return d

    def count_status(self, request: GatewayRequest, code: int) -> None:
        if self.on_status is not None:
            self.on_status(request, code)

    def log(self, request: GatewayRequest) -> None:  # type: ignore[override]
        if request.code == 413 and request._too_large:
            return
        self.count_status(request, request.code)
        self.log_access(request, request.code, request.sentLength)

    def log_access(self, request: GatewayRequest, code: int, length: int) -> None:
        if not self.access_log:
            return
        ms = (time.perf_counter() - request.started) * 1000
        peer = request.getClientAddress()
        log.info("%s %s %s %d %d %.1fms", getattr(peer, "host", "-"), _s(request.method) or "-",
                 _s(request.path)[:200] or "-",
                 code, length, ms,
                 extra={"fields": {"request_id": request.request_id, "status": code, "duration_ms": round(ms, 2)}})


def _s(b: bytes | None) -> str:
    return (b or b"").decode("latin-1")

