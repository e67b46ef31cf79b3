"""Process-wide Prometheus metrics of the push path.

Names use our own ``tim_push_`` prefix; the Sygnal names they correspond to are listed in
docs/operations.md together with recording rules, so existing Sygnal dashboards keep working. Labels
are bounded: app ids come from the config, pushkin types and reasons from fixed vocabularies — never
pushkeys, users or error messages.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
