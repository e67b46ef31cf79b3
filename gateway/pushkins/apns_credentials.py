"""Loading APNs credentials once, at config time, with errors that name the key.

Token auth: the ``.p8`` file is read as PEM *text* (aioapns >= 4 takes the key content, not a path; passing
a path is what broke Sygnal) and checked to be a P-256 private key, so a wrong file fails start-up instead
of every push. Certificate auth: a PEM with certificate and key (optionally encrypted) or a PKCS#12 bundle
(``.p12``/``.pfx``, as gematik's gateway accepts) is converted with `cryptography` to an unencrypted PEM
kept only in memory; the ``apns-topic`` defaults to the certificate subject's UID, as Apple issues it.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12


class CredentialError(ValueError):
    pass


def load_p8(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CredentialError(f"cannot read key file: {e}") from None
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise CredentialError(f"not an unencrypted PEM private key (.p8): {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CredentialError("APNs signing keys are P-256 EC keys (ES256); this key is not")
    return text


@dataclass(frozen=True)
class ClientCert:
    #: Unencrypted PEM: certificate, chain, private key. Never logged.
    pem: bytes = field(repr=False)
    uid: str | None
    not_after: datetime.datetime


def load_client_cert(path: str, password: str | None) -> ClientCert:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise CredentialError(f"cannot read certificate file: {e}") from None
    pw = password.encode() if password is not None else None
    if b"-----BEGIN" in raw:
        try:
            certs = x509.load_pem_x509_certificates(raw)
            key = serialization.load_pem_private_key(raw, password=pw)
        except (ValueError, TypeError) as e:
            raise CredentialError(f"PEM needs the certificate and its private key (wrong password?): {e}") from None
        cert, chain = certs[0], certs[1:]
    else:
        try:
            key, cert, chain = pkcs12.load_key_and_certificates(raw, pw)
        except (ValueError, TypeError) as e:
            raise CredentialError(f"cannot open PKCS#12 file (wrong password?): {e}") from None
        if key is None or cert is None:
            raise CredentialError("the PKCS#12 file must contain the certificate and its private key")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *(chain or [])])
    uids = cert.subject.get_attributes_for_oid(x509.NameOID.USER_ID)
    return ClientCert(pem=pem, uid=str(uids[0].value) if uids else None, not_after=cert.not_valid_after_utc)


def load_into(ctx: ssl.SSLContext, cert: ClientCert) -> None:
    """`ssl` only loads certificates from files: write a private temporary file, load it, remove it."""
    fd, path = tempfile.mkstemp(prefix="apns-", suffix=".pem")
    try:
        os.write(fd, cert.pem)
        os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
