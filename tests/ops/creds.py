"""Credential files for CLI tests: APNs-style cert+key PEMs with chosen validity, .p8 keys, service accounts."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def apns_certfile(path: Path, *, days_left: float, matching_key: bool = True) -> Path:
    """A self-signed client certificate plus its key in one PEM (Sygnal's ``certfile``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    not_after = now + datetime.timedelta(days=days_left)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Apple Push Services: org.example.app")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after) - datetime.timedelta(days=365)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    pem_key = _pem_key(key if matching_key else ec.generate_private_key(ec.SECP256R1()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + pem_key)
    return path


def apns_p8(path: Path, *, rsa_instead: bool = False) -> Path:
    key = rsa.generate_private_key(65537, 2048) if rsa_instead else ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(_pem_key(key))
    return path


def service_account(path: Path, **overrides: object) -> Path:
    doc = {
        "type": "service_account",
        "project_id": "example-project",
        "private_key_id": "0123456789abcdef",
        "private_key": _pem_key(rsa.generate_private_key(65537, 2048)).decode(),
        "client_email": "push@example-project.iam.gserviceaccount.com",
        "token_uri": "https://127.0.0.1:1/token",
    }
    doc.update(overrides)
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    return path
