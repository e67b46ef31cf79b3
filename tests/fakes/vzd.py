"""Fake VZD FHIR-Directory: Keycloak-style client-credentials token, provider token, federation list.

Speaks the documented shapes: POST {token} with HTTP Basic client auth -> access_token; GET
/ti-provider-authenticate with that bearer -> provider token; GET
/tim-provider-services/FederationList/federationList.jws?version=N with the provider token -> 200 with
the raw JWS when the served list is newer than N, else 204. `fail_status` and `delay_s` simulate outages.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.fakes.httpfake import FakeServer

TOKEN_PATH = "/auth/realms/TI-Provider/protocol/openid-connect/token"
AUTH_PATH = "/ti-provider-authenticate"
LIST_PATH = "/tim-provider-services/FederationList/federationList.jws"


class FakeVzd(FakeServer):
    def __init__(self, client_id: str = "gateway", client_secret: str = "s3cret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.jws: bytes | None = None
        self.version = 0
        self.fail_status: int | None = None
        #: Serve the list even if the client already has that version (to offer older/equal lists).
        self.ignore_version = False
        self.delay_s = 0.0
        self.calls: Counter[str] = Counter()
        self.list_versions_asked: list[str | None] = []
        self._oauth: set[str] = set()
        self._provider: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(self._handle)

    def serve(self, jws: bytes, version: int) -> None:
        with self._lock:
            self.jws, self.version = jws, version

    def revoke_tokens(self) -> None:
        with self._lock:
            self._oauth.clear()
            self._provider.clear()

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def _bearer(self, req: Any) -> str:
        value = req.headers.get("Authorization") or ""
        return value[7:] if value.startswith("Bearer ") else ""

    def _handle(self, req: Any) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(req.path)
        with self._lock:
            self.calls[url.path] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_status:
            return self.fail_status, {}, b'{"message":"unavailable"}'
        js = {"Content-Type": "application/json"}
        if url.path == TOKEN_PATH and req.command == "POST":
            form = parse_qs(req.body.decode())
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if form.get("grant_type") != ["client_credentials"] or req.headers.get("Authorization") != \
                    f"Basic {expected}":
                return 401, js, b'{"error":"unauthorized_client"}'
            token = f"kc-{next(self._ids)}"
            self._oauth.add(token)
            return 200, js, orjson.dumps({"access_token": token, "expires_in": 300, "token_type": "bearer",
                                          "scope": "ti-provider"})
        if url.path == AUTH_PATH and req.command == "GET":
            if self._bearer(req) not in self._oauth:
                return 401, js, b'{"message":"invalid token"}'
            token = f"prov-{next(self._ids)}"
            self._provider.add(token)
            return 200, js, orjson.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 86400})
        if url.path == LIST_PATH and req.command == "GET":
            if self._bearer(req) not in self._provider:
                return 401, js, b'{"message":"invalid token"}'
            asked = (parse_qs(url.query).get("version") or [None])[0]
            with self._lock:
                self.list_versions_asked.append(asked)
                jws, version = self.jws, self.version
            if jws is None or (not self.ignore_version and asked is not None and asked.isdigit() and int(asked) >= version):
                return 204, {}, b""
            return 200, {"Content-Type": "application/octet-stream"}, jws
        return 404, js, b'{"message":"not found"}'
