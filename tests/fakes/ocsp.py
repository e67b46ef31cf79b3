"""Fake OCSP responder: answers every request for the configured issuer with a signed status."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from tests.fakes.fedlist_pki import Issued
from tests.fakes.httpfake import FakeServer


def ocsp_response(cert: x509.Certificate, issuer: Issued, status: ocsp.OCSPCertStatus, *,
                  responder: Issued | None = None, this_update: datetime.datetime | None = None,
                  next_update: datetime.datetime | None = None) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    signer = responder or issuer
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer.cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update or now - datetime.timedelta(minutes=1),
        next_update=next_update or now + datetime.timedelta(hours=12),
        revocation_time=now - datetime.timedelta(days=1) if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if responder is not None:
        b = b.certificates([responder.cert])
    return b.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class FakeOcsp(FakeServer):
    def __init__(self, issuer: Issued) -> None:
        self.issuer = issuer
        self.status = ocsp.OCSPCertStatus.GOOD
        self.calls: Counter[str] = Counter()
        super().__init__(self._handle)

    def _handle(self, req: Any) -> tuple[int, dict[str, str], bytes]:
        self.calls[req.command] += 1
        try:
            parsed = ocsp.load_der_ocsp_request(req.body)
        except ValueError:
            return 400, {}, b""
        return 200, {"Content-Type": "application/ocsp-response"}, _respond(parsed.serial_number, self.issuer,
                                                                           self.status)


def _respond(serial: int, issuer: Issued, status: ocsp.OCSPCertStatus) -> bytes:
    """A response for `serial`: the CertID only needs serial, issuer name and issuer key, so a stub
    certificate carrying that serial stands in for the real one."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    stub = (x509.CertificateBuilder().subject_name(issuer.cert.subject).issuer_name(issuer.cert.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .sign(issuer.key, hashes.SHA256()))
    return ocsp_response(stub, issuer, status)
