"""Pushkey → APNs device token (the hex string in ``:path /3/device/<token>``).

iOS clients register the raw token bytes base64-encoded (Sygnal's ``convert_device_token_to_hex``),
but some register the hex form Apple documents. Sygnal decodes every pushkey as base64 without
validation, so a hex pushkey turns into garbage, APNs answers ``BadDeviceToken`` and a live pusher is
deleted; invalid padding raises and gives a 500. Here a pushkey that already is hex is used as is,
base64 is decoded strictly (standard or URL-safe alphabet, padding optional), and anything else
yields None: the caller reports a permanent failure for that device without rejecting the pushkey.
The result is always lower-case hex, so a hostile pushkey can never inject into the request path.
"""

from __future__ import annotations

import base64
import binascii
import re

#: Apple's tokens are 32 bytes today and documented as variable length; 100 bytes is a generous cap.
MAX_TOKEN_BYTES = 100
_HEX = re.compile(r"[0-9a-fA-F]+")
_B64 = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}")


def _hex_token(value: str) -> str | None:
    if len(value) % 2 or not (32 <= len(value) <= 2 * MAX_TOKEN_BYTES) or not _HEX.fullmatch(value):
        return None
    return value.lower()


def device_token(pushkey: str, convert_to_hex: bool = True) -> str | None:
    """The hex device token for `pushkey`, or None if it cannot be an APNs token."""
    if not isinstance(pushkey, str) or not pushkey:
        return None
    # 64+ hex digits: already the hex form (base64 of a 32-byte token is 44 chars with '=' padding).
    as_hex = _hex_token(pushkey)
    if as_hex is not None and (not convert_to_hex or len(pushkey) >= 64):
        return as_hex
    if not convert_to_hex:
        return None
    if len(pushkey) > 4 * MAX_TOKEN_BYTES or not _B64.fullmatch(pushkey):
        return None
    text = pushkey.rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or len(raw) > MAX_TOKEN_BYTES:
        return None
    return raw.hex()
