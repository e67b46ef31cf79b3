"""aioapns 4, hardened: one protocol subclass, the pools built around it, and one `send` call.

aioapns gives us TLS, the HTTP/2 connection pool and ES256 provider tokens, but its request/response
handling hangs or tears down connections in several reproducible cases. `HardenedProtocol` replaces
just that part; every fix is described on the method that makes it. We call `pool.acquire()` and
`HardenedProtocol.send()` directly instead of `APNs.send_notification()`: the latter swallows
connection errors, sleeps a second and raises `MaxAttemptsExceeded`, and logs every non-200 at ERROR
(possibly with the device token in the path). Retries, timeouts and classification belong to the
caller (`gateway.pushkins.apns`), which wraps each attempt in `asyncio.timeout()`; cancelling an
attempt is safe here and leaves the connection and its other streams intact.

This module only runs on the asyncio side (inside an asyncio Task on the shared loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import h2.events as ev
import h2.exceptions
from aioapns.connection import (
    APNsBaseConnectionPool,
    APNsCertConnectionPool,
    APNsKeyConnectionPool,
    APNsTLSClientProtocol,
    JWTAuthorizationHeaderProvider,
)
from aioapns.exceptions import ConnectionError as ApnsConnectError
from h2.config import H2Configuration
from h2.connection import AllowedStreamIDs, ConnectionInputs, H2Connection
from h2.errors import ErrorCodes
from h2.stream import StreamInputs
from hpack import Encoder

log = logging.getLogger("gateway.pushkins.apns")

PRODUCTION_HOST = "api.push.apple.com"
SANDBOX_HOST = "api.development.push.apple.com"


class ApnsTransportError(Exception):
    """A failure below HTTP (retryable): ``connect``, ``connection_lost``, ``stream_reset``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ApnsRequest:
    """One push, built once: retries resend the same bytes with the same ``apns-id``."""

    token: str
    body: bytes
    apns_id: str
    priority: int = 10
    #: Absolute ``apns-expiration`` (unix seconds; 0 = deliver once, never store).
    expiration: int | None = None
    collapse_id: str | None = None
    push_type: str | None = None


@dataclass(frozen=True, slots=True)
class ApnsResponse:
    status: int
    reason: str = ""
    #: For 410: when APNs learnt the token was invalid, in milliseconds since the epoch.
    timestamp: int | None = None
    apns_id: str | None = None


#: What a stream ends with: the response, or the transport failure (kind "timeout" from `start`'s deadline).
Done = Callable[["ApnsResponse | ApnsTransportError"], None]
#: Deadlines this close are due (asyncio may run a timer a hair before its time).
_DUE_SLACK_S = 0.001


class _Stream:
    __slots__ = ("done", "headers", "body", "sent_at", "deadline")

    def __init__(self, done: Done, sent_at: float, deadline: float | None) -> None:
        self.done = done
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.sent_at = sent_at
        #: Set for `start`ed streams (the connection times them out); None for `send`'s (the caller does).
        self.deadline = deadline


def _resolve(future: Any, result: Any) -> None:
    if not future.done():
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _parse_body(body: bytes) -> tuple[str, int | None]:
    if not body:
        return "", None
    try:
        data = json.loads(body)
    except ValueError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    reason = data.get("reason")
    ts = data.get("timestamp")
    return (reason if isinstance(reason, str) else ""), (ts if isinstance(ts, int) and not isinstance(ts, bool)
                                                         else None)


class HardenedProtocol(APNsTLSClientProtocol):
    """aioapns' client protocol with correct stream bookkeeping.

    Subclassed per pushkin by `protocol_class()` to set ``APNS_SERVER``/``APNS_PORT`` (aioapns reads
    the host and port from class attributes only).
    """

    #: aioapns closes connections idle for 10 s, so every burst after a pause pays a TLS handshake;
    #: Apple asks providers to keep connections open.
    INACTIVITY_TIME = 120

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """CPU per push: aioapns' h2 connection validates and normalises every outgoing header and
        Huffman-codes every literal in pure Python, and its HPACK table churns on values that never
        repeat (apns-id, path, expiration), evicting the long bearer token so that is re-coded too.
        Our headers are built from validated values, so outbound validation is off (and inbound, for
        the few headers of a TLS-authenticated peer we only read ``:status`` and ``apns-id`` from), and
        the header block is written directly (`_hpack_block`: static-table references and plain
        literals, valid HPACK that never touches the dynamic table; ~250 bytes more per request for
        the bearer token, far less CPU)."""
        super().__init__(*args, **kwargs)
        self.conn = _RequestWriter(H2Configuration(client_side=True, header_encoding=None,
                                                 validate_outbound_headers=False,
                                                 normalize_outbound_headers=False,
                                                 validate_inbound_headers=False))
        self.conn.encoder = _PlainEncoder()
        self._flush_scheduled = False
        self._streams: dict[int, _Stream] = {}
        self._unsent: deque[tuple[int, bytes]] = deque()
        self._last_rx = 0.0
        self._last_activity = 0.0
        self._closing = False
        self._expiry: asyncio.TimerHandle | None = None

    def refresh_inactivity_timer(self) -> None:
        """CPU per push: aioapns cancels and re-creates its idle timer on every flush (at least twice
        per push, a timer-heap insertion each). Here the last activity is only noted; the one timer,
        when it fires, closes the connection if it has been idle long enough or re-arms itself for
        the rest of the idle time."""
        self._last_activity = self.loop.time()
        if self.inactivity_timer is None:
            self.inactivity_timer = self.loop.call_later(self.INACTIVITY_TIME, self._idle_check)

    def _idle_check(self) -> None:
        idle_s = self.loop.time() - self._last_activity
        if idle_s >= self.INACTIVITY_TIME:
            self.close()
        else:
            self.inactivity_timer = self.loop.call_later(self.INACTIVITY_TIME - idle_s, self._idle_check)

    def flush(self) -> None:
        """aioapns' flush, without a TLS write call when h2 has nothing to send (after most reads)."""
        self.refresh_inactivity_timer()
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    @property
    def is_busy(self) -> bool:
        """A connection that received GOAWAY or is closing takes no new streams."""
        return self._closing or self.free_channels.is_busy

    async def send(self, req: ApnsRequest) -> ApnsResponse:
        """Send one request and wait for its response.

        Fixes: the response is matched by *stream id*, so a response without (or with a different)
        ``apns-id`` cannot hang the request or raise ``KeyError`` in ``data_received``; the body is the
        exact pre-encoded bytes the caller measured against the size limit (aioapns re-encodes the
        dict); a body that exceeds the peer's flow-control window waits for WINDOW_UPDATE instead of
        raising ``FlowControlError``; h2 errors (sending after GOAWAY) surface as a retryable
        `ApnsTransportError` instead of an unexpected exception.
        """
        if self._closing:
            raise ApnsTransportError("connection_lost")
        try:
            stream_id = await self.free_channels.acquire()
        except h2.exceptions.NoAvailableStreamIDError:
            self._closing = True
            self.close()
            raise ApnsTransportError("connection_lost") from None
        future = self.loop.create_future()
        self._open_stream(stream_id, req, partial(_resolve, future), None)
        future.add_done_callback(partial(self._on_future_done, stream_id))
        return await future

    def start(self, req: ApnsRequest, done: Done, timeout_s: float) -> bool:
        """`send` without a coroutine, Task or future, for the first attempt of a push: CPU per push.

        Each awaited send costs a Task, its steps, an ``asyncio.timeout`` timer and two extra loop
        iterations (future → Task → Deferred) before the outcome reaches the notify request. Here the
        request goes out synchronously and `done` is called once, from ``data_received``, with the
        `ApnsResponse` or an `ApnsTransportError` (``timeout`` once `timeout_s` passed: the stream is
        then reset as a cancelled `send`'s is). Timeouts share one timer per connection. False, with
        nothing sent, when no stream can be had without waiting (the caller awaits `send` instead).
        """
        channels = self.free_channels
        if self._closing or channels._value <= 0 or channels._waiters or \
                channels._stream_id + 2 > H2Connection.HIGHEST_ALLOWED_STREAM_ID:
            return False
        channels._value -= 1  # asyncio.Semaphore.acquire() without waiting, as aioapns' pool does
        channels._stream_id += 2
        deadline = self.loop.time() + timeout_s
        try:
            self._open_stream(channels._stream_id, req, done, deadline)
        except ApnsTransportError:
            return False
        expiry = self._expiry
        if expiry is None or deadline < expiry.when():
            if expiry is not None:
                expiry.cancel()
            self._expiry = self.loop.call_at(deadline, self._expire)
        return True

    def _open_stream(self, stream_id: int, req: ApnsRequest, done: Done, deadline: float | None) -> None:
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":path", b"/3/device/" + req.token.encode()),
            (b"host", self.APNS_SERVER.encode()),
            (b"apns-id", req.apns_id.encode()),
            (b"apns-topic", self.apns_topic.encode()),
        ]
        if req.expiration is not None:
            headers.append((b"apns-expiration", b"%d" % req.expiration))
        headers.append((b"apns-priority", b"%d" % req.priority))
        if req.collapse_id is not None:
            headers.append((b"apns-collapse-id", req.collapse_id.encode()))
        if req.push_type is not None:
            headers.append((b"apns-push-type", req.push_type.encode()))
        if self.auth_provider is not None:
            headers.append((b"authorization", self.auth_provider.get_header().encode()))
        block = _hpack_block(headers)
        self._streams[stream_id] = _Stream(done, self.loop.time(), deadline)
        try:
            if self._unsent or not self.conn.send_request(stream_id, block, req.body):
                self.conn.encoder.next_block = block
                self.conn.send_headers(stream_id, headers)
                if not self._unsent and self.conn.local_flow_control_window(stream_id) >= len(req.body):
                    self.conn.send_data(stream_id, req.body, end_stream=True)
                else:
                    self._unsent.append((stream_id, req.body))
                    self._send_unsent()
        except h2.exceptions.H2Error:
            del self._streams[stream_id]
            self.free_channels.release()
            raise ApnsTransportError("connection_lost") from None
        if not self._flush_scheduled:
            # Sends started in the same loop iteration share one TLS write.
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_now)

    def _expire(self) -> None:
        """Time out every due `start`ed stream; re-arm for the earliest remaining deadline."""
        self._expiry = None
        now = self.loop.time() + _DUE_SLACK_S
        due = [(sid, st) for sid, st in self._streams.items() if st.deadline is not None and st.deadline <= now]
        for sid, st in due:
            self._abandon(sid)
            self._report(st, ApnsTransportError("timeout"))
        if self._streams:
            later = [st.deadline for st in self._streams.values() if st.deadline is not None]
            if later:
                self._expiry = self.loop.call_at(min(later), self._expire)

    @staticmethod
    def _report(stream: _Stream, result: ApnsResponse | ApnsTransportError) -> None:
        """Hand a stream's end to its owner; the owner's failure must never take the connection down."""
        try:
            stream.done(result)
        except Exception:
            log.exception("APNs response handler failed")

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None and not self.transport.is_closing():
            self.flush()

    def _on_future_done(self, stream_id: int, future: Any) -> None:
        """Cancellation safety: a cancelled (timed-out) request resets only its own stream.

        In aioapns a late response for a cancelled request calls ``set_result`` on a cancelled future,
        the ``InvalidStateError`` escapes ``data_received`` and asyncio drops the whole connection with
        every other in-flight stream. Here the stream is reset (RST_STREAM CANCEL), forgotten and its
        slot released, so late frames are ignored. If nothing at all arrived on the connection since
        this request was sent, the connection is presumed dead (e.g. a silently dropped NAT entry,
        which aioapns never notices because every send refreshes its idle timer) and is closed, so the
        retry goes out on a fresh one.
        """
        if future.cancelled():
            self._abandon(stream_id)

    def _abandon(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self.free_channels.release()
        try:
            self.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            self.flush()
        except (h2.exceptions.H2Error, AssertionError, RuntimeError):
            pass
        if self._last_rx < stream.sent_at and not self._closing:
            log.warning("APNs connection silent since the timed-out request was sent; closing it")
            self._closing = True
            self.close()

    def data_received(self, data: bytes) -> None:
        """Fixes: DATA is buffered per stream and parsed once at END_STREAM, so an empty DATA frame (or
        a body split over frames, or one that is not JSON) no longer raises ``JSONDecodeError`` inside
        ``data_received`` and kills the connection; a non-200 with no body resolves at END_STREAM with
        an empty reason instead of hanging forever; RST_STREAM from the server fails that request
        (aioapns logs "Unknown event" and the request hangs); received DATA is acknowledged, so the
        connection's receive window cannot run dry after many error bodies; an h2 protocol error
        closes the connection instead of escaping into the event loop.
        """
        self._last_rx = self.loop.time()
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.H2Error as e:
            log.warning("APNs connection protocol error (%s); closing it", type(e).__name__)
            self._closing = True
            self.close()
            return
        for event in events:
            if isinstance(event, ev.ResponseReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.headers = dict(event.headers)
            elif isinstance(event, ev.DataReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None and len(stream.body) < 65536:
                    stream.body += event.data
                if event.flow_controlled_length:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, ev.StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, ev.StreamReset):
                self._fail(event.stream_id, ApnsTransportError("stream_reset"))
            elif isinstance(event, ev.WindowUpdated):
                self._send_unsent()
            elif isinstance(event, ev.RemoteSettingsChanged):
                self.on_remote_settings_changed(event.changed_settings)
                self._send_unsent()
            elif isinstance(event, ev.ConnectionTerminated):
                self._closing = True
                log.info("APNs sent GOAWAY (error code %s)", event.error_code)
                self.close()
        if self.transport is not None and not self.transport.is_closing():
            self.flush()

    def _send_unsent(self) -> None:
        """Bodies waiting for flow-control credit, in order, in window-sized pieces."""
        while self._unsent:
            stream_id, body = self._unsent[0]
            if stream_id not in self._streams:
                self._unsent.popleft()
                continue
            size = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if size <= 0:
                return
            chunk, rest = body[:size], body[size:]
            self.conn.send_data(stream_id, chunk, end_stream=not rest)
            if rest:
                self._unsent[0] = (stream_id, rest)
            else:
                self._unsent.popleft()

    def _finish(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self.free_channels.release()
        try:
            status = int(stream.headers.get(b":status", b"0"))
        except ValueError:
            status = 0
        reason, timestamp = _parse_body(bytes(stream.body)) if status != 200 else ("", None)
        apns_id = stream.headers.get(b"apns-id")
        self._report(stream, ApnsResponse(status, reason, timestamp, apns_id.decode("latin-1") if apns_id else None))

    def _fail(self, stream_id: int, exc: ApnsTransportError) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self.free_channels.release()
        self._report(stream, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fails every pending request with a retryable error (aioapns calls ``set_exception`` on
        futures that may already be cancelled, which raises), and tolerates a pool that no longer
        lists this connection."""
        self._closing = True
        if self.inactivity_timer:
            self.inactivity_timer.cancel()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self.on_connection_lost:
            try:
                self.on_connection_lost(self)
            except ValueError:
                pass
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            self._report(stream, ApnsTransportError("connection_lost"))
        self.free_channels.destroy(ApnsTransportError("connection_lost"))


_FRAME_HEADERS, _FRAME_DATA = 0x1, 0x0
_END_STREAM, _END_HEADERS = 0x1, 0x4
#: Closed streams are dropped from h2's table (which its send_headers does on every call) this often.
_GC_EVERY = 64


class _RequestWriter(H2Connection):
    """h2's connection with one fast path: a whole request (HEADERS + one DATA frame) for a new stream.

    CPU per push: h2's ``send_headers``/``send_data`` build hyperframe objects (each with its own flag
    set), normalise the header list, and count the open streams by scanning every stream, which was the
    largest single cost of a push after TLS. This method makes the same state transitions on the
    connection and the new stream (h2 still tracks the stream and parses its response) and writes the
    two frames' bytes itself. It declines — and the caller uses h2's own methods — whenever anything
    out of the ordinary is involved: a header block over one frame, a body over the flow-control window
    or frame size, or a pending HPACK table-size update (which must lead the next block).
    """

    _since_gc = 0

    def send_request(self, stream_id: int, block: bytes, body: bytes) -> bool:
        size = len(body)
        if not 0 < size <= self.max_outbound_frame_size or len(block) > self.max_outbound_frame_size \
                or size > self.outbound_flow_control_window or size > self.remote_settings.initial_window_size \
                or self.encoder.header_table.resized:
            return False
        self.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
        stream = self._begin_new_stream(stream_id, AllowedStreamIDs.ODD)
        machine = stream.state_machine
        machine.process_input(StreamInputs.SEND_HEADERS)
        stream.request_method = b"POST"
        self.state_machine.process_input(ConnectionInputs.SEND_DATA)
        machine.process_input(StreamInputs.SEND_DATA)
        machine.process_input(StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        self._data_to_send += (_frame_head(len(block), _FRAME_HEADERS, _END_HEADERS, stream_id) + block
                               + _frame_head(size, _FRAME_DATA, _END_STREAM, stream_id) + body)
        self._since_gc += 1
        if self._since_gc >= _GC_EVERY:
            self._since_gc = 0
            self._open_streams(1)
        return True


def _frame_head(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return _FRAME_HEAD.pack(length >> 8, length & 0xFF, frame_type, flags, stream_id)


_FRAME_HEAD = struct.Struct(">HBBBL")


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_str(data: bytes) -> bytes:
    return _hpack_int(len(data), 7, 0) + data


#: RFC 7541 static table: fully indexed pairs and indexed names for the headers we send.
_STATIC_PAIRS = {(b":method", b"POST"): 3, (b":scheme", b"https"): 7}
_STATIC_NAMES = {b":path": 4, b"host": 38, b"authorization": 23}


def _hpack_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Static-table references and literals without indexing, no Huffman: a few byte concatenations
    instead of hpack's pure-Python table search and Huffman coding (the biggest CPU cost of a send)."""
    parts = []
    for name, value in headers:
        idx = _STATIC_PAIRS.get((name, value))
        if idx is not None:
            parts.append(bytes((0x80 | idx,)))
            continue
        idx = _STATIC_NAMES.get(name)
        if idx is not None:
            parts.append(_hpack_int(idx, 4, 0) + _hpack_str(value))
        else:
            parts.append(b"\x00" + _hpack_str(name) + _hpack_str(value))
    return b"".join(parts)


class _PlainEncoder(Encoder):
    """Returns the block prepared for the very next ``send_headers`` (h2 calls ``encode`` exactly once,
    synchronously, with its own copy of the list); hpack itself encodes any other block, and the one
    after a peer's table-size change (which must begin with a size update)."""

    next_block: bytes | None = None

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        block, self.next_block = self.next_block, None
        if block is not None and not self.header_table.resized:
            return block
        return super().encode(headers, huffman=False)


def protocol_class(host: str, port: int) -> type[HardenedProtocol]:
    return type("HardenedProtocol", (HardenedProtocol,), {"APNS_SERVER": host, "APNS_PORT": port})


class _ProxyTunnel:
    """CONNECT tunnelling for both pools.

    aioapns' own proxy path is broken on Python >= 3.11: it hands the proxy transport's
    ``TransportSocket`` wrapper to ``create_connection(sock=...)``, which fails with
    ``AttributeError: 'TransportSocket' object has no attribute 'send'`` and leaves the pool waiting
    forever for a "ready" event. It also matches the proxy's answer by substring, cannot
    authenticate to the proxy, and never reports a refused tunnel. Here the CONNECT exchange runs on a
    plain non-blocking socket, which is then handed to asyncio for TLS; a refusal raises.
    """

    proxy_host: str | None
    proxy_port: int | None
    proxy_authorization: str | None = None
    protocol_class: type[HardenedProtocol]
    ssl_context: ssl.SSLContext
    loop: asyncio.AbstractEventLoop

    async def _create_proxy_connection(self, apns_protocol_factory: Any) -> Any:
        host, port = self.protocol_class.APNS_SERVER, self.protocol_class.APNS_PORT
        infos = await self.loop.getaddrinfo(self.proxy_host, self.proxy_port, type=socket.SOCK_STREAM)
        family, type_, proto, _, addr = infos[0]
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await self.loop.sock_connect(sock, addr)
            request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            if self.proxy_authorization:
                request += f"Proxy-Authorization: {self.proxy_authorization}\r\n"
            await self.loop.sock_sendall(sock, (request + "\r\n").encode("latin-1"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await self.loop.sock_recv(sock, 4096)
                if not chunk or len(head) > 16384:
                    raise OSError("proxy closed the connection during CONNECT")
                head += chunk
            status_line = head.partition(b"\r\n")[0]
            parts = status_line.split(None, 2)
            if len(parts) < 2 or parts[1] != b"200":
                raise OSError(f"proxy refused CONNECT: {status_line[:100].decode('latin-1', 'replace')}")
            if not head.endswith(b"\r\n\r\n") or head.count(b"\r\n\r\n") != 1:
                raise OSError("proxy sent data before the tunnel was established")
            _, protocol = await self.loop.create_connection(apns_protocol_factory, sock=sock, ssl=self.ssl_context,
                                                            server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return protocol


class _TokenProvider(JWTAuthorizationHeaderProvider):
    """aioapns' ES256 provider token (refreshed every 30 minutes), reporting each signing."""

    on_token: Callable[[], None] | None = None

    def get_header(self) -> str:
        before = self._JWTAuthorizationHeaderProvider__header  # type: ignore[attr-defined]
        header = super().get_header()
        if header is not before and self.on_token is not None:
            self.on_token()
        return header


class _KeyPool(_ProxyTunnel, APNsKeyConnectionPool):
    """One provider token for all connections of the app.

    aioapns gives every connection its own JWT provider, so a pool of N connections signs and presents
    N different tokens, refreshed at N different times; Apple asks for one token refreshed at most every
    20 minutes (``TooManyProviderTokenUpdates`` otherwise).
    """

    async def create_connection(self) -> Any:
        auth = getattr(self, "_shared_auth", None)
        if auth is None:
            auth = self._shared_auth = _TokenProvider(key=self.key, key_id=self.key_id, team_id=self.team_id)
            auth.on_token = getattr(self, "on_token", None)
        factory = partial(self.protocol_class, self.apns_topic, self.loop, self.discard_connection, auth)
        if self.proxy_host and self.proxy_port:
            return await self._create_proxy_connection(factory)
        return await self._create_connection(factory)


class _CertPool(_ProxyTunnel, APNsCertConnectionPool):
    """aioapns' certificate pool, given a ready SSL context (with the client certificate loaded from
    memory, so encrypted keys and .p12 files work) and an explicit topic."""

    def __init__(self, ssl_context: ssl.SSLContext, topic: str, **kwargs: Any) -> None:
        APNsBaseConnectionPool.__init__(self, topic=topic, **kwargs)
        self.ssl_context = ssl_context


@dataclass(frozen=True)
class PoolSettings:
    host: str
    port: int
    topic: str
    ssl_context: ssl.SSLContext
    max_connections: int = 10
    key: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    proxy_host: str | None = None
    proxy_port: int | None = None
    #: Full ``Proxy-Authorization`` header value, e.g. ``Basic dXNlcjpwdw==``.
    proxy_authorization: str | None = None
    #: Called once per provider token signed (token auth), for a metric.
    on_token: Callable[[], None] | None = None


def open_pool(s: PoolSettings) -> APNsBaseConnectionPool:
    """Build the aioapns pool; call with the shared asyncio loop running (the pool captures it)."""
    common = dict(topic=s.topic, max_connections=s.max_connections, max_connection_attempts=1,
                  proxy_host=s.proxy_host, proxy_port=s.proxy_port)
    pool: APNsBaseConnectionPool
    if s.key is not None:
        pool = _KeyPool(key=s.key, key_id=s.key_id, team_id=s.team_id, ssl_context=s.ssl_context, **common)
    else:
        pool = _CertPool(s.ssl_context, **common)
    pool.proxy_authorization = s.proxy_authorization  # type: ignore[attr-defined]
    pool.on_token = s.on_token  # type: ignore[attr-defined]
    pool.protocol_class = protocol_class(s.host, s.port)
    return pool


async def send(pool: APNsBaseConnectionPool, req: ApnsRequest) -> ApnsResponse:
    """One attempt. Raises ApnsTransportError; the caller bounds it with ``asyncio.timeout()``."""
    try:
        connection = await pool.acquire()
    except ApnsConnectError:
        raise ApnsTransportError("connect") from None
    return await connection.send(req)  # type: ignore[attr-defined]
