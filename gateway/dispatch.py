"""Fan a notification out to its devices' pushkins, concurrently and in isolation.

Admission is all-or-nothing per request: the in-flight slots every device needs are reserved before
anything is sent, so a request refused with 429 has sent nothing and the homeserver's retry cannot
duplicate. Each device runs in its own coroutine; an exception in one becomes that device's temporary
failure and never touches the others.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer

from gateway import metrics, tracing
from gateway.appmatch import AppMatcher
from gateway.model import Device, Notification, Outcome, Status
from gateway.pushkins.base import Pushkin

log = logging.getLogger("gateway.dispatch")

UNKNOWN_APP = Outcome.rejected("unknown_app")


class OverLimit(Exception):
    """An app's in-flight limit would be exceeded; nothing was sent."""

    def __init__(self, app_id: str, retry_after: int = 1) -> None:
        super().__init__(app_id)
        self.app_id = app_id
        self.retry_after = retry_after


class Dispatcher:
    def __init__(self, pushkins: Iterable[Pushkin]) -> None:
        self.pushkins = {p.app_id: p for p in pushkins}
        self.matcher: AppMatcher[Pushkin] = AppMatcher((p.app_id, p) for p in self.pushkins.values())
        self._inflight: Tally[str] = Tally()

    def pushkin_for(self, app_id: str) -> Pushkin | None:
        return self.matcher.match(app_id)

    def admit_pushkins(self, pushkins: Iterable[Pushkin]) -> None:
        """Reserve one in-flight slot per entry (a pushkin once per device to send), all or nothing."""
        need: Tally[str] = Tally(p.app_id for p in pushkins)
        for app_id, n in need.items():
            busy = self._inflight[app_id]
            # A request larger than the whole limit is let through when the app is idle; otherwise it
            # would get 429 forever and the homeserver would retry it forever.
            if busy + n > self.pushkins[app_id].app.inflight_request_limit and busy > 0:
                metrics.INFLIGHT_DROPS.labels(app_id).inc()
                raise OverLimit(app_id)
        for app_id, n in need.items():
            self._inflight[app_id] += n
            metrics.child(metrics.INFLIGHT, app_id).inc(n)

    def reserve_spare(self, app_id: str, share: float) -> bool:
        """Reserve one slot for background work only while the app uses less than `share` of its limit."""
        if self._inflight[app_id] + 1 > max(1, int(self.pushkins[app_id].app.inflight_request_limit * share)):
            return False
        self._inflight[app_id] += 1
        metrics.child(metrics.INFLIGHT, app_id).inc()
        return True

    def release(self, app_id: str) -> None:
        self._inflight[app_id] -= 1
        metrics.child(metrics.INFLIGHT, app_id).dec()

    def inflight(self, app_id: str) -> int:
        return self._inflight[app_id]

    def send(self, pushkin: Pushkin, notification: Notification, device: Device) -> defer.Deferred[Outcome]:
        """Dispatch one admitted device; the Deferred always fires with an Outcome, never an error."""
        started = time.perf_counter()
        spans = tracing.start_device(pushkin)
        d = tracing.in_span(spans[1], pushkin.dispatch_deferred, notification, device)

        def on_error(failure: Any) -> Outcome:
            log.error("pushkin %s raised for app_id=%s pushkey=%s: %s", type(pushkin).__name__, pushkin.app_id,
                      device.key_hash, failure.getErrorMessage(), exc_info=(failure.type, failure.value,
                                                                             failure.getTracebackObject()))
            return Outcome.temporary("internal_error")

        def done(outcome: Outcome) -> Outcome:
            self.release(pushkin.app_id)
            metrics.child(metrics.DISPATCH_TIME, pushkin.app.type).observe(time.perf_counter() - started)
            record(pushkin.app_id, pushkin.app.type, outcome)
            tracing.end_device(spans, outcome)
            return outcome

        d.addErrback(on_error)
        d.addCallback(done)
        return d


def record(app_id: str, pushkin_type: str, outcome: Outcome) -> None:
    metrics.child(metrics.OUTCOMES, app_id, pushkin_type, outcome.status.value, outcome.reason or "none").inc()
    if outcome.status is Status.FAILED:
        # Pushkins log the cause at ERROR (rate-limited where a whole app is affected); this is the summary.
        log.warning("push failed permanently app_id=%s reason=%s", app_id, outcome.reason)
