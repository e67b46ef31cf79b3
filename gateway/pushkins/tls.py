"""Outgoing TLS trust shared by the provider pushkins: system CAs plus an optional extra ``ca_file``.

`ssl.create_default_context()` already honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``; the extra CA serves
test fakes and enterprise relays. The file is checked when the config is read, so a bad one is a
config error naming ``apps.<id>.ca_file`` rather than a failure on the first push.
"""

from __future__ import annotations

import ssl

from gateway.config.reader import Section


def read_ca_file(s: Section) -> str | None:
    path = s.path_to_file("ca_file", None)
    if path is not None:
        try:
            client_context(path)
        except (ssl.SSLError, ValueError) as e:
            raise s.error("ca_file", f"not a PEM CA certificate file: {e}") from None
    return path


def client_context(ca_file: str | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    """System trust store plus `ca_file`; TLS 1.2 or newer."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        context.set_alpn_protocols(alpn)
    return context
