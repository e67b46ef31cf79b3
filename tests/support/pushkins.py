"""A scriptable pushkin loaded through the public custom-pushkin extension point (``type: dotted.Class``).

Its behaviour is chosen by the pushkey's prefix, so black-box tests can exercise the dispatcher's
contracts (concurrency, isolation, limits, deadlines) without a provider:
``slow-<s>-…`` sleeps s seconds then delivers, ``reject-…``/``dead-…`` → rejected, ``temp-…`` →
temporary failure, ``fail-…`` → permanent failure, ``raise-…`` → the pushkin raises;
``gate-<name>-…`` waits until the file ``<control_dir>/<name>`` exists, then delivers (tests decide when
a "stalled provider" answers, across process restarts); ``flaky-<n>-…`` fails temporarily on its first n
attempts, then delivers, and ``dies-<n>-…`` then rejects (attempts are counted in ``control_dir``, so
they survive restarts); ``chaos-…`` draws a fault per attempt from the ``chaos`` options (probabilities
of a 503-like temporary failure, a connection reset (the pushkin raises), and a stall of ``stall_s``
before answering; a ``chaos-…-dead-…`` key is then rejected); anything else is delivered at once.
Deliveries are appended to ``record_file`` and every attempt to ``attempts_file`` (one JSON line each),
so tests can count sends across processes.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass

import orjson
from twisted.internet import task

from gateway.model import Device, Notification, Outcome
from gateway.pushkins.base import Pushkin


@dataclass(frozen=True)
class ChaosOptions:
    unavailable: float = 0.0
    reset: float = 0.0
    stall: float = 0.0
    stall_s: float = 2.0


@dataclass(frozen=True)
class ScriptOptions:
    record_file: str | None
    attempts_file: str | None
    control_dir: str | None
    chaos: ChaosOptions


class ScriptedPushkin(Pushkin):
    @classmethod
    def parse_config(cls, section):  # type: ignore[no-untyped-def]
        c = section.section("chaos")
        chaos = ChaosOptions(unavailable=c.number("unavailable", 0.0, min=0, max=1),
                             reset=c.number("reset", 0.0, min=0, max=1), stall=c.number("stall", 0.0, min=0, max=1),
                             stall_s=c.number("stall_s", 2.0, min=0))
        c.finish()
        return ScriptOptions(record_file=section.str("record_file", None),
                             attempts_file=section.str("attempts_file", None),
                             control_dir=section.str("control_dir", None), chaos=chaos)

    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        outcome = await self._script(notification, device)
        opts = self.app.options
        line = {"pushkey": device.pushkey, "event_id": notification.event_id, "unread": notification.counts.unread}
        if opts.attempts_file:
            _append(opts.attempts_file, {**line, "outcome": outcome.status.value})
        if opts.record_file and outcome.status.value == "delivered":
            _append(opts.record_file, line)
        return outcome

    async def _script(self, notification: Notification, device: Device) -> Outcome:
        key = device.pushkey
        opts = self.app.options
        if key.startswith("slow-"):
            await self._sleep(float(key.split("-")[1]))
        elif key.startswith(("reject-", "dead-")):
            return Outcome.rejected("test_reject")
        elif key.startswith("temp-"):
            return Outcome.temporary("test_temporary", retry_after=7)
        elif key.startswith("fail-"):
            return Outcome.failed("test_failed")
        elif key.startswith("raise-"):
            raise RuntimeError("scripted failure")
        elif key.startswith("gate-"):
            gate = os.path.join(opts.control_dir, key.split("-")[1])
            while not os.path.exists(gate):
                await self._sleep(0.02)
        elif key.startswith(("flaky-", "dies-")):
            if self._count(key) <= int(key.split("-")[1]):
                return Outcome.temporary("test_flaky")
            if key.startswith("dies-"):
                return Outcome.rejected("test_reject")
        elif key.startswith("chaos-"):
            c, r = opts.chaos, random.random()
            if r < c.unavailable:
                return Outcome.temporary("unavailable")
            if r < c.unavailable + c.reset:
                raise ConnectionResetError("scripted connection reset")
            if r < c.unavailable + c.reset + c.stall:
                await self._sleep(c.stall_s)
            if "-dead-" in key:
                return Outcome.rejected("test_reject")
        return Outcome.delivered()

    async def _sleep(self, seconds: float) -> None:
        await task.deferLater(self.ctx.reactor, seconds, lambda: None)

    def _count(self, key: str) -> int:
        """This pushkey's attempt number (1-based), kept in a file so it survives restarts."""
        path = os.path.join(self.app.options.control_dir, "count-" + hashlib.sha256(key.encode()).hexdigest()[:16])
        n = int(open(path).read()) + 1 if os.path.exists(path) else 1
        with open(path, "w") as fh:
            fh.write(str(n))
        return n


def _append(path: str, doc: dict) -> None:  # type: ignore[type-arg]
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(doc) + b"\n")
