"""app_id → configured app, as Sygnal does it: an exact key wins, else exactly one glob must match.

Globs support ``*`` and ``?`` only; everything else is literal and matching is case-sensitive.
Results are cached per app_id (app ids seen in practice are few and bounded by the cache size). Only
app ids up to `_CACHE_KEY_MAX` characters are cached (the Matrix spec caps pusher app ids at 64): a
request body may carry a 256 KiB app id, and 4096 cached ones would pin a gigabyte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
_CACHE_MAX = 4096
_CACHE_KEY_MAX = 256


def glob_to_regex(glob: str) -> re.Pattern[str]:
    parts = []
    for ch in glob:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile(r"\A" + "".join(parts) + r"\Z", re.DOTALL)


class AppMatcher(Generic[T]):
    def __init__(self, apps: Iterable[tuple[str, T]]) -> None:
        self._exact: dict[str, T] = {}
        self._globs: list[tuple[re.Pattern[str], T]] = []
        for key, value in apps:
            self._exact[key] = value
            if "*" in key or "?" in key:
                self._globs.append((glob_to_regex(key), value))
        self._cache: dict[str, T | None] = {}

    def match(self, app_id: str) -> T | None:
        """The app for `app_id`, or None when unknown or ambiguous."""
        try:
            return self._cache[app_id]
        except KeyError:
            pass
        found = self._exact.get(app_id)
        if found is None:
            hits = [value for rx, value in self._globs if rx.match(app_id)]
            found = hits[0] if len(hits) == 1 else None
        if len(self._cache) < _CACHE_MAX and len(app_id) <= _CACHE_KEY_MAX:
            self._cache[app_id] = found
        return found
