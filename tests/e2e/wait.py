"""Observing what reached the fake providers, and waiting for it without fixed sleeps.

Synapse pushes asynchronously after an event is persisted, so every assertion polls until the expected
push is there (a generous deadline only bounds a failing test). Pushes are told apart by pushkey (each
test uses its own) and event_id, never by position: joins and invites also produce pushes.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from tests.fakes.apns import FakeAPNs
from tests.fakes.apns import Received as ApnsRequest
from tests.fakes.fcm import FakeGoogle, Recorded
from tests.support.wait import eventually


def apns_pushkey() -> tuple[str, str]:
    """(pushkey as an iOS client registers it: base64 of the device token, the token in hex as APNs sees it)."""
    token = secrets.token_bytes(32)
    return base64.b64encode(token).decode(), token.hex()


def fcm_pushkey() -> str:
    return f"fcm-{secrets.token_urlsafe(24)}"


class Received:
    """What the fake APNs, the fake FCM and the scripted pushkin got, per pushkey."""

    def __init__(self, apns: FakeAPNs, fcm: FakeGoogle, record_file: Path) -> None:
        self.apns_fake = apns
        self.fcm_fake = fcm
        self.record_file = record_file

    def apns(self, token_hex: str) -> list[ApnsRequest]:
        return self.apns_fake.for_token(token_hex)

    def fcm(self, pushkey: str) -> list[Recorded]:
        return self.fcm_fake.sends_for(pushkey)

    def scripted(self, pushkey: str) -> list[dict[str, Any]]:
        lines = self.record_file.read_bytes().splitlines()
        return [rec for rec in map(json.loads, lines) if rec["pushkey"] == pushkey]

    def wait_apns(self, token_hex: str, count: int) -> list[ApnsRequest]:
        return eventually(lambda: (got := self.apns(token_hex)) and len(got) >= count and got,
                          f"{count} APNs request(s)")

    def wait_fcm(self, pushkey: str, count: int) -> list[Recorded]:
        return eventually(lambda: (got := self.fcm(pushkey)) and len(got) >= count and got,
                          f"{count} FCM send(s)")
