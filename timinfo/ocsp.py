"""Optional OCSP status check of the list signer (gematik's SignCheck: update only if status is good).

`cryptography` builds the request and parses the response; the response signature (by the issuing CA
or by a responder certificate the CA issued directly) and its freshness are checked here. The
responder's keyUsage is deliberately not enforced: gematik's TI OCSP signer certificates lack
digitalSignature. The TI test responders are TI-internal, hence the configurable responder URL.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from timinfo.config import OcspConfig
from timinfo.errors import ListRejected
from timinfo.http import FetchError, fetch
from timinfo.pki import Chain

log = logging.getLogger(__name__)


def responder_url(cert: x509.Certificate, cfg: OcspConfig) -> str | None:
    if cfg.responder_url:
        return cfg.responder_url
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                desc.access_location, x509.UniformResourceIdentifier):
            return desc.access_location.value
    return None


def _verify_sig(cert: x509.Certificate, resp: ocsp.OCSPResponse) -> bool:
    key = cert.public_key()
    algo = resp.signature_hash_algorithm
    if algo is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(algo))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), algo)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _key_hash(issuer: x509.Certificate, single: ocsp.OCSPSingleResponse) -> bytes:
    """The CertID issuerKeyHash: hash of the issuer's subjectPublicKey BIT STRING contents."""
    key = issuer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    elif isinstance(key, rsa.RSAPublicKey):
        bits = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        return b""
    digest = hashes.Hash(single.hash_algorithm)
    digest.update(bits)
    return digest.finalize()


def _responder(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    if _verify_sig(issuer, resp):
        return issuer
    for cert in resp.certificates:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if _verify_sig(cert, resp):
            return cert
    return None


def evaluate(der: bytes, signer: x509.Certificate, issuer: x509.Certificate, at: datetime.datetime,
             max_age: datetime.timedelta, skew: datetime.timedelta) -> None:
    """Raise `ListRejected` unless `der` is a fresh, correctly signed 'good' response for `signer`."""
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError as e:
        raise ListRejected("ocsp_failed", f"unparseable OCSP response: {e}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ListRejected("ocsp_failed", f"OCSP responder status {resp.response_status.name}")
    if _responder(resp, issuer) is None:
        raise ListRejected("ocsp_failed", "OCSP response is not signed by the issuer or its responder")
    for single in resp.responses:
        if single.serial_number != signer.serial_number or single.issuer_key_hash != _key_hash(issuer, single):
            continue
        if single.certificate_status != ocsp.OCSPCertStatus.GOOD:
            raise ListRejected("ocsp_failed", f"signer certificate status is {single.certificate_status.name}")
        if single.this_update_utc > at + skew:
            raise ListRejected("ocsp_failed", "OCSP response is from the future")
        limit = single.next_update_utc or single.this_update_utc + max_age
        if limit + skew < at:
            raise ListRejected("ocsp_failed", "OCSP response is stale")
        return
    raise ListRejected("ocsp_failed", "OCSP response does not cover the signer certificate")


async def check(chain: Chain, cfg: OcspConfig, reactor: Any, client: Any, skew_s: float) -> None:
    url = responder_url(chain.signer, cfg)
    if not url:
        raise ListRejected("ocsp_failed", "no OCSP responder configured and none in the signer's AIA")
    req = ocsp.OCSPRequestBuilder().add_certificate(chain.signer, chain.issuer, hashes.SHA1()).build()
    try:
        resp = await fetch(client, reactor, "POST", url, data=req.public_bytes(serialization.Encoding.DER),
                           headers={"Content-Type": "application/ocsp-request"}, timeout=cfg.timeout_s,
                           max_bytes=256 * 1024)
    except FetchError as e:
        if cfg.allow_unreachable:
            log.warning("OCSP responder unreachable, accepting list as configured (allow_unreachable): %s", e)
            return
        raise ListRejected("ocsp_failed", f"OCSP responder unreachable: {e}") from None
    if resp.status != 200:
        if cfg.allow_unreachable and resp.status >= 500:
            log.warning("OCSP responder answered HTTP %d; accepting list as configured", resp.status)
            return
        raise ListRejected("ocsp_failed", f"OCSP responder answered HTTP {resp.status}")
    evaluate(resp.body, chain.signer, chain.issuer, datetime.datetime.now(datetime.timezone.utc),
             datetime.timedelta(seconds=cfg.max_age_s), datetime.timedelta(seconds=skew_s))
