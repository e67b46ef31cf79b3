"""The HTTP face of the API: one leaf resource that routes, authenticates and answers.

Kept deliberately flat because it is the hot path: a cached token and a dict lookup answer
synchronously; only an unknown token waits (NOT_DONE_YET) for the homeserver. Every error is an
``{"errorCode", "errorMessage"}`` JSON body; the only 5xx is 503 (token check impossible, or no
verified list yet).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from timinfo import metrics
from timinfo.auth import TokenCheck, TokenStatus, TokenVerifier, parse_bearer, token_key
from timinfo.ik import is_ik_format
from timinfo.servername import normalize_server_name

log = logging.getLogger(__name__)

_ROUTES = {
    (): "info",
    (b"",): "info",
    (b"v1", b"server", b"findByIk"): "findByIk",
    (b"v1", b"server", b"isInsurance"): "isInsurance",
}
_JSON = [b"application/json"]
_NO_STORE = [b"no-store"]
_ALLOW = [b"GET, HEAD"]
_TRUE = orjson.dumps({"isInsurance": True})
_FALSE = orjson.dumps({"isInsurance": False})


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"errorCode": code, "errorMessage": message})


class TimInfoResource(Resource):
    isLeaf = True

    def __init__(self, info: dict[str, str], verifier: TokenVerifier, manager: Any, retry_after_s: int = 5) -> None:
        super().__init__()
        self._info = orjson.dumps(info)
        self._verifier = verifier
        self._manager = manager
        self._retry_after = [str(retry_after_s).encode()]
        self._counters: dict[tuple[str, int], Any] = {}

    # -- responses ---------------------------------------------------------------------------

    def _count(self, endpoint: str, status: int) -> None:
        c = self._counters.get((endpoint, status))
        if c is None:
            c = self._counters[(endpoint, status)] = metrics.REQUESTS.labels(endpoint=endpoint, status=str(status))
        c.inc()

    def _send(self, request: Any, endpoint: str, status: int, body: bytes) -> bytes:
        request.setResponseCode(status)
        h = request.responseHeaders
        h.setRawHeaders(b"content-type", _JSON)
        h.setRawHeaders(b"cache-control", _NO_STORE)
        self._count(endpoint, status)
        return body

    def _error(self, request: Any, endpoint: str, status: int, code: str, message: str) -> bytes:
        if status == 401:
            request.responseHeaders.setRawHeaders(b"www-authenticate", [b'Bearer realm="tim-information"'])
        elif status == 405:
            request.responseHeaders.setRawHeaders(b"allow", _ALLOW)
        elif status == 503:
            request.responseHeaders.setRawHeaders(b"retry-after", self._retry_after)
        return self._send(request, endpoint, status, error_body(code, message))

    # -- routing -----------------------------------------------------------------------------

    def render(self, request: Any) -> Any:
        endpoint = _ROUTES.get(tuple(request.postpath))
        if endpoint is None:
            return self._error(request, "unknown", 404, "NOT_FOUND", "no such resource")
        if request.method not in (b"GET", b"HEAD"):
            return self._error(request, endpoint, 405, "METHOD_NOT_ALLOWED", "only GET is supported")
        # Authorization is a singleton field: several are malformed, not "use the first" (which one a
        # proxy in front checked is unknowable).
        auth = request.requestHeaders.getRawHeaders(b"authorization") or []
        token = parse_bearer(auth[0]) if len(auth) == 1 else None
        if token is None:
            return self._error(request, endpoint, 401, "UNAUTHORIZED", "missing or malformed bearer token")
        key = token_key(token)
        check = self._verifier.cached(key)
        if check is not None:
            return self._answer(request, endpoint, check)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = defer.ensureDeferred(self._verifier.check(token, key))

        def finish(result: TokenCheck) -> None:
            if gone:
                return
            body = self._answer(request, endpoint, result)
            request.write(body)
            request.finish()

        def crashed(f: Any) -> None:
            log.error("request handling failed: %s", f.getTraceback())
            if not gone:
                request.write(self._error(request, endpoint, 503, "UNAVAILABLE", "temporarily unavailable"))
                request.finish()

        d.addCallback(finish).addErrback(crashed)
        return NOT_DONE_YET

    def _answer(self, request: Any, endpoint: str, check: TokenCheck) -> bytes:
        if check.status is not TokenStatus.VALID:
            if check.status is TokenStatus.UNAVAILABLE:
                return self._error(request, endpoint, 503, "UNAVAILABLE",
                                   "the access token cannot be checked at the moment")
            return self._error(request, endpoint, 401, "UNAUTHORIZED", "invalid access token")
        if endpoint == "info":
            return self._send(request, endpoint, 200, self._info)
        index = self._manager.index
        if endpoint == "findByIk":
            ik = self._param(request, b"ikNumber")
            if ik is None or not is_ik_format(ik):
                return self._bad(request, endpoint, "ikNumber", ik, "exactly 9 digits")
            if index is None:
                return self._no_list(request, endpoint)
            domain = index.find_by_ik(ik)
            if domain is None:
                self._manager.request_refresh()
                return self._error(request, endpoint, 404, "NOT_FOUND", f"no server is associated with ikNumber={ik}")
            return self._send(request, endpoint, 200, orjson.dumps({"serverName": domain}))
        raw = self._param(request, b"serverName")
        name = normalize_server_name(raw) if raw else None
        if name is None:
            return self._bad(request, endpoint, "serverName", raw, "a Matrix server name")
        if index is None:
            return self._no_list(request, endpoint)
        listed = index.is_insurance(name)
        if listed is None:
            self._manager.request_refresh()
        return self._send(request, endpoint, 200, _TRUE if listed else _FALSE)

    def _no_list(self, request: Any, endpoint: str) -> bytes:
        self._manager.request_refresh()
        return self._error(request, endpoint, 503, "UNAVAILABLE", "no verified federation list")

    def _bad(self, request: Any, endpoint: str, param: str, value: str | None, what: str) -> bytes:
        if not value:
            return self._error(request, endpoint, 400, "MISSING_PARAMETER", f"query parameter {param!r} is required")
        return self._error(request, endpoint, 400, "INVALID_PARAMETER", f"query parameter {param!r} must be {what}")

    @staticmethod
    def _param(request: Any, name: bytes) -> str | None:
        """The single value of query parameter `name`; None when absent; NUL (invalid) when repeated or not UTF-8."""
        values = request.args.get(name)
        if not values:
            return None
        if len(values) != 1:
            return "\x00"
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            return "\x00"
