import pytest

from timinfo.servername import normalize_server_name


@pytest.mark.parametrize("value,expected", [
    ("CiroSec.DE", "cirosec.de"),
    ("example.org:8448", "example.org:8448"),
    ("1.2.3.4", "1.2.3.4"),
    ("[::1]:443", "[::1]:443"),
    ("localhost", "localhost"),
])
def test_valid(value: str, expected: str) -> None:
    assert normalize_server_name(value) == expected


@pytest.mark.parametrize("value", ["", "exa mple.org", "example.org:", "example.org:99999", "example.org:0",
                                   "[::1", "[zz]", "ex_ample.org", "a" * 256, ".example.org", "example..org",
                                   "exämple.org", "example.org/x", "@u:example.org"])
def test_invalid(value: str) -> None:
    assert normalize_server_name(value) is None
