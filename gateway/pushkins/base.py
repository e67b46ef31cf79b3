"""The pushkin seam: one small async interface every provider implements.

A pushkin owns one configured app (`apps.<app_id>` in the config). The dispatcher calls
`dispatch(notification, device)` (through `dispatch_deferred`) once per device, concurrently, and never lets one device's failure
touch another's. `dispatch` returns an `Outcome` and should not raise; an exception is treated as a
temporary failure and logged by the dispatcher.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

if TYPE_CHECKING:
    from gateway.config.model import AppConfig
    from gateway.config.reader import Section
    from gateway.model import Device, Notification, Outcome


@dataclass(frozen=True)
class PushkinContext:
    """What a pushkin may use from the process: the running reactor and process-wide settings."""

    reactor: Any
    #: Outgoing HTTP(S) proxy URL (``proxy:`` or ``HTTPS_PROXY``), or None.
    proxy: str | None
    #: The notify request deadline, so in-request retries can stay inside it.
    request_timeout_s: float
    #: True when a durable retry queue takes over sends still running at the notify deadline. Then a
    #: pushkin must NOT cut an attempt at the deadline: a provider that accepted a push but answers late
    #: would otherwise be sent the same push again by the queue.
    queue_takes_over: bool = False

    def attempt_budget_s(self, own_s: float) -> float:
        """Time all in-request attempts of one push may take.

        Without a queue, attempts end before the gateway answers (at 0.9 x the deadline), so a temporary
        failure is reported to the homeserver; with a queue, the pushkin's own budget applies."""
        if self.queue_takes_over:
            return own_s
        return max(0.05, min(own_s, self.request_timeout_s * 0.8))


class Pushkin(abc.ABC):
    def __init__(self, app: AppConfig, ctx: PushkinContext) -> None:
        self.app = app
        self.ctx = ctx

    @property
    def app_id(self) -> str:
        return self.app.app_id

    @classmethod
    @abc.abstractmethod
    def parse_config(cls, section: Section) -> Any:
        """Read this pushkin's own keys from `section` into a frozen object (the caller calls finish())."""

    async def start(self) -> None:
        """Open connections, load keys. Raise to abort start-up with a clear message."""

    @abc.abstractmethod
    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        """Deliver one notification to one device."""

    def dispatch_deferred(self, notification: Notification, device: Device) -> defer.Deferred[Outcome]:
        """`dispatch` as a Deferred. A pushkin that can start its send synchronously overrides this and
        returns the Deferred its provider answer fires, saving a coroutine hop per push."""
        return defer.ensureDeferred(self.dispatch(notification, device))

    async def stop(self) -> None:
        """Close connections; called once at shutdown."""
