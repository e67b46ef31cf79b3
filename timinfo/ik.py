"""IK numbers (Institutionskennzeichen): input format and the GR-IK §1.2.5 check digit.

Hand-written because no library implements the GR-IK rule. Note that the check digit is the remainder
itself (sum mod 10), not Luhn's 10 - (sum mod 10).
"""

from __future__ import annotations

#: Classification prefixes the VZD accepts for insurer IKs.
INSURER_PREFIXES = ("10", "16", "95")


def is_ik_format(value: str) -> bool:
    """Exactly nine ASCII digits (str.isdigit would also accept other Unicode digits)."""
    return len(value) == 9 and value.isascii() and value.isdigit()


def check_digit(ik8: str) -> int:
    """The check digit for the first eight digits: digits 3-8 weighted 2,1,2,1,2,1, digit sums, mod 10."""
    if len(ik8) < 8 or not ik8[:8].isascii() or not ik8[:8].isdigit():
        raise ValueError("need at least eight ASCII digits")
    total = 0
    for digit, weight in zip(ik8[2:8], (2, 1, 2, 1, 2, 1)):
        product = int(digit) * weight
        total += product // 10 + product % 10
    return total % 10


def is_valid_ik(value: str) -> bool:
    """Format and check digit (the classification prefix is not checked; see `is_insurer_ik`)."""
    return is_ik_format(value) and check_digit(value) == int(value[8])


def is_insurer_ik(value: str) -> bool:
    """What the VZD accepts for an insurer: valid IK with prefix 10, 16 or 95."""
    return is_valid_ik(value) and value[:2] in INSURER_PREFIXES
