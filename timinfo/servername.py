"""Matrix server name grammar (spec appendix "Server Name"), case-folded.

Hand-written: the grammar is small and no maintained library validates Matrix server names.
"""

from __future__ import annotations

import ipaddress
import re

_DNS = re.compile(r"[a-z0-9.\-]{1,255}")
_PORT = re.compile(r"[0-9]{1,5}")


def normalize_server_name(value: str) -> str | None:
    """The case-folded server name, or None if `value` is not a valid Matrix server name."""
    if not value or len(value) > 255 or not value.isascii():
        return None
    name = value.lower()
    host, port = name, None
    if name.startswith("["):
        end = name.find("]")
        if end < 0:
            return None
        host, rest = name[1:end], name[end + 1:]
        if "%" in host:  # a zone id ("fe80::1%eth0") is local to one machine, not part of the grammar
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    else:
        if ":" in name:
            host, port = name.rsplit(":", 1)
        if not _DNS.fullmatch(host) or host.startswith(".") or host.endswith(".") or ".." in host:
            return None
    if port is not None and (not _PORT.fullmatch(port) or not 0 < int(port) < 65536):
        return None
    return name
