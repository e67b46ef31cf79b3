"""Prometheus metrics (default registry), all prefixed ``tim_information_``.

Created once at import so that several services in one process (tests, benchmarks) share them.
Label children used on the request path are bound up front to keep lookups cheap.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from timinfo.errors import REASONS

LIST_VERSION = Gauge("tim_information_federation_list_version", "Version of the federation list in use (0: none)")
LIST_ENTRIES = Gauge("tim_information_federation_list_entries", "Domains on the federation list in use")
LIST_INSURERS = Gauge("tim_information_federation_list_insurers", "Insurance domains on the federation list in use")
LIST_IKS = Gauge("tim_information_federation_list_iks", "IK numbers indexed from the federation list in use")
LIST_INVALID_IKS = Gauge("tim_information_federation_list_invalid_iks",
                         "IKs on the list in use that fail the GR-IK check digit or insurer prefix rule")
LIST_AGE = Gauge("tim_information_federation_list_age_seconds",
                 "Seconds since the list in use was last confirmed current by its source (-1: no list)")
LIST_LAST_SUCCESS = Gauge("tim_information_federation_list_last_success_timestamp_seconds",
                          "Unix time of the last refresh that ended updated or unchanged")
REFRESH = Counter("tim_information_federation_list_refresh", "Federation list refresh attempts by outcome",
                  ["outcome"])
#: Every ``result`` label of `TOKEN_CHECKS`.
TOKEN_RESULTS = ("valid", "invalid", "unavailable", "cached_valid", "cached_invalid", "coalesced", "overloaded")
TOKEN_CHECKS = Counter("tim_information_token_checks", "Bearer token checks by result", ["result"])
REQUESTS = Counter("tim_information_requests", "TiMessengerInformation responses by endpoint and status",
                   ["endpoint", "status"])

for _r in REASONS:
    REFRESH.labels(outcome=_r)
for _r in TOKEN_RESULTS:
    TOKEN_CHECKS.labels(result=_r)
