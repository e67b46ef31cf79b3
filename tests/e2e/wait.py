"""Observing what reached the gateway's pushkins, and waiting for it without fixed sleeps.

Synapse pushes asynchronously after an event is persisted, so every assertion polls until the expected
push is there (or a generous deadline passes, which only bounds a failing test). Pushes are told apart by
pushkey (each test uses its own) and event_id, never by position: joins and invites also produce pushes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gateway.model import pushkey_hash
from tests.support.gateway import GatewayProcess

T = TypeVar("T")

DEADLINE_S = 20.0


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE_S) -> T:
    """Call ``probe`` until it returns something other than None/False/empty."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class PushLog:
    """Pushes seen by the gateway's ``log`` pushkins (``GET /_debug/last``) and the scripted pushkin's file."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.record_file: Path = gateway.record_file  # type: ignore[attr-defined]

    def logged(self, pushkey: str) -> list[dict[str, Any]]:
        resp = self.gateway.get("/_debug/last")
        assert resp.status == 200, resp
        key_hash = pushkey_hash(pushkey)
        return [n for n in resp.json()["notifications"] if n["pushkey_hash"] == key_hash]

    def scripted(self, pushkey: str) -> list[dict[str, Any]]:
        lines = self.record_file.read_bytes().splitlines()
        return [rec for rec in map(orjson.loads, lines) if rec["pushkey"] == pushkey]

    def for_event(self, pushkey: str, event_id: str) -> list[dict[str, Any]]:
        return [n for n in self.logged(pushkey) if n["event_id"] == event_id]

    def wait_event(self, pushkey: str, event_id: str) -> dict[str, Any]:
        """The single logged push of ``event_id`` to ``pushkey`` (fails if it never comes)."""
        return eventually(lambda: self.for_event(pushkey, event_id), f"push of {event_id}")[0]

    def badges(self, pushkey: str) -> list[int]:
        """Unread counts of the badge-only updates (no event) logged for ``pushkey``, in arrival order."""
        return [n["unread"] for n in self.logged(pushkey) if n["event_id"] is None]

    def wait_badges(self, pushkey: str, count: int) -> list[int]:
        return eventually(lambda: (b := self.badges(pushkey)) and len(b) >= count and b,
                          f"{count} badge update(s)")
