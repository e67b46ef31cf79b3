"""The ``type: apns`` pushkin: iOS pushes through aioapns 4 on the shared asyncio loop.

Per device: pushkey → hex token (`apns_token`), notification → payload (`apns_payload`), payload →
bytes within 4096 (`apns_truncate`), then up to ``max_tries`` attempts over the hardened aioapns pool
(`apns_protocol`), each bounded by ``request_timeout_s`` and all of them by the notify deadline, with
jittered exponential backoff between them. Every attempt carries the same ``apns-id`` and body, so APNs
(and the device) can recognise a retried push.

Classification: token errors reject the pushkey (410 only if APNs invalidated it after the pusher's
``pushkey_ts``); 429/5xx/timeouts/connection failures are retried, then temporary; provider-auth,
request and size errors are permanent, counted, and logged at ERROR at most once a minute per app and
kind — they never reject pushkeys, so a revoked key or wrong topic cannot wipe every pusher.

The retry loop runs as one asyncio Task per device (aioapns is asyncio-only); the Twisted side awaits it
through `Deferred.fromFuture`, and cancelling that Deferred cancels the Task, which resets the stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import ssl
import time
import uuid
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import Counter, Gauge, Histogram
from twisted.internet.defer import Deferred, succeed

from gateway.backoff import Backoff
from gateway.config.reader import ConfigError, Section
from gateway.model import Device, Notification, Outcome, Status
from gateway.pushkins.apns_credentials import CredentialError, load_client_cert, load_into, load_p8
from gateway.pushkins.apns_payload import BadDefaultPayload, PayloadOptions, build_payload
from gateway.pushkins.apns_protocol import (
    PRODUCTION_HOST,
    SANDBOX_HOST,
    ApnsRequest,
    ApnsResponse,
    ApnsTransportError,
    PoolSettings,
    open_pool,
    send,
)
from gateway.pushkins.apns_token import device_token
from gateway.pushkins.apns_truncate import PayloadTooLarge, encode_payload
from gateway.pushkins.base import Pushkin
from gateway.pushkins.tls import client_context, read_ca_file

log = logging.getLogger("gateway.pushkins.apns")

PUSH_TYPES = ("alert", "background", "voip", "complication", "fileprovider", "mdm", "liveactivity", "location",
              "pushtotalk")
PLATFORMS = ("production", "prod", "sandbox")
#: A room id used verbatim as apns-collapse-id (printable ASCII, at most 64 bytes); others are hashed.
_HEADER_SAFE = re.compile(r"[!-~]{1,64}")

#: APNs reasons that mean "this token will never work for this app": the pushkey is rejected.
TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "TopicDisallowed", "Unregistered",
                           "ExpiredToken"})
#: Provider authentication problems: our configuration, never the device's fault.
AUTH_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken", "BadCertificate",
                          "BadCertificateEnvironment", "Forbidden", "TooManyProviderTokenUpdates"})
#: Every reason APNs documents; anything else is reported as "other" (metric labels stay bounded).
KNOWN_REASONS = TOKEN_REASONS | AUTH_REASONS | frozenset({
    "BadCollapseId", "BadExpirationDate", "BadMessageId", "BadPriority", "BadTopic", "DuplicateHeaders",
    "IdleTimeout", "InvalidPushType", "MissingDeviceToken", "MissingTopic", "PayloadEmpty", "BadPath",
    "MethodNotAllowed", "PayloadTooLarge", "TooManyRequests", "InternalServerError", "ServiceUnavailable",
    "Shutdown"})

# Names as in docs/operations.md (dashboards and recording rules use them).
REQUESTS = Counter("tim_push_apns_requests", "APNs answers per attempt: HTTP status (or timeout, connect, "
                   "connection_lost, stream_reset) and APNs reason (sygnal_apns_status_codes)",
                   ["app", "status", "reason"])
REQUEST_TIME = Histogram("tim_push_apns_request_seconds", "Time of one APNs attempt (sygnal_apns_request_time)",
                         ["app"], buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
INFLIGHT = Gauge("tim_push_apns_inflight_requests", "APNs pushes in flight, retries included "
                 "(sygnal_active_apns_requests)", ["app"])
CONNECTIONS = Gauge("tim_push_apns_connections", "Open HTTP/2 connections to APNs", ["app"])
TOKEN_REFRESHES = Counter("tim_push_apns_token_refreshes", "Provider (JWT) token refreshes by result",
                          ["app", "status"])
RETRIES = Counter("tim_push_apns_retries", "APNs attempts retried after a temporary failure", ["app", "reason"])
TRUNCATED = Counter("tim_push_apns_payload_truncated", "Payloads truncated to fit APNs' 4096-byte limit", ["app"])


@dataclass(frozen=True)
class ApnsOptions:
    host: str
    port: int
    topic: str
    key: str | None = field(default=None, repr=False)
    key_id: str | None = None
    team_id: str | None = None
    cert: Any = field(default=None, repr=False)  # apns_credentials.ClientCert
    ca_file: str | None = None
    push_type: str | None = None
    convert_device_token_to_hex: bool = True
    send_badge_counts: bool = True
    max_connections: int = 10
    max_tries: int = 3
    request_timeout_s: float = 5.0
    ttl_s: int = 86400
    collapse_id: str | None = None


def _apns_url(s: Section, sandbox: bool) -> tuple[str, int]:
    url = s.str("apns_url", None)
    if url is None:
        return (SANDBOX_HOST if sandbox else PRODUCTION_HOST), 443
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        raise s.error("apns_url", f"invalid port in {url!r}") from None
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise s.error("apns_url", f"must be https://host[:port], got {url!r}")
    return parts.hostname, port


def parse_options(s: Section) -> ApnsOptions:
    platform = s.str("platform", "production", choices=PLATFORMS)
    host, port = _apns_url(s, platform == "sandbox")
    keyfile, certfile = s.path_to_file("keyfile", None), s.path_to_file("certfile", None)
    password = s.secret("certfile_password", None)
    topic = s.str("topic", None)
    key_id, team_id = s.str("key_id", None), s.str("team_id", None)
    creds: dict[str, Any] = {}
    if keyfile and certfile:
        raise s.error("certfile", "give either keyfile (token auth) or certfile (certificate auth), not both")
    if keyfile:
        for name, value in (("key_id", key_id), ("team_id", team_id), ("topic", topic)):
            if not value:
                raise s.error(name, "is required with keyfile (token auth)")
        try:
            creds = dict(key=load_p8(keyfile), key_id=key_id, team_id=team_id)
        except CredentialError as e:
            raise s.error("keyfile", str(e)) from None
    elif certfile:
        try:
            cert = load_client_cert(certfile, password)
        except CredentialError as e:
            raise s.error("certfile", str(e)) from None
        topic = topic or cert.uid
        if not topic:
            raise s.error("topic", "is required: the certificate has no UID to take the topic from")
        creds = dict(cert=cert)
    else:
        raise ConfigError(s.path, "needs keyfile + key_id + team_id + topic (token auth) or certfile "
                                  "(certificate auth)")
    collapse = s.str("collapse_id", "none", choices=("none", "room_id"))
    return ApnsOptions(
        host=host, port=port, topic=topic, ca_file=read_ca_file(s),
        push_type=s.str("push_type", None, choices=PUSH_TYPES),
        convert_device_token_to_hex=s.bool("convert_device_token_to_hex", True),
        send_badge_counts=s.bool("send_badge_counts", True),
        max_connections=s.int("max_connections", 10, min=1, max=1000),
        max_tries=s.int("max_tries", 3, min=1, max=10),
        request_timeout_s=s.number("request_timeout_s", 5.0, min=0.05, max=300),
        ttl_s=s.int("ttl_s", 86400, min=0, max=365 * 86400),
        collapse_id=None if collapse == "none" else collapse,
        **creds,
    )


def _proxy_settings(proxy: str | None) -> dict[str, Any]:
    if not proxy:
        return {}
    parts = urlsplit(proxy)
    out: dict[str, Any] = dict(proxy_host=parts.hostname, proxy_port=parts.port or 80)
    if parts.username is not None:
        creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        out["proxy_authorization"] = "Basic " + b64encode(creds.encode()).decode()
    return out


class _EveryMinute:
    """At most one ERROR line per kind per period; the next line says how many were folded into it."""

    def __init__(self, period_s: float = 60.0) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def error(self, kind: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            self._folded[kind] = self._folded.get(kind, 0) + 1
            return
        self._last[kind] = now
        folded = self._folded.pop(kind, 0)
        if folded:
            log.error(msg + " (%d more like this in the last minute)", *args, folded)
        else:
            log.error(msg, *args)


_APNS_ID_NAMESPACE = uuid.UUID("6f1d3c1e-8a8e-4c55-9d7a-2f6a0b7c9e41").bytes


def apns_id_for(app_id: str, pushkey: str, event_id: str | None) -> str:
    """The apns-id of one push: derived from (app, pushkey, event), so every retry of it — in-request,
    from the retry queue, even after a restart — carries the same id, as Apple asks. Badge-only pokes
    have no event and get a fresh id.

    The value is RFC 4122 UUIDv5 (v4 for pokes), exactly what ``uuid.uuid5`` returns, built from the
    digest directly: ``uuid.UUID`` objects cost more than the rest of the id per push."""
    if event_id is None:
        raw = bytearray(os.urandom(16))
        version = 0x40
    else:
        name = f"{app_id}\x00{pushkey}\x00{event_id}".encode()
        raw = bytearray(hashlib.sha1(_APNS_ID_NAMESPACE + name).digest()[:16])
        version = 0x50
    raw[6] = (raw[6] & 0x0F) | version
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class ApnsPushkin(Pushkin):
    @classmethod
    def parse_config(cls, section: Section) -> ApnsOptions:
        return parse_options(section)

    def __init__(self, app: Any, ctx: Any) -> None:
        super().__init__(app, ctx)
        self.opts: ApnsOptions = app.options
        self.payload_opts = PayloadOptions(send_badge_counts=self.opts.send_badge_counts,
                                           tim_content_free=app.tim_content_free)
        self.backoff = Backoff(max_tries=self.opts.max_tries, base_s=0.25, max_s=2.0)
        #: All attempts of one push; inside the notify deadline unless a retry queue takes over at it.
        self.budget_s = ctx.attempt_budget_s(self.opts.request_timeout_s * self.opts.max_tries + 2.0)
        self.errors = _EveryMinute()
        self.pool: Any = None
        #: Set at shutdown: pending pushes end instead of reconnecting for a retry.
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._responses: dict[tuple[str, str], Any] = {}
        self._attempt_time = REQUEST_TIME.labels(self.app_id)
        self._inflight = INFLIGHT.labels(self.app_id)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = client_context(self.opts.ca_file, alpn=["h2"])
        if self.opts.cert is not None:
            load_into(ctx, self.opts.cert)
        return ctx

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        o = self.opts
        self.pool = open_pool(PoolSettings(
            host=o.host, port=o.port, topic=o.topic, ssl_context=self.ssl_context(),
            max_connections=o.max_connections, key=o.key, key_id=o.key_id, team_id=o.team_id,
            on_token=TOKEN_REFRESHES.labels(self.app_id, "ok").inc, **_proxy_settings(self.ctx.proxy)))
        pool = self.pool
        CONNECTIONS.labels(self.app_id).set_function(lambda: len(pool.connections))
        if o.cert is not None:
            days = (o.cert.not_after.timestamp() - time.time()) / 86400
            if days < 30:
                log.warning("APNs client certificate of app %s expires in %.0f days", self.app_id, days)
        log.info("APNs app %s: %s:%d topic=%s auth=%s%s", self.app_id, o.host, o.port, o.topic,
                 "token" if o.key else "certificate", " via proxy" if self.ctx.proxy else "")

    async def stop(self) -> None:
        self.stopping = True
        if self.pool is not None:
            self.pool.close()

    # -- dispatch ------------------------------------------------------------------------------
    def prepare(self, n: Notification, device: Device) -> ApnsRequest | Outcome:
        """Everything before the network, synchronously: token, payload, body, headers."""
        o = self.opts
        token = device_token(device.pushkey, o.convert_device_token_to_hex)
        if token is None:
            log.warning("app %s pushkey %s is not an APNs device token; not sent", self.app_id, device.key_hash)
            return Outcome.failed("invalid_token")
        try:
            payload = build_payload(n, device, self.payload_opts)
        except BadDefaultPayload as e:
            log.info("app %s pushkey %s rejected: %s", self.app_id, device.key_hash, e)
            return Outcome.rejected("bad_default_payload")
        if payload is None:
            return Outcome(Status.DELIVERED, "nothing_to_send")
        try:
            body, truncated = encode_payload(payload)
        except PayloadTooLarge:
            self.errors.error("too_large", "app %s: payload over 4096 bytes with nothing left to truncate "
                              "(default_payload too big?)", self.app_id)
            return Outcome.failed("payload_too_large")
        if truncated:
            TRUNCATED.labels(self.app_id).inc()
        background = o.push_type == "background"
        collapse = None
        if o.collapse_id == "room_id" and n.room_id:
            collapse = n.room_id if _HEADER_SAFE.fullmatch(n.room_id) else \
                hashlib.sha256(n.room_id.encode()).hexdigest()
        return ApnsRequest(
            token=token, body=body, apns_id=apns_id_for(self.app_id, device.pushkey, n.event_id),
            priority=5 if (background or n.prio == "low") else 10,
            expiration=0 if o.ttl_s == 0 else int(time.time()) + o.ttl_s,
            collapse_id=collapse, push_type=o.push_type)

    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        return await self.dispatch_deferred(notification, device)

    def dispatch_deferred(self, notification: Notification, device: Device) -> Deferred[Outcome]:
        """Prepare and start the first attempt synchronously; its Deferred fires from the response."""
        try:
            prepared = self.prepare(notification, device)
            if isinstance(prepared, Outcome):
                return succeed(prepared)
            assert self.loop is not None, "start() was not awaited"
            first = self._first_attempt(prepared, device)
            if first is not None:
                return first
            return Deferred.fromFuture(self.loop.create_task(self.deliver(prepared, device)))
        except Exception:
            log.exception("APNs dispatch failed unexpectedly for app %s pushkey %s", self.app_id, device.key_hash)
            return succeed(Outcome.temporary("internal_error"))

    def _first_attempt(self, req: ApnsRequest, device: Device) -> Deferred[Outcome] | None:
        """The first attempt without an asyncio Task, when a connection has a free stream right now
        (`HardenedProtocol.start`): its outcome fires the Deferred straight from the response. A
        temporary failure continues in `deliver` (backoff, further attempts) exactly as if the first
        attempt had been made there. None: no stream free without waiting; the caller uses `deliver`."""
        if self.stopping or self.pool is None:
            return None
        loop = self.loop
        assert loop is not None
        started = loop.time()
        deadline = started + self.budget_s
        d: Deferred[Outcome] = Deferred()

        def done(result: ApnsResponse | ApnsTransportError) -> None:
            outcome = self._attempt_outcome(result, device, started)
            if self._retry_delay(outcome, 1, deadline) is None:
                self._inflight.dec()
                self._log_temporary(outcome, device, 1)
                d.callback(outcome)
                return
            task = loop.create_task(self.deliver(req, device, first=outcome, deadline=deadline, counted=True))
            Deferred.fromFuture(task).chainDeferred(d)

        for connection in self.pool.connections:
            if not connection.is_busy:
                self._inflight.inc()
                if connection.start(req, done, min(self.opts.request_timeout_s, self.budget_s)):
                    return d
                self._inflight.dec()
                return None
        return None

    async def deliver(self, req: ApnsRequest, device: Device, first: Outcome | None = None,
                      deadline: float | None = None, counted: bool = False) -> Outcome:
        """Attempts with backoff inside the budget (asyncio side); `first` is the outcome of an attempt
        already made (by `_first_attempt`, which also counted the push as in flight)."""
        if not counted:
            self._inflight.inc()
        try:
            return await self._attempts(req, device, first, deadline)
        finally:
            self._inflight.dec()

    async def _attempts(self, req: ApnsRequest, device: Device, first: Outcome | None,
                        deadline: float | None) -> Outcome:
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.budget_s
        attempt, outcome = (0, None) if first is None else (1, first)
        while True:
            if outcome is None:
                attempt += 1
                started = loop.time()
                try:
                    async with asyncio.timeout(min(self.opts.request_timeout_s, deadline - started)):
                        result: ApnsResponse | ApnsTransportError = await send(self.pool, req)
                except TimeoutError:
                    result = ApnsTransportError("timeout")
                except ApnsTransportError as e:
                    result = e
                outcome = self._attempt_outcome(result, device, started)
            delay = self._retry_delay(outcome, attempt, deadline)
            if delay is None:
                break
            RETRIES.labels(self.app_id, outcome.reason).inc()
            await asyncio.sleep(delay)
            outcome = None
        self._log_temporary(outcome, device, attempt)
        return outcome

    def _attempt_outcome(self, result: ApnsResponse | ApnsTransportError, device: Device, started: float) -> Outcome:
        if isinstance(result, ApnsTransportError):
            outcome = self._count(result.kind, "", Outcome.temporary(result.kind))
        else:
            outcome = self.classify(result, device)
        assert self.loop is not None
        self._attempt_time.observe(self.loop.time() - started)
        return outcome

    def _retry_delay(self, outcome: Outcome, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None when `outcome` is the push's outcome."""
        if outcome.status is not Status.TEMPORARY or attempt >= self.opts.max_tries or self.stopping:
            return None
        delay = self.backoff.delay(attempt, outcome.retry_after)
        assert self.loop is not None
        if self.loop.time() + delay + 0.05 >= deadline:
            return None
        return delay

    def _log_temporary(self, outcome: Outcome, device: Device, attempts: int) -> None:
        if outcome.status is Status.TEMPORARY:
            log.warning("APNs push for app %s pushkey %s failed temporarily after %d attempt(s): %s",
                        self.app_id, device.key_hash, attempts, outcome.reason)

    def _count(self, status: str, reason: str, outcome: Outcome) -> Outcome:
        key = (status, reason)
        child = self._responses.get(key)
        if child is None:
            child = self._responses[key] = REQUESTS.labels(self.app_id, status, reason)
        child.inc()
        return outcome

    def classify(self, resp: ApnsResponse, device: Device) -> Outcome:
        status = resp.status
        reason = resp.reason if resp.reason in KNOWN_REASONS else ("other" if resp.reason else "")
        label = str(status) if 100 <= status <= 599 else "invalid"
        if status == 200:
            return self._count(label, "", Outcome.delivered())
        if reason in TOKEN_REASONS:
            if status == 410 and resp.timestamp is not None and device.pushkey_ts is not None \
                    and device.pushkey_ts * 1000 > resp.timestamp:
                log.info("app %s pushkey %s: APNs says %s as of %d, but the pusher was refreshed later; "
                         "not rejecting", self.app_id, device.key_hash, reason, resp.timestamp)
                return self._count(label, reason, Outcome.failed("unregistered_before_refresh"))
            log.info("app %s pushkey %s rejected by APNs: %s", self.app_id, device.key_hash, reason)
            return self._count(label, reason, Outcome.rejected(reason))
        if status == 429 or status >= 500:
            return self._count(label, reason, Outcome.temporary(reason or f"http_{status}"))
        if reason in AUTH_REASONS:
            self.errors.error("auth", "app %s: APNs refused our credentials (%s %s); check keyfile/key_id/team_id "
                              "or certfile", self.app_id, status, reason)
            return self._count(label, reason, Outcome.failed(reason))
        if status == 413:
            self.errors.error("too_large", "app %s: APNs answered 413 PayloadTooLarge", self.app_id)
            return self._count(label, reason, Outcome.failed("PayloadTooLarge"))
        self.errors.error(f"http_{label}", "app %s: APNs refused the request (%s %s); check topic/push_type",
                          self.app_id, status, reason or "-")
        return self._count(label, reason, Outcome.failed(reason or f"http_{label}"))
