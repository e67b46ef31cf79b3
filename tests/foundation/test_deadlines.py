"""Shared request deadlines: never later than promised, one timer per slot, early finishers untouched."""

from __future__ import annotations

from twisted.internet import defer, task

from gateway.notify import Deadlines


def test_deadlines_fire_within_their_slot_and_share_timers() -> None:
    clock = task.Clock()
    deadlines = Deadlines(clock, 9.0)
    assert deadlines.slot_s == 0.1
    waiting = []
    for _ in range(100):
        d: defer.Deferred[None] = defer.Deferred()
        deadlines.watch(d)
        waiting.append(d)
        clock.advance(0.001)  # 100 requests over 0.1 s: at most two slots
    assert len(clock.getDelayedCalls()) <= 2
    finished_early = waiting[0]
    finished_early.callback(None)
    clock.advance(9.0 - 0.1 - 0.1 - 0.001)  # before the earliest possible firing: nothing fired
    assert not any(d.called for d in waiting[1:])
    clock.advance(0.1 + 0.001)  # 9 s after the last watch at the latest: all fired
    assert all(d.called for d in waiting)
    assert not clock.getDelayedCalls()


def test_short_timeouts_use_finer_slots() -> None:
    clock = task.Clock()
    deadlines = Deadlines(clock, 0.9)
    d: defer.Deferred[None] = defer.Deferred()
    clock.advance(0.123)
    deadlines.watch(d)
    clock.advance(0.9 - deadlines.slot_s - 0.0001)
    assert not d.called and deadlines.slot_s <= 0.9 * 0.05
    clock.advance(deadlines.slot_s)
    assert d.called
