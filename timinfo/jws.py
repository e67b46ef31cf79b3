"""Compact JWS parsing and the BP256R1 / ES256 signature check.

Hand-written on top of `cryptography` because the usual JOSE libraries do not know gematik's
``BP256R1`` algorithm (ECDSA brainpoolP256r1 + SHA-256, 64-byte r||s) and we want the signing input
to be the exact bytes received, strict base64url, a pinned ``alg`` and no unknown/critical headers.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from timinfo.errors import ListRejected

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_CURVES: dict[str, type[ec.EllipticCurve]] = {"BP256R1": ec.BrainpoolP256R1, "ES256": ec.SECP256R1}
_ALLOWED_HEADERS = frozenset({"alg", "x5c", "typ", "cty", "kid", "x5t", "x5t#S256"})


@dataclass(frozen=True)
class CompactJws:
    header: dict[str, Any]
    signing_input: bytes
    payload: bytes
    signature: bytes
    #: DER certificates from ``x5c``; the first one is the signer.
    x5c: tuple[bytes, ...]

    @property
    def alg(self) -> str:
        return str(self.header["alg"])


def _b64url(part: bytes, what: str) -> bytes:
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise ListRejected("malformed", f"{what} is not base64url")
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def parse_compact(raw: bytes) -> CompactJws:
    data = raw.strip()
    parts = data.split(b".")
    if len(parts) != 3:
        raise ListRejected("malformed", f"compact JWS needs 3 parts, got {len(parts)}")
    h, p, s = parts
    try:
        header = orjson.loads(_b64url(h, "header"))
    except orjson.JSONDecodeError:
        raise ListRejected("bad_header", "header is not JSON") from None
    if not isinstance(header, dict):
        raise ListRejected("bad_header", "header is not a JSON object")
    unknown = set(header) - _ALLOWED_HEADERS
    if unknown:
        raise ListRejected("bad_header", f"unsupported header parameters: {sorted(unknown)}")
    if not isinstance(header.get("alg"), str):
        raise ListRejected("bad_header", "alg missing")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise ListRejected("missing_x5c", "x5c with the signer certificate is required")
    certs = []
    for item in x5c:
        if not isinstance(item, str):
            raise ListRejected("bad_header", "x5c entries must be strings")
        try:
            certs.append(base64.b64decode(item, validate=True))  # x5c is standard base64, not base64url
        except (binascii.Error, ValueError):
            raise ListRejected("bad_header", "x5c entry is not base64") from None
    return CompactJws(header=header, signing_input=h + b"." + p, payload=_b64url(p, "payload"),
                      signature=_b64url(s, "signature"), x5c=tuple(certs))


def verify_signature(jws: CompactJws, public_key: Any, algorithms: tuple[str, ...]) -> None:
    """Raise `ListRejected` unless `jws` is signed by `public_key` with an allowed algorithm."""
    if jws.alg not in algorithms or jws.alg not in _CURVES:
        raise ListRejected("unsupported_alg", f"alg {jws.alg!r} not allowed (allowed: {', '.join(algorithms)})")
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, _CURVES[jws.alg]):
        curve = getattr(getattr(public_key, "curve", None), "name", type(public_key).__name__)
        raise ListRejected("wrong_curve", f"alg {jws.alg} needs {_CURVES[jws.alg].name}, signer key is {curve}")
    if len(jws.signature) != 64:
        raise ListRejected("bad_signature", f"signature must be 64 bytes r||s, got {len(jws.signature)}")
    r = int.from_bytes(jws.signature[:32], "big")
    s = int.from_bytes(jws.signature[32:], "big")
    try:
        public_key.verify(utils.encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ListRejected("bad_signature", "signature does not verify") from None
