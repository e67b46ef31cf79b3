"""The VZD FHIR-Directory client: OAuth2 client credentials -> provider token -> federation list.

Flow (gematik api-vzd HOWTOs): POST the token URL with ``grant_type=client_credentials`` (HTTP Basic
or form-body client auth), exchange that access token at ``/ti-provider-authenticate`` for a provider
token, then GET ``federationList.jws?version=N`` (204 = nothing newer). Both tokens are reused until
shortly before they expire; a 401/403 from the list endpoint drops them and retries once.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from timinfo.config import VzdConfig
from timinfo.errors import ListRejected
from timinfo.http import FetchError, HttpResponse, fetch

log = logging.getLogger(__name__)


@dataclass
class _Token:
    value: str
    expires_at: float


class VzdClient:
    def __init__(self, cfg: VzdConfig, reactor: Any, client: Any) -> None:
        self._cfg = cfg
        self._reactor = reactor
        self._client = client
        self._oauth: _Token | None = None
        self._provider: _Token | None = None

    async def fetch_list(self, current_version: int | None) -> bytes | None:
        """The raw JWS of a list newer than `current_version`, or None when the VZD has nothing newer (204)."""
        for attempt in (1, 2):
            token = await self._provider_token()
            params: dict[str, str] = {}
            if current_version is not None:
                params["version"] = str(current_version)
            if self._cfg.sig_alg:
                params["sigAlg"] = self._cfg.sig_alg
            resp = await self._get(self._cfg.list_url, token, params, self._cfg.max_list_bytes)
            if resp.status == 204:
                return None
            if resp.status == 200:
                if not resp.body:
                    raise ListRejected("malformed", "VZD answered 200 with an empty body")
                return resp.body
            if resp.status in (401, 403) and attempt == 1:
                log.info("VZD list endpoint answered %d; renewing tokens", resp.status)
                self._oauth = self._provider = None
                continue
            raise ListRejected(_reason(resp.status), f"VZD list endpoint answered HTTP {resp.status}")
        raise AssertionError("unreachable")

    async def _get(self, url: str, token: str, params: dict[str, str], max_bytes: int) -> HttpResponse:
        return await self._exchange("GET", url, params=params or None, headers={"Authorization": f"Bearer {token}"},
                                    max_bytes=max_bytes)

    async def _exchange(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        """One request under the VZD timeout; a failed exchange rejects this refresh as ``fetch_failed``."""
        try:
            return await fetch(self._client, self._reactor, method, url, timeout=self._cfg.timeout_s, **kwargs)
        except FetchError as e:
            raise ListRejected("fetch_failed", str(e)) from None

    def _valid(self, token: _Token | None) -> bool:
        return token is not None and token.expires_at > self._reactor.seconds()

    async def _provider_token(self) -> str:
        if self._valid(self._provider):
            assert self._provider is not None
            return self._provider.value
        oauth = await self._oauth_token()
        resp = await self._get(self._cfg.auth_url, oauth, {}, 256 * 1024)
        if resp.status != 200:
            self._oauth = None
            raise ListRejected(_reason(resp.status), f"ti-provider-authenticate answered HTTP {resp.status}")
        self._provider = self._token_from(resp.body, "ti-provider-authenticate", default_ttl=3600)
        return self._provider.value

    async def _oauth_token(self) -> str:
        if self._valid(self._oauth):
            assert self._oauth is not None
            return self._oauth.value
        form = {"grant_type": "client_credentials"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._cfg.client_auth == "basic":
            cred = f"{self._cfg.client_id}:{self._cfg.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
        else:
            form.update(client_id=self._cfg.client_id, client_secret=self._cfg.client_secret)
        resp = await self._exchange("POST", self._cfg.token_url, data=form, headers=headers, max_bytes=256 * 1024)
        if resp.status != 200:
            raise ListRejected(_reason(resp.status), f"token endpoint answered HTTP {resp.status}")
        self._oauth = self._token_from(resp.body, "token endpoint", default_ttl=60)
        return self._oauth.value

    def _token_from(self, body: bytes, where: str, default_ttl: float) -> _Token:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        value = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise ListRejected("auth_failed", f"{where} returned no access_token")
        ttl = doc.get("expires_in", default_ttl)
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0:
            ttl = default_ttl
        # Renew a little early so a token never expires between check and use.
        return _Token(value, self._reactor.seconds() + max(1.0, float(ttl) * 0.9 - 5))


def _reason(status: int) -> str:
    """Credentials/permission problems are ``auth_failed``; outages and everything else ``fetch_failed``."""
    return "auth_failed" if status in (400, 401, 403) else "fetch_failed"
