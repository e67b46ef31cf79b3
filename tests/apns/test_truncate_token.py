"""Truncation to the 4096-byte limit (linear work, code points intact) and pushkey → token conversion."""

from __future__ import annotations

import base64

import pytest

from gateway.pushkins.apns_token import device_token
from gateway.pushkins.apns_truncate import MAX_PAYLOAD_BYTES, PayloadTooLarge, dumps, encode_payload


def alert_payload(*args: str, body: str | None = None) -> dict:
    alert: dict = {"loc-key": "K", "loc-args": list(args)}
    if body is not None:
        alert["body"] = body
    return {"aps": {"alert": alert, "badge": 1}, "room_id": "!r:hs", "event_id": "$e"}


class CountingEncoder:
    """Counts the characters the truncator asks to encode: its whole cost is encoding work."""

    def __init__(self) -> None:
        self.chars = 0
        self.calls = 0

    def __call__(self, value):
        self.calls += 1
        self.chars += len(value) if isinstance(value, str) else len(dumps(value))
        return dumps(value)


def test_small_payload_untouched():
    p = alert_payload("a", "b")
    body, truncated = encode_payload(p)
    assert (body, truncated) == (dumps(alert_payload("a", "b")), False)


def test_longest_field_shrinks_first_and_fields_end_even():
    p = alert_payload("a" * 10, "b" * 3000, "c" * 3000)
    body, truncated = encode_payload(p)
    args = p["aps"]["alert"]["loc-args"]
    assert truncated and len(body) <= MAX_PAYLOAD_BYTES
    assert args[0] == "a" * 10
    assert abs(len(args[1]) - len(args[2])) <= 1
    # Maximal: one more character would not fit.
    assert len(body) > MAX_PAYLOAD_BYTES - 2


@pytest.mark.parametrize("char", ["é", "€", "😀", "\u0001", '"'])
def test_multibyte_and_escaped_characters_are_never_split(char):
    p = alert_payload("x", body=char * 5000)
    body, truncated = encode_payload(p)
    assert truncated and len(body) <= MAX_PAYLOAD_BYTES
    text = p["aps"]["alert"]["body"]
    assert text == char * len(text) and len(text) > 0
    body.decode("utf-8")  # valid UTF-8, so no split sequence
    # Fits as tightly as the character size allows.
    assert MAX_PAYLOAD_BYTES - len(body) < len(dumps(char)) - 2 + 1


def test_string_alert_is_choppable():
    p = {"aps": {"alert": "€" * 4000}}
    body, truncated = encode_payload(p)
    assert truncated and len(body) <= MAX_PAYLOAD_BYTES and p["aps"]["alert"] == "€" * len(p["aps"]["alert"])


def test_nothing_choppable_raises():
    with pytest.raises(PayloadTooLarge):
        encode_payload({"room_id": "!r", "event_id": "$e", "big": "x" * 5000})
    with pytest.raises(PayloadTooLarge):
        encode_payload({"aps": {"alert": {"loc-args": ["x"]}}, "big": "x" * 5000})


def test_lone_surrogates_are_encoded_as_replacement_characters():
    body, _ = encode_payload(alert_payload("a\ud800b"))
    assert "a\ufffdb".encode() in body


@pytest.mark.parametrize("char", ["a", "€"])
def test_truncation_work_is_linear_in_the_input(char):
    """A 512 KiB body costs a bounded number of encodes over bounded input: no quadratic re-encoding."""
    work = {}
    for size in (16 * 1024, 512 * 1024):
        enc = CountingEncoder()
        n = size // len(char.encode())
        body, truncated = encode_payload(alert_payload("sender", "room", char * n), encode=enc)
        assert truncated and len(body) <= MAX_PAYLOAD_BYTES
        work[size] = enc
        # Two passes over the input plus a binary search over prefixes no longer than the limit.
        assert enc.chars <= 3 * size + 40 * MAX_PAYLOAD_BYTES
        assert enc.calls <= 60
    # 32x the input means at most ~32x the work (Sygnal's loop would be ~1000x).
    assert work[512 * 1024].chars / work[16 * 1024].chars < 40


TOKEN = bytes(range(32))


@pytest.mark.parametrize("pushkey,expected", [
    (base64.b64encode(TOKEN).decode(), TOKEN.hex()),
    (base64.b64encode(TOKEN).decode().rstrip("="), TOKEN.hex()),  # missing padding
    (base64.urlsafe_b64encode(bytes([0xfb] * 32)).decode(), "fb" * 32),  # URL-safe alphabet
    (TOKEN.hex(), TOKEN.hex()),  # already hex: not mis-decoded
    (TOKEN.hex().upper(), TOKEN.hex()),
    ("fcm-token:APA91bHun4MxP5egoKMwt2KZFBaFUH", None),  # an FCM token: not base64
    ("a===", None),
    ("", None),
    ("abc/../../x", None),
    ("x" * 1000, None),
])
def test_device_token(pushkey, expected):
    assert device_token(pushkey) == expected


def test_device_token_without_conversion_requires_hex():
    assert device_token(TOKEN.hex(), convert_to_hex=False) == TOKEN.hex()
    assert device_token(base64.b64encode(TOKEN).decode(), convert_to_hex=False) is None
    assert device_token("ab/cd\r\n", convert_to_hex=False) is None
