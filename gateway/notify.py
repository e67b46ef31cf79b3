"""``POST /_matrix/push/v1/notify``: validate, dispatch every device concurrently, answer in time.

Response contract (documented in README "Notify contract"):
- 200 ``{"rejected": [...]}`` once every device was delivered, rejected, permanently failed (logged and
  counted) or handed to a retry path. Rejected pushkeys are listed in device order.
- 429 ``M_LIMIT_EXCEEDED`` + Retry-After when an app's in-flight limit is reached; nothing was sent.
- 503 ``M_UNKNOWN`` + Retry-After only when a device failed temporarily and no retry path took it, so the
  homeserver retries.
The answer is sent within ``server.request_timeout_s``; devices still running then go to the deadline
handler (the retry queue when one is configured).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from gateway import metrics
from gateway.dispatch import UNKNOWN_APP, DeadlineHandler, Dispatcher, record, timeout_is_temporary
from gateway.model import Notification, Outcome, Status

log = logging.getLogger("gateway.notify")


@dataclass(frozen=True)
class NotifyResult:
    outcomes: tuple[Outcome, ...]
    rejected: tuple[str, ...]

    @property
    def temporary(self) -> int:
        return sum(1 for o in self.outcomes if o.status is Status.TEMPORARY)

    def retry_after(self) -> int:
        hints = [o.retry_after for o in self.outcomes if o.status is Status.TEMPORARY and o.retry_after]
        return max(1, min(300, int(max(hints)))) if hints else 5


class NotifyService:
    def __init__(self, dispatcher: Dispatcher, reactor: Any, request_timeout_s: float,
                 on_deadline: DeadlineHandler = timeout_is_temporary) -> None:
        self.dispatcher = dispatcher
        self.reactor = reactor
        self.request_timeout_s = request_timeout_s
        self.on_deadline = on_deadline

    async def handle(self, notification: Notification) -> NotifyResult:
        """Dispatch all devices; raises `OverLimit` before sending anything if admission fails."""
        pushkins = self.dispatcher.admit(notification)
        devices = notification.devices
        outcomes: list[Outcome | None] = [None] * len(devices)
        pending: dict[int, defer.Deferred[Outcome]] = {}
        for i, (device, pushkin) in enumerate(zip(devices, pushkins)):
            if pushkin is None:
                log.warning("unknown or ambiguous app_id for pushkey=%s", device.key_hash)
                record("unknown", "none", UNKNOWN_APP)
                outcomes[i] = UNKNOWN_APP
                continue
            d = self.dispatcher.send(pushkin, notification, device)
            pending[i] = d

            def store(outcome: Outcome, i: int = i) -> Outcome:
                outcomes[i] = outcome
                return outcome

            d.addCallback(store)
        if pending:
            await self._wait(list(pending.values()))
        for i, d in pending.items():
            if outcomes[i] is None:
                outcomes[i] = self.on_deadline(pushkins[i], notification, devices[i], d)  # type: ignore[arg-type]
        final: tuple[Outcome, ...] = tuple(o for o in outcomes if o is not None)
        rejected = tuple(dev.pushkey for dev, o in zip(devices, final) if o.status is Status.REJECTED)
        return NotifyResult(final, rejected)

    async def _wait(self, deferreds: list[defer.Deferred[Outcome]]) -> None:
        """Wait until all devices are done or the request deadline passes, whichever is first."""
        everything = defer.DeferredList(deferreds, consumeErrors=True)
        if everything.called:
            return
        waiter: defer.Deferred[None] = defer.Deferred()
        timer = self.reactor.callLater(self.request_timeout_s * 0.9, waiter.callback, None)
        everything.addBoth(lambda _: (timer.cancel() if timer.active() else None,
                                      waiter.callback(None) if not waiter.called else None))
        await waiter


def count_request(notification: Notification) -> None:
    metrics.NOTIFICATIONS_RECEIVED.inc()
    metrics.DEVICES_RECEIVED.inc(len(notification.devices))
