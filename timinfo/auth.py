"""Bearer token checks against the homeserver's OpenID userinfo endpoint.

Results are cached keyed by SHA-256 of the token (the token itself is never stored or logged): good
ones for at most five minutes, bad ones briefly, "could not ask" never. Concurrent checks of one token
share a single userinfo request. A homeserver that cannot be asked yields UNAVAILABLE (HTTP 503):
neither accepting nor rejecting a token we could not check.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson
from twisted.internet import defer

from timinfo import metrics
from timinfo.config import TimInfoConfig
from timinfo.http import FetchError, fetch

log = logging.getLogger(__name__)

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MXID = re.compile(r"@[^:\s]+:(\S+)")
MAX_TOKEN_LEN = 4096
USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"


class TokenStatus(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class TokenCheck:
    status: TokenStatus
    sub: str | None = None
    reason: str = ""


def parse_bearer(header: bytes | None) -> str | None:
    """The token from an ``Authorization: Bearer`` header, or None if absent/malformed."""
    if not header:
        return None
    try:
        text = header.decode("ascii")
    except UnicodeDecodeError:
        return None
    scheme, _, token = text.partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LEN or not _B64TOKEN.fullmatch(token):
        return None
    return token


def token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


class TokenVerifier:
    def __init__(self, cfg: TimInfoConfig, reactor: Any, client: Any) -> None:
        self._cfg = cfg
        self._reactor = reactor
        self._client = client
        self._cache: dict[bytes, tuple[float, TokenCheck]] = {}
        self._inflight: dict[bytes, list[defer.Deferred[TokenCheck]]] = {}
        self._m = {r: metrics.TOKEN_CHECKS.labels(result=r) for r in metrics.TOKEN_RESULTS}

    def cached(self, key: bytes) -> TokenCheck | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[0] < self._reactor.seconds():
            self._cache.pop(key, None)
            return None
        self._m["cached_valid" if hit[1].status is TokenStatus.VALID else "cached_invalid"].inc()
        return hit[1]

    async def check(self, token: str, key: bytes) -> TokenCheck:
        hit = self.cached(key)
        if hit is not None:
            return hit
        waiters = self._inflight.get(key)
        if waiters is not None:
            self._m["coalesced"].inc()
            d: defer.Deferred[TokenCheck] = defer.Deferred()
            waiters.append(d)
            return await d
        if len(self._inflight) >= self._cfg.max_concurrent_checks:
            # Every unknown token costs a request to the homeserver: bound that fan-out under a flood.
            self._m["overloaded"].inc()
            return TokenCheck(TokenStatus.UNAVAILABLE, reason="too many token checks in progress")
        self._inflight[key] = []
        try:
            result = await self._ask(token)
        except Exception:  # never leave waiters hanging
            log.exception("token check failed unexpectedly")
            result = TokenCheck(TokenStatus.UNAVAILABLE, reason="internal error")
        self._m[result.status.value].inc()
        self._store(key, result)
        for w in self._inflight.pop(key, []):
            w.callback(result)
        return result

    def _store(self, key: bytes, result: TokenCheck) -> None:
        if result.status is TokenStatus.UNAVAILABLE:
            return
        ttl = self._cfg.token_cache_ttl_s if result.status is TokenStatus.VALID else self._cfg.negative_cache_ttl_s
        if ttl <= 0:
            return
        now = self._reactor.seconds()
        if len(self._cache) >= self._cfg.token_cache_max_entries:
            for k in [k for k, (exp, _) in self._cache.items() if exp < now]:
                del self._cache[k]
            while len(self._cache) >= self._cfg.token_cache_max_entries:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (now + ttl, result)

    async def _ask(self, token: str) -> TokenCheck:
        unavailable = ""
        for base in self._cfg.homeserver_urls:
            try:
                resp = await fetch(self._client, self._reactor, "GET", base + USERINFO_PATH,
                                   params={"access_token": token}, timeout=self._cfg.userinfo_timeout_s,
                                   max_bytes=64 * 1024)
            except FetchError as e:
                log.warning("userinfo at %s unreachable: %s", base, e)
                unavailable = str(e)
                continue
            if resp.status == 200:
                return self._accept(base, resp.body)
            if resp.status in (401, 403):
                continue
            log.warning("userinfo at %s answered HTTP %d", base, resp.status)
            unavailable = f"homeserver answered HTTP {resp.status}"
        if unavailable:
            return TokenCheck(TokenStatus.UNAVAILABLE, reason=unavailable)
        return TokenCheck(TokenStatus.INVALID, reason="token not known to the homeserver")

    def _accept(self, base: str, body: bytes) -> TokenCheck:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        sub = doc.get("sub") if isinstance(doc, dict) else None
        m = _MXID.fullmatch(sub) if isinstance(sub, str) else None
        if m is None:
            log.warning("userinfo at %s answered 200 without a valid 'sub'", base)
            return TokenCheck(TokenStatus.INVALID, reason="homeserver returned no user id")
        allowed = self._cfg.allowed_server_names
        if allowed and m.group(1).lower() not in allowed:
            return TokenCheck(TokenStatus.INVALID, reason="user is not on an allowed server")
        return TokenCheck(TokenStatus.VALID, sub=sub)
