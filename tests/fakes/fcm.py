"""A fake Google OAuth2 token endpoint and FCM HTTP v1 server, over real HTTPS, in a thread of the test process.

It speaks the real protocol: ``POST /token`` checks the JWT-bearer grant (RS256 signature against the
service account's public key, issuer, scope, key id) and issues opaque access tokens with a lifetime;
``POST /v1/projects/<id>/messages:send`` checks ``Authorization: Bearer`` against issued, unexpired,
unrevoked tokens and answers like FCM, including the ``error.details[].errorCode`` documents.

Per pushkey a script of `Reply`s can be queued (errors, Retry-After, slow answers, connection resets);
unscripted pushkeys get 200. Every request is recorded byte-exact (headers as sent, body bytes), with
concurrency and connection counts, so tests assert what reached the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import collections
import itertools
import json
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.tls import CertFiles
from tests.fakes.loop_thread import LoopThreadFake

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass(frozen=True)
class ServiceAccount:
    path: Path
    client_email: str
    key_id: str
    public_key_pem: bytes


def make_service_account(out_dir: Path, token_uri: str, *, name: str = "push",
                         project_id: str = "fake-project") -> ServiceAccount:
    """A real service-account key file (fresh RSA key) whose token_uri points at the fake."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = f"{name}@{project_id}.iam.gserviceaccount.com"
    key_id = f"kid-{name}"
    info = {"type": "service_account", "project_id": project_id, "private_key_id": key_id, "private_key": pem,
            "client_email": email, "client_id": "1", "token_uri": token_uri}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"sa-{name}.json"
    path.write_text(json.dumps(info))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return ServiceAccount(path, email, key_id, public)


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the fake FCM."""

    status: int = 200
    #: FcmError.errorCode (UNREGISTERED, SENDER_ID_MISMATCH, QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, ...).
    error_code: str | None = None
    message: str = "error"
    #: Adds a google.rpc.BadRequest detail naming ``message.token`` (the token itself is malformed).
    token_violation: bool = False
    retry_after: str | None = None
    delay_s: float = 0.0
    #: Abort the TCP connection with RST instead of answering (after `delay_s`).
    reset: bool = False
    #: Raw body instead of the generated one.
    body: bytes | None = None


def error_body(status: int, error_code: str | None, message: str, token_violation: bool = False) -> bytes:
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    if token_violation:
        details.append({"@type": BAD_REQUEST,
                        "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]})
    return json.dumps({"error": {"code": status, "message": message, "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
                                 "details": details}}).encode()


@dataclass(frozen=True)
class Recorded:
    path: str
    #: Header (name, value) pairs exactly as received, in order.
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    #: The pushkey (message.token) of a send, or the issuer of a token request.
    key: str | None
    peer: tuple[str, int]
    at: float

    def header(self, name: str) -> str | None:
        for k, v in self.raw_headers:
            if k.decode().lower() == name.lower():
                return v.decode()
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Token:
    expires: float
    revoked: bool = False


@dataclass
class FakeGoogle(LoopThreadFake):
    thread_name = "fake-google"

    cert: CertFiles
    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    project_id: str = "fake-project"
    token_lifetime_s: int = 3600
    #: Delay of every token answer (lets concurrent senders pile up behind one refresh).
    token_delay_s: float = 0.0
    #: Default delay of every send answer.
    send_delay_s: float = 0.0

    def __post_init__(self) -> None:
        self.sends: list[Recorded] = []
        self.token_requests: list[Recorded] = []
        self.token_failures: collections.deque[tuple[int, dict[str, Any]]] = collections.deque()
        self._scripts: dict[str, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self._tokens: dict[str, _Token] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.peers: set[tuple[str, int]] = set()
        self.port = 0

    # -- test API ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def add_account(self, sa: ServiceAccount) -> None:
        self.accounts[sa.client_email] = sa

    def script(self, pushkey: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[pushkey].extend(replies)

    def fail_token_requests(self, status: int, body: dict[str, Any], times: int = 1) -> None:
        with self._lock:
            self.token_failures.extend([(status, body)] * times)

    def revoke_tokens(self) -> None:
        with self._lock:
            for t in self._tokens.values():
                t.revoked = True

    def sends_for(self, pushkey: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.sends if r.key == pushkey]

    def tokens_for(self, client_email: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.token_requests if r.key == client_email]

    def reset_stats(self) -> None:
        with self._lock:
            self.max_inflight = 0
            self.peers = set()

    # -- server ---------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert.cert), str(self.cert.key))
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield
        await runner.cleanup()

    async def _record(self, request: web.Request) -> tuple[bytes, tuple[str, int]]:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else ("?", 0)
        return body, (peer[0], peer[1])

    async def _token(self, request: web.Request) -> web.Response:
        body, peer = await self._record(request)
        form = urllib.parse.parse_qs(body.decode())
        assertion = (form.get("assertion") or [""])[0]
        issuer = None
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
            issuer = claims.get("iss")
        except jwt.PyJWTError:
            header, claims = {}, {}
        with self._lock:
            self.token_requests.append(Recorded(request.path, tuple(request.raw_headers), body, issuer, peer,
                                                time.monotonic()))
            failure = self.token_failures.popleft() if self.token_failures else None
        if self.token_delay_s:
            await asyncio.sleep(self.token_delay_s)
        if failure is not None:
            return web.json_response(failure[1], status=failure[0])
        sa = self.accounts.get(issuer or "")
        problem = None
        if form.get("grant_type") != [JWT_BEARER]:
            problem = "unsupported grant_type"
        elif sa is None:
            problem = "unknown issuer"
        elif header.get("alg") != "RS256" or header.get("kid") != sa.key_id:
            problem = "bad JWT header"
        else:
            try:
                # The aud is Google's real token URL whatever token_uri says; it is not checked.
                claims = jwt.decode(assertion, sa.public_key_pem, algorithms=["RS256"],
                                    options={"verify_aud": False, "require": ["iss", "exp", "iat", "scope"]})
            except jwt.PyJWTError as e:
                problem = f"bad assertion: {type(e).__name__}"
            else:
                if FCM_SCOPE not in str(claims.get("scope", "")).split():
                    problem = "scope missing"
        if problem is not None:
            return web.json_response({"error": "invalid_grant", "error_description": problem}, status=400)
        token = f"ya29.fake-{next(self._counter)}"
        with self._lock:
            self._tokens[token] = _Token(time.monotonic() + self.token_lifetime_s)
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime_s,
                                  "token_type": "Bearer"})

    def _token_ok(self, auth: str | None) -> bool:
        if not auth or not auth.startswith("Bearer "):
            return False
        with self._lock:
            t = self._tokens.get(auth[len("Bearer "):])
            return t is not None and not t.revoked and t.expires > time.monotonic()

    async def _send(self, request: web.Request) -> web.StreamResponse:
        body, peer = await self._record(request)
        try:
            key = json.loads(body)["message"]["token"]
        except (ValueError, KeyError, TypeError):
            key = None
        with self._lock:
            self.sends.append(Recorded(request.path, tuple(request.raw_headers), body, key, peer, time.monotonic()))
            self.peers.add(peer)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            script = self._scripts.get(key or "")
            reply = script.popleft() if script else Reply(delay_s=self.send_delay_s)
        try:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            if reply.reset:
                sock = request.transport.get_extra_info("socket") if request.transport else None
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("scripted reset")
            if request.match_info["project"] != self.project_id:
                return web.Response(status=404, body=error_body(404, None, "Requested entity was not found."),
                                    content_type="application/json")
            if not self._token_ok(request.headers.get("Authorization")):
                return web.Response(status=401, content_type="application/json", body=error_body(
                    401, None, "Request had invalid authentication credentials."))
            headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            if reply.status == 200 and reply.body is None:
                name = f"projects/{self.project_id}/messages/0:{next(self._counter)}%fake"
                return web.json_response({"name": name}, headers=headers)
            data = reply.body if reply.body is not None else error_body(
                reply.status, reply.error_code, reply.message, reply.token_violation)
            return web.Response(status=reply.status, body=data, headers=headers, content_type="application/json")
        finally:
            with self._lock:
                self.inflight -= 1
