"""Retry timing shared by every provider: bounded exponential backoff with full jitter, and Retry-After.

Jitter spreads the retries of many devices that failed together (a provider hiccup) so they do not hit
the provider again in lock-step; Retry-After from the provider always wins over our own schedule.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    #: Attempts in total (1 means no retry).
    max_tries: int = 3
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            # Honour the provider, with a little jitter on top so a crowd does not return at once.
            return retry_after + (rng or random).uniform(0, min(1.0, retry_after * 0.1 + 0.05))
        cap = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(cap / 2, cap)


def parse_retry_after(value: str | bytes | None, now: float | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
