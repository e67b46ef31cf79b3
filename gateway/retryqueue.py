"""The durable retry queue: pushes that could not be delivered within the request keep being retried.

Entries live in the state store (so they survive restarts and, with Redis, any instance may finish
them). A worker leases due entries, re-dispatches each through the same pushkin (looked up by app_id in
the `Dispatcher`), and on the result removes the entry (delivered, rejected, failed) or reschedules it
with exponential backoff and jitter (honouring Retry-After) until ``max_retry_age_s`` after the
notification arrived; then it gives up with a log line and ``tim_push_retry_expired``.

Retries cannot starve live traffic: at most ``retry_concurrency`` run at once, and each takes an
in-flight slot of its app only while that app is below half its ``inflight_request_limit`` — the other
half is kept for notify requests, which are refused with 429 only when *they* exhaust it.
Leases are renewed while a send runs; a lease that lapses (its process died) makes the entry due again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer, task

from gateway import metrics
from gateway.backoff import Backoff
from gateway.config.model import StateConfig
from gateway.dispatch import Dispatcher
from gateway.model import Device, Notification, Outcome, Status, pushkey_hash
from gateway.pushkins.base import Pushkin
from gateway.state import StateStore
from gateway.state.records import QueueEntry, minimise, rejection_key, restore

log = logging.getLogger("gateway.retryqueue")

#: Share of an app's in-flight limit the queue may use; the rest stays free for live notify requests.
LIVE_SHARE = 0.5

RecordFinal = Callable[[str | None, str, int | None, Outcome], Awaitable[None]]
RecordExpired = Callable[[str | None], Awaitable[None]]


def entry_dedup_key(entry: QueueEntry) -> str | None:
    """Event pushes are queued under their de-duplication key; badge-only pokes under a random id."""
    return None if entry.id.startswith("b") else entry.id


class RetryQueue:
    def __init__(self, store: StateStore, dispatcher: Dispatcher, cfg: StateConfig, reactor: Any,
                 record_final: RecordFinal, record_expired: RecordExpired,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.cfg = cfg
        self.reactor = reactor
        self.record_final = record_final
        self.record_expired = record_expired
        self.clock = clock
        self.backoff = Backoff(max_tries=0, base_s=cfg.retry_backoff_base_s, max_s=cfg.retry_backoff_max_s)
        #: Entries this process is sending now (their leases are renewed by the worker).
        self.running: dict[str, QueueEntry] = {}
        self._loop: task.LoopingCall | None = None
        self._loop_done: defer.Deferred[Any] | None = None
        self._idle: defer.Deferred[None] | None = None

    # --- entries -------------------------------------------------------------------------------------

    def entry_for(self, notification: Notification, device: Device, pushkin: Pushkin,
                  dedup_key: str | None) -> QueueEntry:
        entry_id = dedup_key if dedup_key is not None else "b" + os.urandom(12).hex()
        payload = minimise(notification, device, content_free=pushkin.app.tim_content_free)
        return QueueEntry(entry_id, pushkin.app_id, payload, self.clock())

    async def add(self, entry: QueueEntry, outcome: Outcome) -> None:
        """Queue a push whose first attempt failed temporarily."""
        await self.store.enqueue(entry, self._next_due(entry, outcome))

    async def adopt(self, entry: QueueEntry, running: defer.Deferred[Outcome]) -> None:
        """Queue a push whose first attempt is still running; its result is handled like a retry's."""
        await self.store.enqueue(entry, self.clock() + self.cfg.retry_lease_s, leased=True)
        self._track(entry, running, retry=False)

    def _next_due(self, entry: QueueEntry, outcome: Outcome) -> float:
        now = self.clock()
        delay = self.backoff.delay(max(1, entry.attempts), outcome.retry_after)
        return min(now + delay, entry.created + self.cfg.max_retry_age_s)

    # --- worker --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = task.LoopingCall(lambda: defer.ensureDeferred(self._tick()))
        self._loop.clock = self.reactor
        self._loop_done = self._loop.start(self.cfg.retry_poll_interval_s, now=True)

    async def stop(self, grace_s: float) -> None:
        """Stop taking entries; give running sends up to `grace_s` to finish (the rest stay queued)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
            if self._loop_done is not None:
                await self._loop_done
        if self.running and grace_s > 0:
            self._idle = defer.Deferred()
            timer = self.reactor.callLater(grace_s, lambda: self._idle and not self._idle.called
                                           and self._idle.callback(None))
            await self._idle
            if timer.active():
                timer.cancel()
        if self.running:
            log.warning("%d queued push(es) still sending at shutdown; they stay queued", len(self.running))
        try:
            depth, _ = await self.store.queue_stats()
        except Exception:
            return
        if depth and self.cfg.backend == "memory":
            log.error("%d queued push(es) are lost: backend memory keeps the retry queue in this process only",
                      depth)

    async def _tick(self) -> None:
        try:
            now = self.clock()
            lease_until = now + self.cfg.retry_lease_s
            if self.running:
                await self.store.renew(list(self.running), lease_until)
            free = self.cfg.retry_concurrency - len(self.running)
            if free > 0:
                for entry in await self.store.take_due(now, free, lease_until):
                    await self._start(entry, now)
            depth, oldest = await self.store.queue_stats()
            metrics.QUEUE_DEPTH.set(depth)
            metrics.QUEUE_OLDEST_AGE.set(max(0.0, now - oldest) if oldest is not None else 0)
        except Exception as e:
            metrics.STATE_ERRORS.labels("queue").inc()
            log.error("retry queue tick failed: %s: %s", type(e).__name__, e)

    async def _start(self, entry: QueueEntry, now: float) -> None:
        if entry.id in self.running:
            return  # already being sent here (its lease lapsed while renewing); the running send decides
        if now - entry.created >= self.cfg.max_retry_age_s:
            await self._expire(entry, "max_retry_age")
            return
        pushkin = self.dispatcher.pushkin_for(entry.payload["device"]["app_id"])
        if pushkin is None or pushkin.app_id != entry.app_id:
            await self._expire(entry, "app_not_configured")
            return
        if not self.dispatcher.reserve_spare(pushkin.app_id, LIVE_SHARE):
            # The app is busy with live traffic: try again on a later tick, without counting an attempt.
            await self.store.reschedule(entry, now + self.cfg.retry_poll_interval_s)
            return
        notification, device = restore(entry.payload)
        self._track(entry, self.dispatcher.send(pushkin, notification, device), retry=True)

    def _track(self, entry: QueueEntry, attempt: defer.Deferred[Outcome], retry: bool) -> None:
        self.running[entry.id] = entry

        def done(outcome: Outcome) -> Outcome:
            d = defer.ensureDeferred(self._after(entry, outcome, retry))
            d.addErrback(lambda f: log.error("handling a queued push's result failed: %s", f.getErrorMessage()))
            return outcome

        attempt.addCallback(done)

    async def _after(self, entry: QueueEntry, outcome: Outcome, retry: bool) -> None:
        attempts = entry.attempts + 1
        key_hash = pushkey_hash(entry.payload["device"]["pushkey"])
        if retry:
            metrics.RETRIED.labels(entry.app_id, outcome.status.value).inc()
        try:
            if outcome.status is Status.TEMPORARY:
                if self.clock() - entry.created >= self.cfg.max_retry_age_s:
                    await self._expire(entry, "max_retry_age")
                    return
                updated = entry.with_attempts(attempts)
                due = self._next_due(updated, outcome)
                await self.store.reschedule(updated, due)
                log.info("queued push app_id=%s pushkey=%s attempt %d failed temporarily (%s); next in %.1fs",
                         entry.app_id, key_hash, attempts, outcome.reason, max(0.0, due - self.clock()))
                return
            await self.store.remove(entry.id)
            await self.record_final(entry_dedup_key(entry),
                                    rejection_key(entry.payload["device"]["app_id"], entry.payload["device"]["pushkey"]),
                                    entry.payload["device"].get("pushkey_ts"), outcome)
            log.info("queued push app_id=%s pushkey=%s %s after %d attempt(s)", entry.app_id, key_hash,
                     outcome.status.value, attempts)
        finally:
            self.running.pop(entry.id, None)
            if not self.running and self._idle is not None and not self._idle.called:
                self._idle.callback(None)

    async def _expire(self, entry: QueueEntry, reason: str) -> None:
        await self.store.remove(entry.id)
        await self.record_expired(entry_dedup_key(entry))
        metrics.EXPIRED.labels(entry.app_id).inc()
        log.warning("gave up on queued push app_id=%s pushkey=%s after %d attempt(s), %.0fs: %s", entry.app_id,
                    pushkey_hash(entry.payload["device"]["pushkey"]), entry.attempts,
                    self.clock() - entry.created, reason)
