"""Encode an APNs payload and fit it into APNs' 4096-byte limit, in linear time.

Sygnal trims one code point from the longest field and re-encodes the whole payload after every
trim, which is quadratic (a 100 KB message body costs 14 s of reactor time). The result it aims for
is "water-filling": the longest fields are cut down to a common byte level, the shorter ones stay
whole. This module computes that level directly: it measures each choppable field once, finds the
highest level that removes enough bytes (a binary search over integers), and cuts each longer field
to the longest code-point prefix whose encoded size fits under the level (a binary search over
prefixes no longer than the level, since every character costs at least one byte). Sizes are of the
*encoded* JSON, so escapes (``\\"``, ``\\u0001``) and multi-byte UTF-8 are counted exactly and a
code point is never split. Total work: two passes over the input plus O(limit · log limit).

Choppable fields are Sygnal's: a string ``aps.alert``, ``aps.alert.body`` and each string in
``aps.alert.loc-args``. A payload that cannot be made to fit raises `PayloadTooLarge`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

MAX_PAYLOAD_BYTES = 4096

Encoder = Callable[[Any], bytes]


class PayloadTooLarge(ValueError):
    """Nothing (or not enough) is choppable to bring the payload under the limit."""


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (valid in parsed JSON, invalid in UTF-8) with U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace") if _has_surrogate(value) else value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON. orjson first; the stdlib handles what orjson refuses (huge ints, surrogates)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(_scrub(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _choppable(payload: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key) of every choppable string field, in Sygnal's order."""
    aps = payload.get("aps")
    if not isinstance(aps, dict):
        return []
    alert = aps.get("alert")
    if isinstance(alert, str):
        return [(aps, "alert")]
    if not isinstance(alert, dict):
        return []
    out: list[tuple[Any, Any]] = []
    if isinstance(alert.get("body"), str):
        out.append((alert, "body"))
    args = alert.get("loc-args")
    if isinstance(args, list):
        out.extend((args, i) for i, a in enumerate(args) if isinstance(a, str))
    return out


def _cost(s: str, encode: Encoder) -> int:
    return len(encode(s)) - 2  # minus the quotes


def _cut(s: str, level: int, encode: Encoder) -> str:
    """The longest prefix of `s` whose encoded size is at most `level` bytes."""
    lo, hi = 0, min(len(s), level)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _cost(s[:mid], encode) <= level:
            lo = mid
        else:
            hi = mid - 1
    return s[:lo]


def _level(costs: list[int], excess: int) -> int:
    """The highest level L with sum(max(0, c - L)) >= excess (costs are known to allow L = 0)."""
    lo, hi = 0, max(costs)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(c - mid for c in costs if c > mid) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


def encode_payload(payload: dict[str, Any], limit: int = MAX_PAYLOAD_BYTES,
                   encode: Encoder = dumps) -> tuple[bytes, bool]:
    """(body, truncated): `payload` encoded, its choppable fields cut so the body fits in `limit` bytes.

    `payload` is modified in place when truncated. Raises PayloadTooLarge.
    """
    body = encode(payload)
    if len(body) <= limit:
        return body, False
    fields = _choppable(payload)
    for _ in range(3):  # one pass suffices; the guard only bounds the work on a surprise
        excess = len(body) - limit
        costs = [_cost(c[k], encode) for c, k in fields]
        if sum(costs) < excess:
            raise PayloadTooLarge(f"payload is {len(body)} bytes and only {sum(costs)} bytes are choppable")
        level = _level(costs, excess)
        for (container, key), cost in zip(fields, costs):
            if cost > level:
                container[key] = _cut(container[key], level, encode)
        body = encode(payload)
        if len(body) <= limit:
            return body, True
    raise PayloadTooLarge(f"payload is still {len(body)} bytes after truncation")
