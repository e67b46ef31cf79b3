"""The synchronous part of accepting a federation list: JWS, signer certificate, chain, payload, index.

Order: parse the JWS, load the signer from ``x5c[0]``, check the signature with the signer's key, check
the signer's profile, build the path to a trust anchor (which also checks validity) and finally build
the index. Everything is CPU-only so it can run in a worker thread; the optional OCSP check (network)
is done afterwards by the caller.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509

from timinfo.config import TrustConfig
from timinfo.errors import ListRejected
from timinfo.fedlist import Index, build_index
from timinfo.jws import parse_compact, verify_signature
from timinfo.pki import Chain, TrustStore, build_chain, check_signer_profile


@dataclass(frozen=True)
class VerifiedList:
    raw: bytes
    index: Index
    chain: Chain

    @property
    def version(self) -> int:
        return self.index.version


def verify_list(raw: bytes, store: TrustStore, cfg: TrustConfig, at: datetime.datetime | None = None) -> VerifiedList:
    """Return the verified list or raise `ListRejected`; `at` defaults to now (certificate validity time)."""
    at = at or datetime.datetime.now(datetime.timezone.utc)
    jws = parse_compact(raw)
    try:
        signer = x509.load_der_x509_certificate(jws.x5c[0])
        extra = [x509.load_der_x509_certificate(der) for der in jws.x5c[1:]]
    except ValueError as e:
        raise ListRejected("bad_header", f"x5c certificate is not DER: {e}") from None
    # Checks of the signer alone first; path building (signature checks per link) after them.
    verify_signature(jws, signer.public_key(), cfg.algorithms)
    check_signer_profile(signer, cfg.policy_oids, cfg.role_oids)
    chain = build_chain(signer, extra, store, at, datetime.timedelta(seconds=cfg.clock_skew_s))
    return VerifiedList(raw=raw, index=build_index(jws.payload), chain=chain)
