"""Process-wide Prometheus metrics of the push path.

Names use our own ``tim_push_`` prefix; the Sygnal names they correspond to are listed in
docs/operations.md together with recording rules, so existing Sygnal dashboards keep working. Labels
are bounded: app ids come from the config, pushkin types and reasons from fixed vocabularies — never
pushkeys, users or error messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily

from gateway import __version__

NOTIFICATIONS_RECEIVED = Counter(
    "tim_push_notifications_received", "Notify requests received (sygnal_notifications_received)")
DEVICES_RECEIVED = Counter(
    "tim_push_devices_received", "Devices named in notify requests (sygnal_devices_received)")
STATUS_CODES = Counter(
    "tim_push_pushgateway_status_codes", "HTTP status codes answered on notify (sygnal_pushgateway_status_codes)",
    ["code"])
NOTIFY_TIME = Histogram(
    "tim_push_notify_time_seconds", "Time to answer a notify request (sygnal_notify_time)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
INFLIGHT = Gauge(
    "tim_push_inflight_dispatches", "Device dispatches in progress per app (sygnal_active_*_requests)", ["app"])
INFLIGHT_DROPS = Counter(
    "tim_push_inflight_request_limit_drop", "Requests refused with 429 because an app's in-flight limit was reached "
    "(sygnal_inflight_request_limit_drop)", ["app"])
OUTCOMES = Counter(
    "tim_push_outcomes", "Per-device delivery outcomes", ["app", "pushkin", "outcome", "reason"])
DISPATCH_TIME = Histogram(
    "tim_push_dispatch_seconds", "Time of one device dispatch through its pushkin (provider latency incl. retries)",
    ["pushkin"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
HTTP_REQUESTS = Counter(
    "tim_push_http_requests", "HTTP requests answered, by route group and status class", ["route", "code"])
READY = Gauge("tim_push_ready", "1 when the gateway is ready to serve (all pushkins started, lists loaded)")

class _CredentialExpiry:
    """``tim_push_credential_expiry_seconds{app,kind}``: seconds until a certificate expires, computed at
    scrape time so it falls steadily between restarts (negative once expired). Set by
    `gateway.credentials.export_expiry` at start-up; only files with an expiry date (certificates) appear.
    """

    def __init__(self) -> None:
        self._not_after: dict[tuple[str, str], float] = {}

    def set(self, app: str, kind: str, not_after: float) -> None:
        self._not_after[(app, kind)] = not_after

    def describe(self) -> list[Any]:
        return [GaugeMetricFamily("tim_push_credential_expiry_seconds", _EXPIRY_HELP, labels=["app", "kind"])]

    def collect(self) -> Iterator[Any]:
        fam = GaugeMetricFamily("tim_push_credential_expiry_seconds", _EXPIRY_HELP, labels=["app", "kind"])
        now = time.time()
        for (app, kind), not_after in sorted(self._not_after.items()):
            fam.add_metric([app, kind], not_after - now)
        yield fam


_EXPIRY_HELP = "Seconds until the app's certificate expires (negative: expired) (sygnal_client_cert_expiry)"
CREDENTIAL_EXPIRY = _CredentialExpiry()
REGISTRY.register(CREDENTIAL_EXPIRY)  # type: ignore[arg-type]
BUILD_INFO = Info("tim_push_build", "Version of the running gateway")
BUILD_INFO.info({"version": __version__})


# --- delivery guarantees (docs/delivery-guarantees.md; names as in docs/operations.md) ------------------
DEDUPLICATED = Counter(
    "tim_push_queue_deduplicated", "Devices not sent again: the same event to the same device was already settled "
    "or in flight, or an identical badge-only poke came within 1 s", ["app", "kind"])
REJECTIONS_REMEMBERED = Counter(
    "tim_push_rejections_remembered", "Devices answered 'rejected' from remembered provider rejections, without "
    "sending", ["app"])
QUEUED = Counter(
    "tim_push_queue_queued", "Devices handed to the retry queue (reason: deadline = still sending at the request "
    "deadline, temporary = failed temporarily)", ["app", "reason"])
RETRIED = Counter("tim_push_queue_retried", "Retry-queue send attempts by result", ["app", "outcome"])
EXPIRED = Counter("tim_push_queue_expired", "Queued pushes given up after state.max_retry_age_s", ["app"])
QUEUE_DEPTH = Gauge("tim_push_queue_depth", "Pushes waiting in (or being sent from) the retry queue")
QUEUE_OLDEST_AGE = Gauge(
    "tim_push_queue_oldest_age_seconds", "Age of the oldest queued push (0 when the queue is empty)")
STATE_ERRORS = Counter(
    "tim_push_state_errors", "State store operations that failed (de-duplication fails open, queueing falls back "
    "to 503)", ["op"])


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, memoised: on the notify hot path the label lookup is a measurable cost.

    Label values are bounded (config app ids, fixed vocabularies), so the memo is bounded too."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found
