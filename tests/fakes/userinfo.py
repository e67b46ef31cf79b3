"""Fake homeserver OpenID userinfo endpoint (``/_matrix/federation/v1/openid/userinfo``).

Known tokens answer 200 ``{"sub": ...}``, unknown ones 401 ``M_UNKNOWN_TOKEN`` like Synapse. `mode`
switches to "error" (HTTP 502) or "slow" (sleeps `delay_s` before answering) to simulate outages.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.fakes.httpfake import FakeServer

PATH = "/_matrix/federation/v1/openid/userinfo"


class FakeUserinfo(FakeServer):
    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})
        self.mode = "ok"
        self.delay_s = 0.0
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(self._handle)

    def _handle(self, req: Any) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(req.path)
        if req.command != "GET" or url.path != PATH:
            return 404, {}, b'{"errcode":"M_UNRECOGNIZED"}'
        token = (parse_qs(url.query).get("access_token") or [""])[0]
        with self._lock:
            self.calls[token] += 1
        if self.mode == "slow":
            time.sleep(self.delay_s)
        if self.mode == "error":
            return 502, {}, b"bad gateway"
        if token in self.tokens:
            return 200, {"Content-Type": "application/json"}, orjson.dumps({"sub": self.tokens[token]})
        return 401, {"Content-Type": "application/json"}, b'{"errcode":"M_UNKNOWN_TOKEN","error":"unknown token"}'
