"""Inspect the provider credential files an app names: do they load, and when do they expire?

Used by ``check-config`` (printed report) and at start-up (the ``tim_push_credential_expiry_seconds``
gauge), so an operator learns about an expiring APNs certificate from an alert, not from rejected
pushes. Files are found by the Sygnal-compatible config keys every pushkin accepts (``certfile``,
``keyfile``, ``service_account_file``), read from the raw app mapping so this module does not depend
on any pushkin's option class. Only paths, key types and dates are reported — never key material.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config.reader import ConfigError, expand_env

#: Config keys that name credential files, by the kind of file they hold.
CREDENTIAL_KEYS = ("certfile", "keyfile", "service_account_file")


@dataclass(frozen=True)
class CredentialInfo:
    app_id: str
    #: The config key naming the file (certfile, keyfile, service_account_file).
    kind: str
    path: str
    ok: bool
    #: One line: what was found (key type, subject) or why loading failed.
    detail: str
    #: Certificate notAfter as a Unix timestamp; None for files without an expiry (keys, service accounts).
    not_after: float | None = None

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.not_after is None:
            return None
        return self.not_after - (time.time() if now is None else now)


def _key_name(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name} private key"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA {key.key_size} private key"
    return f"{type(key).__name__.lstrip('_')}"


def _inspect_certfile(data: bytes) -> tuple[str, float]:
    """APNs certificate mode: a PEM holding the client certificate and its private key."""
    certs = x509.load_pem_x509_certificates(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"certificate loads but no usable unencrypted private key in the file ({e})") from None
    cert = certs[0]
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise ValueError("the private key does not belong to the certificate")
    subject = cert.subject.rfc4514_string()
    return f"certificate {subject!r} with {_key_name(key)}", cert.not_valid_after_utc.timestamp()


def _inspect_keyfile(data: bytes) -> str:
    """APNs token mode: the .p8 signing key (an EC P-256 private key); it has no expiry of its own."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"expected an EC P-256 (.p8) key for APNs token auth, got {_key_name(key)}")
    return _key_name(key)


def _inspect_service_account(data: bytes) -> str:
    """FCM v1: a Google service-account JSON with a PEM private key; Google keys do not expire by date."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object (a Google service-account key file)")
    missing = [k for k in ("type", "client_email", "private_key", "token_uri") if not isinstance(doc.get(k), str)]
    if missing:
        raise ValueError(f"service-account JSON lacks {', '.join(missing)}")
    if doc["type"] != "service_account":
        raise ValueError(f"type is {doc['type']!r}, expected 'service_account'")
    key = serialization.load_pem_private_key(doc["private_key"].encode(), password=None)
    return f"service account {doc['client_email']} ({_key_name(key)})"


def inspect_file(app_id: str, kind: str, path: str) -> CredentialInfo:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        return CredentialInfo(app_id, kind, path, False, f"cannot read: {e.strerror or e}")
    not_after = None
    try:
        if kind == "certfile":
            detail, not_after = _inspect_certfile(data)
        elif kind == "keyfile":
            detail = _inspect_keyfile(data)
        else:
            detail = _inspect_service_account(data)
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        # cryptography's messages describe the format problem, never the key bytes.
        return CredentialInfo(app_id, kind, path, False, str(e).splitlines()[0] if str(e) else type(e).__name__)
    return CredentialInfo(app_id, kind, path, True, detail, not_after)


def inspect_apps(raw_apps: Mapping[str, Any] | None) -> list[CredentialInfo]:
    """Every credential file named by the raw ``apps:`` mapping (env references expanded)."""
    out = []
    for app_id, section in (raw_apps or {}).items():
        if not isinstance(section, Mapping):
            continue
        for kind in CREDENTIAL_KEYS:
            value = section.get(kind)
            if not isinstance(value, str) or not value:
                continue
            try:
                path = expand_env(value, f"apps.{app_id}.{kind}")
            except ConfigError as e:
                out.append(CredentialInfo(str(app_id), kind, value, False, str(e)))
                continue
            out.append(inspect_file(str(app_id), kind, path))
    return out


def inspect_config(source: str) -> list[CredentialInfo]:
    """Every credential file named by the apps of the config file at `source` (already validated)."""
    from gateway.config.load import read_yaml

    raw = read_yaml(source)
    return inspect_apps(raw.get("apps") if isinstance(raw, dict) else None)


def describe(info: CredentialInfo, now: float | None = None) -> str:
    """One report line for ``check-config``."""
    head = f"apps.{info.app_id}.{info.kind}: {info.path}: "
    if not info.ok:
        return head + f"ERROR {info.detail}"
    left = info.seconds_left(now)
    if left is None:
        return head + f"OK {info.detail}; no expiry date"
    until = datetime.datetime.fromtimestamp(info.not_after or 0, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if left <= 0:
        return head + f"EXPIRED {info.detail}; expired {until} ({-left / 86400:.1f} days ago)"
    return head + f"OK {info.detail}; expires {until} (in {left / 86400:.1f} days)"


def export_expiry(infos: Iterable[CredentialInfo]) -> None:
    """Publish certificate expiry dates as metrics (seconds left are computed at scrape time)."""
    from gateway import metrics

    for info in infos:
        if info.ok and info.not_after is not None:
            metrics.CREDENTIAL_EXPIRY.set(info.app_id, info.kind, info.not_after)
