"""Non-blocking HTTPS client for FCM HTTP v1: bounded concurrency, timeouts, proxy, in-request retries.

Why aiohttp and not treq: the gateway runs Twisted on the asyncio reactor, so aiohttp works on the very
same loop (pushkin coroutines bridge with ``Deferred.fromFuture``). aiohttp tunnels HTTPS through an HTTP
CONNECT proxy by itself (Twisted's ``ProxyAgent`` does not tunnel HTTPS, so treq would need a hand-written
CONNECT client), keeps a persistent connection pool with a hard connection limit, has separate connect and
total timeouts, and takes a plain ``ssl.SSLContext`` (system CAs / ``SSL_CERT_FILE`` plus an extra CA file).
It is already installed as a dependency of pyfcm.

Everything in this module runs inside asyncio tasks on that loop. Retries stay inside the notify
request's time budget: when the next attempt (or the provider's Retry-After) would not fit, the device
gets a temporary outcome with ``retry_after`` so the homeserver retries, never a silent success.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

import aiohttp

from gateway import __version__
from gateway.backoff import Backoff, parse_retry_after
from gateway.model import Outcome
from gateway.pushkins.fcm_auth import AccessTokens, AuthResponse, TokenError, load_credentials
from gateway.pushkins.fcm_metrics import FcmMetrics
from gateway.pushkins.fcm_response import Action, Verdict, classify
from gateway.pushkins.tls import client_context

log = logging.getLogger("gateway.pushkins.fcm")

USER_AGENT = f"tim-push-gateway/{__version__}"


@dataclass(frozen=True)
class ClientSettings:
    #: Full ``.../v1/projects/<id>/messages:send`` URL.
    send_url: str
    service_account_file: str
    max_connections: int
    connect_timeout_s: float
    request_timeout_s: float
    #: Time budget for all attempts of one device (inside the notify request's deadline).
    budget_s: float
    backoff: Backoff
    proxy: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class _Attempt:
    verdict: Verdict
    retry_after: float | None = None


_TIMEOUT = _Attempt(Verdict(Action.RETRY, "timeout"))
_CONNECTION = _Attempt(Verdict(Action.RETRY, "connection_error"))
_PROXY = _Attempt(Verdict(Action.RETRY, "proxy_error"))
_TLS = _Attempt(Verdict(Action.FAIL, "tls_error"))


class FcmClient:
    """Sends prepared message bodies for one app. Create, `await start()`, `await send(...)`, `await close()`."""

    def __init__(self, app_id: str, settings: ClientSettings, metrics: FcmMetrics) -> None:
        self.app_id = app_id
        self.settings = settings
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._auth_session: aiohttp.ClientSession | None = None
        self._tokens: AccessTokens | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight = metrics.inflight()

    async def start(self) -> None:
        s = self.settings
        context = client_context(s.ca_file)
        self._semaphore = asyncio.Semaphore(s.max_connections)
        # The semaphore and the pool limit are equal, so a request never waits inside aiohttp for a
        # connection and the connect timeout measures only the connect (plus proxy tunnel and TLS).
        self._session = self._new_session(context, s.max_connections)
        self._auth_session = self._new_session(context, 2)
        credentials = await asyncio.get_running_loop().run_in_executor(
            None, load_credentials, s.service_account_file)
        self._tokens = AccessTokens(credentials, self._auth_fetch, timeout_s=s.request_timeout_s,
                                    on_refresh=self.metrics.token_refresh)

    def _new_session(self, context: ssl.SSLContext, limit: int) -> aiohttp.ClientSession:
        s = self.settings
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=limit),
            timeout=aiohttp.ClientTimeout(total=s.request_timeout_s, connect=s.connect_timeout_s),
            headers={"User-Agent": USER_AGENT}, skip_auto_headers=("Accept-Encoding",), trust_env=False,
        )

    async def close(self) -> None:
        if self._tokens is not None:
            self._tokens.close()
        for session in (self._session, self._auth_session):
            if session is not None:
                await session.close()

    async def _auth_fetch(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                          timeout_s: float) -> AuthResponse:
        assert self._auth_session is not None
        async with self._auth_session.request(method, url, data=body, headers=headers, proxy=self.settings.proxy,
                                              timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            return AuthResponse(resp.status, dict(resp.headers), await resp.read())

    async def send(self, body: bytes, key_hash: str) -> Outcome:
        """Deliver one message body; never raises (except on cancellation)."""
        assert self._tokens is not None, "start() was not awaited"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.budget_s
        backoff = self.settings.backoff
        reauthed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline):
                    token = await self._tokens.get()
                    result = await self._post(body, token)
            except TokenError as e:
                if e.permanent:
                    log.error("fcm app=%s pushkey=%s: cannot get an access token: %s", self.app_id, key_hash, e)
                    return Outcome.failed("auth_token")
                log.warning("fcm app=%s: access token unavailable: %s", self.app_id, e)
                result = _Attempt(Verdict(Action.RETRY, "auth_unavailable"))
            except TimeoutError:
                log.warning("fcm app=%s pushkey=%s: no answer within the request budget (%d attempts)",
                            self.app_id, key_hash, attempt)
                return Outcome.temporary("timeout")

            action, reason = result.verdict.action, result.verdict.reason
            if action is Action.DELIVERED:
                return Outcome.delivered()
            if action is Action.REJECT:
                log.info("fcm app=%s pushkey=%s rejected by FCM: %s", self.app_id, key_hash, reason)
                return Outcome.rejected(reason)
            if action is Action.REAUTH:
                if not reauthed:
                    reauthed = True
                    attempt -= 1  # a refresh is not counted as a try
                    self._tokens.invalidate(token)
                    continue
                log.error("fcm app=%s pushkey=%s: FCM refuses our access token after a refresh (%s); "
                          "check the service account's Firebase permissions and project_id",
                          self.app_id, key_hash, reason)
                return Outcome.failed(f"auth_{reason}")
            if action is Action.FAIL:
                log.error("fcm app=%s pushkey=%s: FCM did not accept the message: %s",
                          self.app_id, key_hash, reason)
                return Outcome.failed(reason)
            # RETRY
            delay = backoff.delay(attempt, result.retry_after)
            if attempt >= backoff.max_tries or loop.time() + delay >= deadline:
                log.warning("fcm app=%s pushkey=%s: giving up for now after %d attempt(s): %s",
                            self.app_id, key_hash, attempt, reason)
                return Outcome.temporary(reason, result.retry_after if result.retry_after is not None else delay)
            self.metrics.retry(reason)
            await asyncio.sleep(delay)

    async def _post(self, body: bytes, token: str) -> _Attempt:
        assert self._session is not None and self._semaphore is not None
        async with self._semaphore:
            self._inflight.inc()
            started = time.perf_counter()
            label = "error"
            try:
                async with self._session.post(
                        self.settings.send_url, data=body, proxy=self.settings.proxy,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as resp:
                    answer = await resp.read()
                    label = str(resp.status)
                    return _Attempt(classify(resp.status, answer), parse_retry_after(resp.headers.get("Retry-After")))
            except TimeoutError:
                label = "timeout"
                return _TIMEOUT
            except aiohttp.ClientConnectorCertificateError as e:
                label = "tls_error"
                log.error("fcm app=%s: TLS verification of FCM failed: %s", self.app_id, e.certificate_error)
                return _TLS
            except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as e:
                label = "proxy_error"
                log.warning("fcm app=%s: proxy failed: %s", self.app_id, type(e).__name__)
                return _PROXY
            except (aiohttp.ClientError, OSError) as e:
                label = "connection_error"
                log.warning("fcm app=%s: connection to FCM failed: %s", self.app_id, type(e).__name__)
                return _CONNECTION
            finally:
                self._inflight.dec()
                self.metrics.request(label, time.perf_counter() - started)


__all__ = ["ClientSettings", "FcmClient"]
