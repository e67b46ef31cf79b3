"""The one interface every state backend implements.

The guarantees layer (`gateway.guarantees`) and the retry queue (`gateway.retryqueue`) only speak to
this interface, so `memory`, `sqlite` and `redis` are interchangeable. Each operation is a single
atomic step in the backend (a dict update, one SQLite statement, one Redis command or Lua script), so
two gateway processes sharing Redis can never both claim the same (app_id, pushkey, event_id).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.state.records import QueueEntry, Rejection


@dataclass(frozen=True, slots=True)
class Check:
    #: A remembered rejection of this pushkey (nothing was claimed then).
    rejection: Rejection | None = None
    #: The existing de-duplication record when somebody else holds the key; None when we claimed it.
    existing: str | None = None


class StateStore(abc.ABC):
    #: True when another process may hold claims and queue entries (only Redis): remote claims are polled.
    shared: bool = False

    async def start(self) -> None:
        """Open connections or files; raise with a readable message when that is impossible."""

    async def close(self) -> None:
        """Release connections and files."""

    # --- de-duplication and rejections -------------------------------------------------------------

    @abc.abstractmethod
    async def check(self, rejection_key: str, dedup_key: str | None, claim: str, lease_s: float) -> Check:
        """Look up a rejection; when there is none and `dedup_key` is given, claim it for `lease_s`."""

    @abc.abstractmethod
    async def claim(self, dedup_key: str, claim: str, lease_s: float) -> str | None:
        """Claim `dedup_key` if free; return the existing value otherwise."""

    @abc.abstractmethod
    async def get(self, dedup_key: str) -> str | None:
        """The current value of a de-duplication record (None when absent or expired)."""

    @abc.abstractmethod
    async def settle(self, dedup_key: str, value: str, ttl_s: float) -> None:
        """Replace the record (pending or settled) with a final value kept for `ttl_s`."""

    @abc.abstractmethod
    async def release(self, dedup_key: str, claim: str) -> None:
        """Drop our pending claim (only if it is still ours) so a later retry sends again."""

    @abc.abstractmethod
    async def remember_rejection(self, rejection_key: str, rejection: Rejection, ttl_s: float) -> None: ...

    @abc.abstractmethod
    async def forget_rejection(self, rejection_key: str) -> None: ...

    # --- retry queue -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(self, entry: QueueEntry, due: float, leased: bool = False) -> None:
        """Store `entry`, due at `due` (epoch seconds); `leased` when this process is already sending it.
        Durable (crash-safe) when this returns."""

    @abc.abstractmethod
    async def take_due(self, now: float, limit: int, lease_until: float) -> list[QueueEntry]:
        """Lease up to `limit` due entries: they become due again at `lease_until` unless renewed."""

    @abc.abstractmethod
    async def renew(self, ids: Sequence[str], lease_until: float) -> None:
        """Extend the lease of entries this process is still working on."""

    @abc.abstractmethod
    async def reschedule(self, entry: QueueEntry, due: float) -> None: ...

    @abc.abstractmethod
    async def remove(self, entry_id: str) -> None: ...

    @abc.abstractmethod
    async def queue_stats(self) -> tuple[int, float | None]:
        """(number of entries, creation time of the oldest entry or None)."""

    async def sweep(self, now: float) -> None:
        """Drop expired records (backends without native expiry)."""


class LocalStore(StateStore):
    """A store whose lookups answer synchronously (memory, sqlite): `check`/`claim` share one path.

    Subclasses give the raw remembered rejection of a key and an atomic claim-or-existing."""

    @abc.abstractmethod
    def _rejection(self, rejection_key: str) -> str | None: ...

    @abc.abstractmethod
    def _claim(self, dedup_key: str, claim: str, lease_s: float) -> str | None: ...

    async def check(self, rejection_key: str, dedup_key: str | None, claim: str, lease_s: float) -> Check:
        rejection = self._rejection(rejection_key)
        if rejection is not None:
            return Check(rejection=Rejection.decode(rejection))
        if dedup_key is None:
            return Check()
        return Check(existing=self._claim(dedup_key, claim, lease_s))

    async def claim(self, dedup_key: str, claim: str, lease_s: float) -> str | None:
        return self._claim(dedup_key, claim, lease_s)
