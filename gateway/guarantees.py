"""Delivery guarantees around each device's dispatch: at most once per event, never silently lost.

Per device of a notify request, `decide()` answers one of:
- an `Outcome` at once: the pushkey is remembered as rejected (and no newer ``pushkey_ts`` shows it was
  re-registered), or the same (app_id, pushkey, event_id) was already settled within the window;
- a `Shared`: the same key is being sent right now (by this request's twin, or by another process on
  the same Redis); the duplicate reports whatever the first attempt reports;
- a `Ticket`: we hold the claim and must send. `follow()` then waits for the send or the request
  deadline. A send still running at the deadline, or one that failed temporarily, is written to the
  durable retry queue (`gateway.retryqueue`) and reported QUEUED, so the homeserver gets 200 and does
  not retry into a duplicate.

Order of writes matters for exactly-once: the de-duplication record is set to "queued" *before* the
queue entry becomes visible, so the queue can only ever move it forward (delivered/rejected/expired).
If the store fails, de-duplication fails open (we send; a duplicate is possible, a loss is not) and
queueing falls back to a temporary failure, i.e. 503 and the homeserver's own retry.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task

from gateway import metrics
from gateway.config.model import StateConfig
from gateway.model import Device, Notification, Outcome, Status
from gateway.pushkins.base import Pushkin
from gateway.state import StateStore
from gateway.state.records import (
    EXPIRED, PENDING, SETTLED, Rejection, dedup_key, is_pending, rejection_key, reported,
)

if TYPE_CHECKING:
    from gateway.retryqueue import RetryQueue

log = logging.getLogger("gateway.guarantees")

REMEMBERED_REJECTION = Outcome.rejected("remembered")
#: How often expired de-duplication and rejection records are dropped.
SWEEP_INTERVAL_S = 60.0
#: Identical badge-only pokes (same app, pushkey, counts) this close together share one send.
BADGE_COALESCE_S = 1.0


class Shared:
    """The reported outcome of one attempt, for every concurrent duplicate to await."""

    __slots__ = ("result", "waiters")

    def __init__(self) -> None:
        self.result: Outcome | None = None
        self.waiters: list[defer.Deferred[Outcome]] = []

    def wait(self) -> defer.Deferred[Outcome]:
        """Fires with the outcome; only while it is not known (`result` is None)."""
        d: defer.Deferred[Outcome] = defer.Deferred()
        self.waiters.append(d)
        return d

    def fire(self, outcome: Outcome) -> None:
        if self.result is not None:
            return
        self.result = outcome
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(outcome)


@dataclass(slots=True)
class Ticket:
    """We hold the claim for this device and must send it."""

    notification: Notification
    device: Device
    pushkin: Pushkin
    dedup_key: str | None  # None for badge-only pokes (not de-duplicated) or when the store failed
    rejection_key: str
    local_key: str | None
    shared: Shared


Decision = Outcome | Shared | Ticket


def _keep(outcome: Outcome, box: list[Outcome]) -> Outcome:
    box.append(outcome)
    return outcome


def first_of(a: defer.Deferred[Any], b: defer.Deferred[Any]) -> defer.Deferred[None]:
    """Fires when either fires, without consuming or cancelling either result."""
    out: defer.Deferred[None] = defer.Deferred()

    def fire(result: Any) -> Any:
        if not out.called:
            out.callback(None)
        return result

    a.addBoth(fire)
    b.addBoth(fire)
    return out


class Guarantees:
    def __init__(self, store: StateStore, cfg: StateConfig, reactor: Any, request_timeout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cfg = cfg
        self.reactor = reactor
        self.request_timeout_s = request_timeout_s
        self.clock = clock
        self.queue: RetryQueue | None = None
        #: Our claims are "p<random>": a claim outlives a crashed owner only by this lease.
        self.claim = PENDING + os.urandom(6).hex()
        self.claim_lease_s = 2 * request_timeout_s + 5
        self._local: dict[str, Shared] = {}
        self._badges: dict[str, Shared] = {}
        self._badge_order: collections.deque[tuple[float, str]] = collections.deque()
        self._sweeper: task.LoopingCall | None = None

    # --- before sending ----------------------------------------------------------------------------

    async def decide(self, notification: Notification, device: Device, pushkin: Pushkin) -> Decision:
        event_id = notification.event_id
        dkey: str | None
        local_key: str | None
        if event_id is None:
            dkey = local_key = None
        else:
            dkey = local_key = dedup_key(device.app_id, device.pushkey, event_id)
        if local_key is not None:
            shared = self._local.get(local_key)
            if shared is not None:
                metrics.DEDUPLICATED.labels(pushkin.app_id, "in_flight").inc()
                return shared
            shared = self._local[local_key] = Shared()
        else:
            hit, shared = self._badge_share(notification, device)
            if hit:
                metrics.DEDUPLICATED.labels(pushkin.app_id, "badge").inc()
                return shared
        rkey = rejection_key(device.app_id, device.pushkey)
        try:
            check = await self.store.check(rkey, dkey, self.claim, self.claim_lease_s)
            existing = check.existing
            if check.rejection is not None:
                if not check.rejection.superseded_by(device.pushkey_ts):
                    metrics.REJECTIONS_REMEMBERED.labels(pushkin.app_id).inc()
                    self._finish(local_key, shared, REMEMBERED_REJECTION)
                    return REMEMBERED_REJECTION
                log.info("pushkey=%s re-registered (newer pushkey_ts); forgetting its rejection", device.key_hash)
                await self.store.forget_rejection(rkey)
                existing = await self.store.claim(dkey, self.claim, self.claim_lease_s) if dkey else None
        except Exception as e:
            self._state_error("check", e)
            return Ticket(notification, device, pushkin, None, rkey, local_key, shared)
        if existing is None:
            return Ticket(notification, device, pushkin, dkey, rkey, local_key, shared)
        if is_pending(existing):
            # Only another process can hold a pending claim we do not know locally: wait for its result.
            metrics.DEDUPLICATED.labels(pushkin.app_id, "in_flight").inc()
            assert dkey is not None
            defer.ensureDeferred(self._poll_remote(dkey, local_key, shared))
            return shared
        metrics.DEDUPLICATED.labels(pushkin.app_id, "settled").inc()
        outcome = reported(existing)
        self._finish(local_key, shared, outcome)
        return outcome

    def _badge_share(self, notification: Notification, device: Device) -> tuple[bool, Shared]:
        now = self.reactor.seconds()
        order, badges = self._badge_order, self._badges
        while order and order[0][0] <= now - BADGE_COALESCE_S:
            badges.pop(order.popleft()[1], None)
        c = notification.counts
        key = f"{device.app_id}\0{device.pushkey}\0{c.unread}\0{c.missed_calls}\0{notification.prio}"
        shared = badges.get(key)
        if shared is not None:
            return True, shared
        shared = badges[key] = Shared()
        order.append((now, key))
        return False, shared

    async def abandon(self, tickets: list[Ticket]) -> None:
        """Admission failed after claiming: release the claims so the homeserver's retry sends."""
        for t in tickets:
            await self._release(t.dedup_key, self.claim)
            self._finish(t.local_key, t.shared, Outcome.temporary("over_limit"))

    # --- while and after sending ---------------------------------------------------------------------

    def follow(self, ticket: Ticket, attempt: defer.Deferred[Outcome],
               deadline: defer.Deferred[None]) -> defer.Deferred[Outcome]:
        """The outcome to report for our own send: its result, or QUEUED if it outlives the deadline.

        Plain callbacks instead of a coroutine awaiting the first of both: this runs once per device,
        and the coroutine's extra Deferred hops cost more than the rest of this method."""
        box: list[Outcome] = []
        attempt.addCallback(_keep, box)
        if box:  # finished synchronously (a fast pushkin, or an answer from memory)
            return defer.ensureDeferred(self._conclude(ticket, box[0]))
        report: defer.Deferred[Outcome] = defer.Deferred()
        decided = False

        def decide(step: Any) -> None:
            nonlocal decided
            if not decided:
                decided = True
                defer.ensureDeferred(step()).chainDeferred(report)

        def settled(outcome: Outcome) -> Outcome:
            decide(lambda: self._conclude(ticket, outcome))
            return outcome

        def expired(result: None) -> None:
            decide(lambda: self._handoff(ticket, attempt))
            return result

        attempt.addCallback(settled)
        if not decided:
            deadline.addCallback(expired)
        return report

    async def await_shared(self, shared: Shared, deadline: defer.Deferred[None]) -> Outcome:
        """A duplicate's report: the first attempt's outcome, or a temporary failure if that is not known
        by our deadline (the homeserver then retries, and the retry finds the settled record)."""
        if shared.result is None:
            await first_of(shared.wait(), deadline)
        return shared.result if shared.result is not None else Outcome.temporary("duplicate_pending")

    async def _conclude(self, ticket: Ticket, outcome: Outcome) -> Outcome:
        report = outcome
        if outcome.status is Status.TEMPORARY:
            queued = False
            if self.queue is not None:
                queued = await self._enqueue(ticket, outcome, running=None)
            if queued:
                report = Outcome(Status.QUEUED, outcome.reason)
            else:
                await self._release(ticket.dedup_key, self.claim)
        else:
            await self.record_final(ticket.dedup_key, ticket.rejection_key, ticket.device.pushkey_ts, outcome)
        self._finish(ticket.local_key, ticket.shared, report)
        return report

    async def _handoff(self, ticket: Ticket, attempt: defer.Deferred[Outcome]) -> Outcome:
        if self.queue is not None and await self._enqueue(ticket, None, running=attempt):
            report = Outcome(Status.QUEUED, "deadline")
            self._finish(ticket.local_key, ticket.shared, report)
            return report
        # No queue: answer 503. Duplicates keep coalescing onto the running send, which settles or
        # releases the claim when it ends, so the homeserver's retry neither duplicates nor loses it.
        def late(outcome: Outcome) -> Outcome:
            defer.ensureDeferred(self._conclude(ticket, outcome))
            return outcome

        attempt.addCallback(late)
        return Outcome.temporary("deadline")

    async def _enqueue(self, ticket: Ticket, outcome: Outcome | None,
                       running: defer.Deferred[Outcome] | None) -> bool:
        """Write the queue entry; True once it is durable. `running` is a send still in progress."""
        assert self.queue is not None
        entry = self.queue.entry_for(ticket.notification, ticket.device, ticket.pushkin, ticket.dedup_key)
        try:
            if ticket.dedup_key is not None:
                await self.store.settle(ticket.dedup_key, SETTLED[Status.QUEUED], self.cfg.dedup_window_s)
            if running is None:
                assert outcome is not None
                await self.queue.add(entry.with_attempts(1), outcome)
            else:
                await self.queue.adopt(entry, running)
        except Exception as e:
            self._state_error("enqueue", e)
            await self._release(ticket.dedup_key, SETTLED[Status.QUEUED])
            return False
        reason = "temporary" if running is None else "deadline"
        metrics.QUEUED.labels(ticket.pushkin.app_id, reason).inc()
        log.info("queued push app_id=%s pushkey=%s reason=%s", ticket.pushkin.app_id, ticket.device.key_hash,
                 reason)
        return True

    async def record_final(self, dkey: str | None, rkey: str, pushkey_ts: int | None, outcome: Outcome) -> None:
        """Remember a final outcome: the de-duplication record, and a rejection of the pushkey."""
        try:
            if outcome.status is Status.REJECTED and self.cfg.rejection_ttl_s > 0:
                rejection = Rejection(int(self.clock() * 1000), pushkey_ts)
                await self.store.remember_rejection(rkey, rejection, self.cfg.rejection_ttl_s)
            if dkey is not None:
                await self.store.settle(dkey, SETTLED.get(outcome.status, "f"), self.cfg.dedup_window_s)
        except Exception as e:
            self._state_error("settle", e)

    async def record_expired(self, dkey: str | None) -> None:
        if dkey is None:
            return
        try:
            await self.store.settle(dkey, EXPIRED, self.cfg.dedup_window_s)
        except Exception as e:
            self._state_error("settle", e)

    # --- housekeeping --------------------------------------------------------------------------------

    def start_sweeping(self) -> None:
        """Drop expired records periodically (the memory store, the SQLite mirror and log would otherwise
        grow for as long as the process runs; Redis expires its keys itself)."""
        self._sweeper = task.LoopingCall(lambda: defer.ensureDeferred(self.sweep()))
        self._sweeper.clock = self.reactor
        self._sweeper.start(SWEEP_INTERVAL_S, now=False)

    def stop_sweeping(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()

    async def sweep(self) -> None:
        try:
            await self.store.sweep(self.clock())
        except Exception as e:
            self._state_error("sweep", e)

    # --- helpers -------------------------------------------------------------------------------------

    async def _poll_remote(self, dkey: str, local_key: str | None, shared: Shared) -> None:
        """Follow another process's claim until it settles (or vanishes, or outlives our deadline)."""
        delay, give_up = 0.02, self.reactor.seconds() + self.request_timeout_s
        outcome = Outcome.temporary("duplicate_pending")
        while self.reactor.seconds() < give_up:
            await task.deferLater(self.reactor, delay, lambda: None)
            delay = min(delay * 2, 0.25)
            try:
                value = await self.store.get(dkey)
            except Exception as e:
                self._state_error("get", e)
                break
            if value is None:
                break  # the owner released it (or died): the homeserver's retry will send
            if not is_pending(value):
                outcome = reported(value)
                break
        self._finish(local_key, shared, outcome)

    async def _release(self, dkey: str | None, expected: str) -> None:
        if dkey is None:
            return
        try:
            await self.store.release(dkey, expected)
        except Exception as e:
            self._state_error("release", e)

    def _finish(self, local_key: str | None, shared: Shared, outcome: Outcome) -> None:
        if local_key is not None and self._local.get(local_key) is shared:
            del self._local[local_key]
        shared.fire(outcome)

    @staticmethod
    def _state_error(op: str, e: Exception) -> None:
        metrics.STATE_ERRORS.labels(op).inc()
        log.error("state store %s failed: %s: %s", op, type(e).__name__, e)
