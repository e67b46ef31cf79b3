"""Prometheus metrics of the FCM pushkin (prefix ``tim_push_fcm_``).

Labels are the app id plus a fixed-vocabulary status or reason, never a pushkey, token or content, so
cardinality stays bounded by configuration. Registered once per process in the default registry.
Final per-device outcomes are counted by the dispatcher (``tim_push_outcomes``); these add what only the
FCM path knows: HTTP answers per attempt, retries, token refreshes and content left out for size.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("tim_push_fcm_requests", "HTTP attempts to FCM by answer (status code, timeout, connection_error)",
                   ["app", "status"])
REQUEST_SECONDS = Histogram("tim_push_fcm_request_seconds", "Duration of one HTTP attempt to FCM", ["app"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RETRIES = Counter("tim_push_fcm_retries", "In-request retries after a retryable answer", ["app", "reason"])
TOKEN_REFRESHES = Counter("tim_push_fcm_token_refreshes", "OAuth2 access-token refreshes by result",
                          ["app", "status"])
CONTENT_DROPPED = Counter("tim_push_fcm_content_dropped",
                          "Messages sent without part of the content to stay under FCM's 4 KiB data limit",
                          ["app", "reason"])
INFLIGHT = Gauge("tim_push_fcm_inflight_requests", "HTTP requests to FCM in flight", ["app"])


class FcmMetrics:
    """The metric children of one app. Those of every attempt are looked up once, on first use (a
    ``labels()`` call takes a lock and builds a key; a child created at start-up would also show a
    series before any request)."""

    def __init__(self, app: str) -> None:
        self.app = app
        self._requests: dict[str, Counter] = {}
        self._seconds: Histogram | None = None

    def request(self, status: str, seconds: float) -> None:
        counter = self._requests.get(status)
        if counter is None:
            counter = self._requests[status] = REQUESTS.labels(self.app, status)
        counter.inc()
        if self._seconds is None:
            self._seconds = REQUEST_SECONDS.labels(self.app)
        self._seconds.observe(seconds)

    def retry(self, reason: str) -> None:
        RETRIES.labels(self.app, reason).inc()

    def token_refresh(self, status: str) -> None:
        TOKEN_REFRESHES.labels(self.app, status).inc()

    def content_dropped(self, reason: str) -> None:
        CONTENT_DROPPED.labels(self.app, reason).inc()

    def inflight(self) -> Gauge:
        return INFLIGHT.labels(self.app)
