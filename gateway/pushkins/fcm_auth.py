"""OAuth2 access tokens for FCM HTTP v1 from a service account, without blocking the event loop.

google-auth does the protocol: it signs the RS256 JWT-bearer assertion with the service-account key,
posts it to the JSON's ``token_uri`` and parses the answer. Its transport interface is synchronous, so
a refresh runs on a dedicated worker thread (the RSA signature and the wait stay off the loop), and the
HTTP request itself is handed back to the shared asyncio loop (`LoopAuthRequest`) so token traffic takes
the same proxy, CA and timeout rules as the FCM requests.

One refresh at a time serves every concurrent sender (single-flight); the token is reused until shortly
before it expires, and `invalidate()` after a 401 forces one refresh however many requests saw the 401.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport
from google.oauth2 import service_account

log = logging.getLogger("gateway.pushkins.fcm")

SCOPES = ("https://www.googleapis.com/auth/firebase.messaging",)


@dataclass(frozen=True, slots=True)
class AuthResponse(google.auth.transport.Response):
    status: int  # type: ignore[misc]
    headers: Any  # type: ignore[misc]
    data: bytes  # type: ignore[misc]


#: Performs one HTTP request on the loop: (method, url, headers, body, timeout) -> AuthResponse.
Fetch = Callable[[str, str, dict[str, str], bytes | None, float], Awaitable[AuthResponse]]


class LoopAuthRequest(google.auth.transport.Request):
    """google-auth's blocking transport interface, served from a worker thread by the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fetch: Fetch, timeout_s: float) -> None:
        self._loop = loop
        self._fetch = fetch
        self._timeout_s = timeout_s

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> AuthResponse:
        timeout_s = min(timeout or self._timeout_s, self._timeout_s)
        future = asyncio.run_coroutine_threadsafe(
            self._fetch(method, url, dict(headers or {}), body, timeout_s), self._loop)
        try:
            return future.result(timeout_s + 1.0)
        except google.auth.exceptions.TransportError:
            raise
        except Exception as e:  # aiohttp errors, timeouts, loop shut down
            future.cancel()
            raise google.auth.exceptions.TransportError(f"token request failed: {type(e).__name__}") from e


class TokenError(Exception):
    """No access token. `permanent` means retrying will not help (bad key, revoked account)."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def load_credentials(path: str) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_file(path, scopes=list(SCOPES))


class AccessTokens:
    """The current access token for one service account; must be used from the asyncio loop."""

    def __init__(self, credentials: service_account.Credentials, fetch: Fetch, *, timeout_s: float,
                 margin_s: float = 300.0,
                 on_refresh: Callable[[str], None] = lambda status: None) -> None:
        self._credentials = credentials
        self._fetch = fetch
        self._timeout_s = timeout_s
        self._margin_s = margin_s
        self._on_refresh = on_refresh
        self._token: str | None = None
        self._refresh_at = 0.0
        self._inflight: asyncio.Future[str] | None = None
        # One thread: refreshes are serialised anyway, and a stuck one must not grow a pool.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcm-auth")

    async def get(self) -> str:
        loop = asyncio.get_running_loop()
        if self._token is not None and loop.time() < self._refresh_at:
            return self._token
        if self._inflight is None:
            self._inflight = loop.create_task(self._refresh(loop))
        # shield: a caller that gives up (deadline) must not cancel the refresh the others wait for.
        return await asyncio.shield(self._inflight)

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still current (a later refresh already replaced it otherwise)."""
        if token == self._token:
            self._token = None

    async def _refresh(self, loop: asyncio.AbstractEventLoop) -> str:
        try:
            request = LoopAuthRequest(loop, self._fetch, self._timeout_s)
            token, lifetime_s = await loop.run_in_executor(self._executor, self._refresh_blocking, request)
        except TokenError as e:
            self._on_refresh("permanent_error" if e.permanent else "error")
            raise
        finally:
            self._inflight = None
        margin = min(self._margin_s, lifetime_s / 2)
        self._token = token
        self._refresh_at = loop.time() + max(0.0, lifetime_s - margin)
        self._on_refresh("ok")
        return token

    def _refresh_blocking(self, request: LoopAuthRequest) -> tuple[str, float]:
        try:
            self._credentials.refresh(request)
        except google.auth.exceptions.RefreshError as e:
            retryable = bool(getattr(e, "retryable", False))
            raise TokenError(f"token endpoint refused the service account: {_short(e)}",
                             permanent=not retryable) from None
        except google.auth.exceptions.TransportError as e:
            raise TokenError(f"token endpoint unreachable: {_short(e)}", permanent=False) from None
        except Exception as e:  # a malformed answer from the token endpoint
            raise TokenError(f"token refresh failed: {type(e).__name__}", permanent=False) from None
        token = self._credentials.token
        expiry = self._credentials.expiry
        if not token:
            raise TokenError("token endpoint returned no access token", permanent=False)
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        lifetime = (expiry - now).total_seconds() if expiry is not None else 3600.0
        return token, max(0.0, lifetime)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _short(e: BaseException) -> str:
    """The error's first argument, cut: google-auth puts the endpoint's JSON answer there, never a secret."""
    text = str(e.args[0]) if e.args else type(e).__name__
    return text[:200]
