"""Outgoing HTTP via treq: one whole-exchange timeout, a body size cap, no redirects, no cookies.

treq's own ``timeout`` only covers the wait for response headers; a server that trickles its body
would hold a refresh or a token check forever, so the whole exchange runs under `Deferred.addTimeout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool


class FetchError(Exception):
    """The exchange did not produce a complete response (connect error, timeout, oversized body)."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


class _TooLarge(Exception):
    pass


def make_client(reactor: Any, *, max_per_host: int = 8) -> tuple[HTTPClient, HTTPConnectionPool]:
    """A client with keep-alive connections; close the pool on shutdown."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max_per_host
    pool.cachedConnectionTimeout = 60
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return HTTPClient(Agent(reactor, pool=pool), cookiejar=jar), pool


async def fetch(client: HTTPClient, reactor: Any, method: str, url: str, *, timeout: float,
                max_bytes: int = 1024 * 1024, **kwargs: Any) -> HttpResponse:
    async def exchange() -> HttpResponse:
        response = await client.request(method, url, allow_redirects=False, **kwargs)
        if isinstance(response.length, int) and response.length > max_bytes:
            response.deliverBody(_Discard())
            raise _TooLarge(f"response body of {response.length} bytes exceeds {max_bytes}")
        chunks: list[bytes] = []
        size = 0

        def collector(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > max_bytes:
                raise _TooLarge(f"response body exceeds {max_bytes} bytes")
            chunks.append(data)

        await treq.collect(response, collector)
        return HttpResponse(response.code, b"".join(chunks))

    d = defer.ensureDeferred(exchange())
    d.addTimeout(timeout, reactor)
    try:
        return await d
    except defer.TimeoutError:
        raise FetchError(f"{method} {_safe(url)}: no complete response within {timeout:g}s") from None
    except _TooLarge as e:
        raise FetchError(f"{method} {_safe(url)}: {e}") from None
    except Exception as e:  # connection refused, TLS failure, protocol errors
        raise FetchError(f"{method} {_safe(url)}: {type(e).__name__}: {e}") from None


def _safe(url: str) -> str:
    """The URL without its query (which may carry a token)."""
    return url.split("?", 1)[0]


class _Discard(Protocol):
    """Drops an oversized body and closes the connection instead of reading it."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()
