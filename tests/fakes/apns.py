"""A fake APNs: HTTP/2 over TLS with raw `h2` on its own asyncio loop in a thread.

It validates what real APNs validates (ES256 provider token or client certificate, topic, apns-id,
priority, expiration, push type, collapse id, device-token path, 4096-byte body) and answers with
APNs' status and ``{"reason": ...}`` bodies, echoing ``apns-id``. Per device token a script of
`Reply`/`Stall`/`Reset`/`Close` actions can be queued; unscripted requests get 200. Everything
received is recorded byte-exact. Raw h2 because twisted.web's and hypercorn's HTTP/2 servers end
every response with an empty DATA frame, which real APNs never sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import H2Error
from h2.settings import SettingCodes

from tests.support.tls import TestCA
from tests.fakes.loop_thread import LoopThreadFake

PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm", "liveactivity", "location",
              "pushtotalk"}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    reason: str | None = None
    timestamp: int | None = None
    #: Echo the request's apns-id (real APNs always does).
    apns_id: bool = True
    #: Raw DATA bytes instead of {"reason": ...}; b"" sends an empty DATA frame.
    raw_body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    #: Answer with a HEADERS frame only (END_STREAM), even for an error status.
    headers_only: bool = False


@dataclass(frozen=True)
class Stall:
    """Never answer this stream."""


@dataclass(frozen=True)
class Reset:
    """RST_STREAM the request."""


@dataclass(frozen=True)
class Close:
    """Drop the TCP connection (every stream on it is lost)."""


Action = Reply | Stall | Reset | Close


@dataclass
class Received:
    token: str
    headers: dict[str, str]
    body: bytes
    connection: int
    stream_id: int
    answer: Action | None = None
    jwt_claims: dict[str, Any] | None = None
    jwt_header: dict[str, Any] | None = None
    client_cert_subject: str | None = None
    received_at: float = 0.0


def make_p8(out_dir: Path, name: str = "AuthKey_TESTKEY.p8") -> tuple[Path, str]:
    """An APNs-style .p8 signing key; returns (path, public key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return path, public


@dataclass
class TokenAuth:
    public_key_pem: str
    key_id: str
    team_id: str


class FakeAPNs(LoopThreadFake):
    thread_name = "fake-apns"

    def __init__(self, ca: TestCA, cert_dir: Path, *, topic: str, token_auth: TokenAuth | None = None,
                 client_ca: TestCA | None = None, max_concurrent_streams: int = 1000,
                 initial_window_size: int = 65535, host: str = "127.0.0.1",
                 server_name: str = "localhost") -> None:
        files = ca.issue(cert_dir, "fake-apns", (server_name, "127.0.0.1"))
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.load_cert_chain(files.cert, files.key)
        self._ssl.set_alpn_protocols(["h2"])
        if client_ca is not None:
            self._ssl.verify_mode = ssl.CERT_REQUIRED
            self._ssl.load_verify_locations(client_ca.cert_path)
        self.topic = topic
        self.token_auth = token_auth
        self.server_name = server_name
        self.host = host
        self.port = 0
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.requests: list[Received] = []
        self.resets_received = 0
        self.connections = 0
        self._scripts: dict[str, deque[Action]] = defaultdict(deque)
        self._cond = threading.Condition()
        self._protocols: list[_Conn] = []

    # -- control (test thread) -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.server_name}:{self.port}"

    def script(self, token: str, *actions: Action) -> None:
        with self._cond:
            self._scripts[token].extend(actions)

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(f"fake APNs got {len(self.requests)} requests, expected {n}")
            return list(self.requests)

    def wait_resets(self, n: int, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.resets_received >= n, timeout):
                raise AssertionError(f"fake APNs got {self.resets_received} RST_STREAMs, expected {n}")

    def for_token(self, token: str) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.token == token]

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()
            self._scripts.clear()
            self.resets_received = 0

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        server = await asyncio.get_running_loop().create_server(lambda: _Conn(self), self.host, self.port,
                                                                ssl=self._ssl, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        yield
        server.close()
        for proto in list(self._protocols):
            if proto.transport is not None:
                proto.transport.abort()
        await asyncio.sleep(0)

    # -- server side (fake's loop) -----------------------------------------------------------
    def _next_action(self, token: str) -> Action:
        with self._cond:
            queue = self._scripts.get(token)
            return queue.popleft() if queue else Reply()

    def _record(self, rec: Received) -> None:
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def _record_reset(self) -> None:
        with self._cond:
            self.resets_received += 1
            self._cond.notify_all()

    def validate(self, rec: Received, cert_subject_uid: str | None) -> Reply | None:
        """APNs' request checks, in roughly APNs' order; None when the request is acceptable."""
        h = rec.headers
        if h.get(":method") != "POST":
            return Reply(405, "MethodNotAllowed")
        path = h.get(":path", "")
        if not path.startswith("/3/device/"):
            return Reply(404, "BadPath")
        if not _HEX.fullmatch(rec.token) or len(rec.token) % 2:
            return Reply(400, "BadDeviceToken")
        if self.token_auth is not None:
            auth = h.get("authorization", "")
            if not auth.startswith("bearer "):
                return Reply(403, "MissingProviderToken")
            token = auth[len("bearer "):]
            try:
                rec.jwt_header = jwt.get_unverified_header(token)
                rec.jwt_claims = jwt.decode(token, self.token_auth.public_key_pem, algorithms=["ES256"],
                                            options={"require": ["iat", "iss"], "verify_iat": False})
            except jwt.PyJWTError:
                return Reply(403, "InvalidProviderToken")
            if rec.jwt_header.get("kid") != self.token_auth.key_id or \
                    rec.jwt_claims.get("iss") != self.token_auth.team_id:
                return Reply(403, "InvalidProviderToken")
            if rec.jwt_claims["iat"] < time.time() - 3600:
                return Reply(403, "ExpiredProviderToken")
        topic = h.get("apns-topic")
        if topic is None and cert_subject_uid is None:
            return Reply(400, "MissingTopic")
        if (topic or cert_subject_uid) != self.topic:
            return Reply(400, "TopicDisallowed" if topic else "BadTopic")
        if "apns-id" in h and not _UUID.fullmatch(h["apns-id"]):
            return Reply(400, "BadMessageId")
        if h.get("apns-priority", "10") not in ("5", "10", "1"):
            return Reply(400, "BadPriority")
        if h.get("apns-priority") == "10" and h.get("apns-push-type") == "background":
            return Reply(400, "BadPriority")
        if "apns-expiration" in h and not h["apns-expiration"].isdigit():
            return Reply(400, "BadExpirationDate")
        if "apns-push-type" in h and h["apns-push-type"] not in PUSH_TYPES:
            return Reply(400, "InvalidPushType")
        if len(h.get("apns-collapse-id", "").encode()) > 64:
            return Reply(400, "BadCollapseId")
        if not rec.body:
            return Reply(400, "PayloadEmpty")
        if len(rec.body) > 4096:
            return Reply(413, "PayloadTooLarge")
        try:
            if not isinstance(json.loads(rec.body), dict):
                raise ValueError
        except ValueError:
            return Reply(400, "BadRequest")
        return None


class _Conn(asyncio.Protocol):
    def __init__(self, fake: FakeAPNs) -> None:
        self.fake = fake
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.index = 0
        self.cert_uid: str | None = None
        self.cert_subject: str | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        with self.fake._cond:
            self.fake.connections += 1
            self.index = self.fake.connections
        self.fake._protocols.append(self)
        der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        if der:
            cert = x509.load_der_x509_certificate(der)
            self.cert_subject = cert.subject.rfc4514_string()
            uids = cert.subject.get_attributes_for_oid(x509.NameOID.USER_ID)
            self.cert_uid = str(uids[0].value) if uids else None
        self.conn.initiate_connection()
        self.conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: self.fake.max_concurrent_streams,
                                   SettingCodes.INITIAL_WINDOW_SIZE: self.fake.initial_window_size})
        self.transport.write(self.conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.fake._protocols:
            self.fake._protocols.remove(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except H2Error:
            self.transport.close()
            return
        for e in events:
            if isinstance(e, RequestReceived):
                self.streams[e.stream_id] = (dict(e.headers), bytearray())
            elif isinstance(e, DataReceived):
                if e.stream_id in self.streams:
                    self.streams[e.stream_id][1].extend(e.data)
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, StreamEnded):
                headers, body = self.streams.pop(e.stream_id, ({}, bytearray()))
                self._handle(e.stream_id, headers, bytes(body))
            elif isinstance(e, StreamReset):
                self.streams.pop(e.stream_id, None)
                self.fake._record_reset()
            elif isinstance(e, ConnectionTerminated):
                self.transport.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    def _handle(self, stream_id: int, headers: dict[str, str], body: bytes) -> None:
        token = headers.get(":path", "").rpartition("/")[2]
        rec = Received(token, headers, body, self.index, stream_id, client_cert_subject=self.cert_subject,
                       received_at=time.monotonic())
        action = self.fake.validate(rec, self.cert_uid) or self.fake._next_action(token)
        rec.answer = action
        self.fake._record(rec)
        if isinstance(action, Stall):
            return
        if isinstance(action, Reset):
            self.conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
            return
        if isinstance(action, Close):
            self.transport.close()
            return
        out = [(":status", str(action.status))]
        if action.apns_id:
            out.append(("apns-id", headers.get("apns-id") or str(uuid.uuid4())))
        out.extend(action.headers)
        if action.headers_only:
            data = None
        elif action.raw_body is not None:
            data = action.raw_body
        elif action.status != 200:
            reply: dict[str, Any] = {"reason": action.reason or ""}
            if action.timestamp is not None:
                reply["timestamp"] = action.timestamp
            data = json.dumps(reply).encode()
        else:
            data = None
        if data is None:
            self.conn.send_headers(stream_id, out, end_stream=True)
        else:
            out.append(("content-type", "application/json"))
            self.conn.send_headers(stream_id, out)
            self.conn.send_data(stream_id, data, end_stream=True)
