"""A scriptable pushkin loaded through the public custom-pushkin extension point (``type: dotted.Class``).

Its behaviour is chosen by the pushkey's prefix, so black-box tests can exercise the dispatcher's
contracts (concurrency, isolation, limits, deadlines) without a provider:
``slow-<s>-…`` sleeps s seconds then delivers, ``reject-…`` → rejected, ``temp-…`` → temporary failure,
``fail-…`` → permanent failure, ``raise-…`` → the pushkin raises; anything else is delivered at once.
Deliveries are appended to ``record_file`` (one JSON line each) so tests can count sends across processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from twisted.internet import task

from gateway.model import Device, Notification, Outcome
from gateway.pushkins.base import Pushkin


@dataclass(frozen=True)
class ScriptOptions:
    record_file: str | None


class ScriptedPushkin(Pushkin):
    @classmethod
    def parse_config(cls, section):  # type: ignore[no-untyped-def]
        return ScriptOptions(record_file=section.str("record_file", None))

    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        key = device.pushkey
        if key.startswith("slow-"):
            await task.deferLater(self.ctx.reactor, float(key.split("-")[1]), lambda: None)
        elif key.startswith("reject-"):
            return Outcome.rejected("test_reject")
        elif key.startswith("temp-"):
            return Outcome.temporary("test_temporary", retry_after=7)
        elif key.startswith("fail-"):
            return Outcome.failed("test_failed")
        elif key.startswith("raise-"):
            raise RuntimeError("scripted failure")
        if self.app.options.record_file:
            with open(self.app.options.record_file, "ab") as fh:
                fh.write(orjson.dumps({"pushkey": key, "event_id": notification.event_id,
                                       "unread": notification.counts.unread}) + b"\n")
        return Outcome.delivered()
