"""In-process state: dicts with expiry. For development and tests, and single instances that accept
losing the retry queue and de-duplication history on restart (both are logged at shutdown)."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence

from gateway.state.base import LocalStore
from gateway.state.records import QueueEntry, Rejection


class ExpiringDict:
    """A dict whose items vanish after their TTL; a heap finds expired items without scanning."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.items: dict[str, tuple[str, float]] = {}
        self.heap: list[tuple[float, str]] = []

    def get(self, key: str) -> str | None:
        item = self.items.get(key)
        if item is None:
            return None
        if item[1] <= self.clock():
            del self.items[key]
            return None
        return item[0]

    def set(self, key: str, value: str, ttl_s: float) -> None:
        expires = self.clock() + ttl_s
        self.items[key] = (value, expires)
        heapq.heappush(self.heap, (expires, key))

    def set_until(self, key: str, value: str, expires: float) -> None:
        """`set` with an absolute expiry (epoch seconds), for a caller that also stores that expiry."""
        self.items[key] = (value, expires)
        heapq.heappush(self.heap, (expires, key))

    def delete(self, key: str) -> None:
        self.items.pop(key, None)

    def sweep(self, now: float) -> None:
        heap, items = self.heap, self.items
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            item = items.get(key)
            if item is not None and item[1] <= now:
                del items[key]
        if len(heap) > 2 * len(items) + 1024:  # superseded expiries pile up; rebuild now and then
            self.heap = [(exp, k) for k, (_, exp) in items.items()]
            heapq.heapify(self.heap)

    def evict(self, keep: int) -> list[tuple[str, str, float]]:
        """Remove the earliest-expiring items until at most `keep` are left; return them as (key, value,
        expiry), so a caller bounding its memory can move them elsewhere instead of forgetting them."""
        heap, items = self.heap, self.items
        out: list[tuple[str, str, float]] = []
        while heap and len(items) > keep:
            expires, key = heapq.heappop(heap)
            item = items.get(key)
            if item is not None and item[1] == expires:
                del items[key]
                out.append((key, item[0], expires))
        return out


class MemoryStore(LocalStore):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.dedup = ExpiringDict(clock)
        self.rejections = ExpiringDict(clock)
        self.queue: dict[str, tuple[QueueEntry, float]] = {}

    def _rejection(self, rejection_key: str) -> str | None:
        return self.rejections.get(rejection_key)

    def _claim(self, dedup_key: str, claim: str, lease_s: float) -> str | None:
        existing = self.dedup.get(dedup_key)
        if existing is None:
            self.dedup.set(dedup_key, claim, lease_s)
        return existing

    async def get(self, dedup_key: str) -> str | None:
        return self.dedup.get(dedup_key)

    async def settle(self, dedup_key: str, value: str, ttl_s: float) -> None:
        self.dedup.set(dedup_key, value, ttl_s)

    async def release(self, dedup_key: str, claim: str) -> None:
        if self.dedup.get(dedup_key) == claim:
            self.dedup.delete(dedup_key)

    async def remember_rejection(self, rejection_key: str, rejection: Rejection, ttl_s: float) -> None:
        self.rejections.set(rejection_key, rejection.encode(), ttl_s)

    async def forget_rejection(self, rejection_key: str) -> None:
        self.rejections.delete(rejection_key)

    async def enqueue(self, entry: QueueEntry, due: float, leased: bool = False) -> None:
        self.queue[entry.id] = (entry, due)

    async def take_due(self, now: float, limit: int, lease_until: float) -> list[QueueEntry]:
        due = sorted((d, e.id) for e, d in self.queue.values() if d <= now)[:limit]
        out = []
        for _, entry_id in due:
            entry = self.queue[entry_id][0]
            self.queue[entry_id] = (entry, lease_until)
            out.append(entry)
        return out

    async def renew(self, ids: Sequence[str], lease_until: float) -> None:
        for entry_id in ids:
            if entry_id in self.queue:
                self.queue[entry_id] = (self.queue[entry_id][0], lease_until)

    async def reschedule(self, entry: QueueEntry, due: float) -> None:
        if entry.id in self.queue:
            self.queue[entry.id] = (entry, due)

    async def remove(self, entry_id: str) -> None:
        self.queue.pop(entry_id, None)

    async def queue_stats(self) -> tuple[int, float | None]:
        if not self.queue:
            return 0, None
        return len(self.queue), min(e.created for e, _ in self.queue.values())

    async def sweep(self, now: float) -> None:
        self.dedup.sweep(now)
        self.rejections.sweep(now)
