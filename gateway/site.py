"""The HTTP listener: body-size limit, read deadline, request ids, access log, in-flight tracking for drain.

twisted.web has no request-body limit and spools large bodies to temp files; `GatewayRequest` answers
413 from the declared Content-Length (or from the running total for chunked bodies) without buffering
the body, drains a bounded amount so the client can read the answer, then closes the connection.

twisted.web's idle timeout restarts on every byte received, so a client trickling a request one byte
at a time holds its connection indefinitely (slowloris). `GatewayChannel` adds a read deadline: a
request must arrive completely (headers and body) within ``server.idle_timeout_s`` of its first byte,
else it is answered 408 and the connection is closed. It also answers malformed requests (which
twisted.web answers with a bare 400 or a silent close) with the same JSON error bodies as everything else.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from io import BytesIO
from typing import Any

import orjson
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import http, server

log = logging.getLogger("gateway.access")

_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
_REASONS = {431: b"Request Header Fields Too Large"}
#: After a 413 we read and discard at most this much more, so the client sees the answer, not a reset.
_DRAIN_LIMIT = 8 * 1024 * 1024
#: Generated request ids: 32 hex digits, a random per-process half and a counter (a uuid4 per request
#: costs a syscall and a UUID object; these are unique across processes and restarts just the same).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def json_error(status: int, errcode: str, error: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"errcode": errcode, "error": error})


def _final_answer(status: int, body: bytes, extra: bytes = b"") -> bytes:
    """A complete response that closes the connection, for answers written below twisted.web."""
    reason = http.RESPONSES.get(status) or _REASONS.get(status, b"Error")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n"
            b"%s\r\n%s" % (status, reason, len(body), extra, body))


#: `GatewayChannel._read_deadline` while the chunk that started a request is being consumed.
_STARTED: Any = object()


class GatewayChannel(http.HTTPChannel):
    """HTTP/1.1 channel with a whole-request read deadline and JSON answers to malformed requests."""

    _read_deadline: Any = None
    _host: Any = None
    #: Set once this connection's final answer was written early (413): later timeouts just close.
    answered_early = False

    def dataReceived(self, data: bytes) -> None:
        # A request starts with its first byte; pipelined bytes buffered during a response start
        # theirs when twisted.web replays them (through this method) after the response. Almost every
        # request arrives whole in the chunk that starts it, so the timer is only armed for a request
        # still incomplete once this chunk is consumed (a timer per request is a measurable cost).
        if self._read_deadline is None and not self._handlingRequest and self.timeOut:
            self._read_deadline = _STARTED
            super().dataReceived(data)
            if self._read_deadline is _STARTED:
                self._read_deadline = self.callLater(self.timeOut, self.timeoutConnection)
            return
        super().dataReceived(data)

    def getHost(self) -> Any:
        """Cached: every request asks (a ``getsockname`` call each), and it never changes."""
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def allContentReceived(self) -> None:
        self._cancel_read_deadline()
        super().allContentReceived()

    def _cancel_read_deadline(self) -> bool:
        """Cancel the deadline; True if a request was partly received."""
        call, self._read_deadline = self._read_deadline, None
        if call is None:
            return False
        if call is not _STARTED and call.active():
            call.cancel()
        return True

    def timeoutConnection(self) -> None:
        # Both the idle timer and the read deadline end here; an idle keep-alive connection is just closed.
        if self._cancel_read_deadline() and not self.answered_early:
            self.answered_early = True
            self.transport.write(_final_answer(*json_error(408, "M_UNKNOWN", "Request not received completely "
                                                          f"within {self.timeOut:g}s")))
        super().timeoutConnection()

    def connectionLost(self, reason: Any) -> None:
        self._cancel_read_deadline()
        super().connectionLost(reason)

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._reject_malformed(400, "Malformed HTTP request")

    def lineLengthExceeded(self, line: bytes) -> None:
        # In line mode, a request object exists once its request line was parsed.
        if self.requests:
            self._reject_malformed(431, "Request header line too long")
        else:
            self._reject_malformed(414, "Request line too long")

    def _reject_malformed(self, status: int, message: str) -> None:
        self._cancel_read_deadline()
        if not self.answered_early:
            self.answered_early = True
            self.transport.write(_final_answer(*json_error(status, "M_UNRECOGNIZED", message)))
        log.info("%s: malformed request answered %d: %s", getattr(self.transport.getPeer(), "host", "-"),
                 status, message)
        self.loseConnection()


class GatewayRequest(server.Request):
    site: GatewaySite

    def __init__(self, channel: Any, queued: Any = None) -> None:
        super().__init__(channel)
        self.started = time.perf_counter()
        self.request_id = ""
        self._too_large = False
        self._tracked = False
        #: A histogram to observe the request's duration in when it ends (set by the handler).
        self.observe_time: Any = None
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
        channel = self.channel
        # The request line is parsed but not yet handed to us: take method and path for log and metrics.
        self.method = getattr(channel, "_command", self.method)
        self.path = getattr(channel, "_path", b"").split(b"?", 1)[0]
        # No "100 Continue" after the final answer: the client must not start sending the body now.
        self.requestHeaders.removeHeader(b"expect")
        status, body = json_error(413, "M_TOO_LARGE",
                                  f"Request body is larger than {channel.site.max_body_bytes} bytes")
        channel.answered_early = True
        rid = b"X-Request-ID: %s\r\n" % self._pick_request_id().encode()
        channel.transport.write(_final_answer(status, body, rid))
        self.code = 413
        channel.site.count_status(self, 413)
        channel.site.log_access(self, 413, len(body))

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
            self.request_id = value if _REQUEST_ID.match(value) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
        return self.request_id

    def process(self) -> None:
        """twisted.web's `process` without what this server never uses (per-request resource traversal
        of a single leaf root, unquoted ``postpath`` lists that `Root` recomputes, the zope interface
        check for encoders, the ``*`` request target), the Date header formatted once per second, and
        the end of the request noted by `_ended` instead of a Deferred per request."""
        self.setHeader(b"X-Request-ID", self._pick_request_id().encode())
        site = self.channel.site
        self.site = site
        site.started_request(self)
        self._tracked = True
        self.setHeader(b"Server", server.version)
        self.setHeader(b"Date", _http_date())
        self.prepath, self.postpath, self.sitepath = [], [], []
        try:
            self.render(site.resource)
        except BaseException:
            self.processingFailed(Failure())

    def _cleanup(self) -> None:
        super()._cleanup()
        self._ended()

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self._ended()

    def _ended(self) -> None:
        """The response was sent, or the client went away: once per processed request."""
        if self._tracked:
            self._tracked = False
            if self.observe_time is not None:
                self.observe_time.observe(time.perf_counter() - self.started)
            self.site.finished_request(self)

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
    # Plain HTTP/1.1 (no TLS, hence no HTTP/2 negotiation that the generic channel wrapper exists for).
    protocol = GatewayChannel  # type: ignore[assignment]

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


_date_cache: list[Any] = [0, b""]


def _http_date() -> bytes:
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0], _date_cache[1] = now, http.datetimeToString(now)
    return _date_cache[1]


def _s(b: bytes | None) -> str:
    return (b or b"").decode("latin-1")
