"""Trust anchors and validation of the list signer's certificate path.

Hand-written path building on `cryptography` primitives: `cryptography.x509.verification` only
implements Web PKI server/client profiles (it requires SAN/EKU and rejects brainpool curves), and the
TI PKI needs brainpoolP256r1 chains, TSL ``roots.json`` anchors with cross certificates, and checks of
gematik certificate policy and Admission role OIDs.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtensionOID

from timinfo.config import TrustConfig
from timinfo.errors import ListRejected

_ADMISSION_OID = x509.ObjectIdentifier("1.3.36.8.3.3")
MAX_DEPTH = 6


class TrustError(Exception):
    """The trust configuration itself is unusable (bad PEM, bad roots.json)."""


@dataclass(frozen=True)
class TrustStore:
    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]

    def issuers_of(self, cert: x509.Certificate) -> list[tuple[x509.Certificate, bool]]:
        """Candidate issuers as (certificate, is_anchor), anchors first."""
        out = [(c, True) for c in self.anchors if c.subject == cert.issuer]
        out += [(c, False) for c in self.intermediates if c.subject == cert.issuer]
        return out


@dataclass(frozen=True)
class Chain:
    signer: x509.Certificate
    #: Issuers from the signer's issuer up to and including the trust anchor.
    issuers: tuple[x509.Certificate, ...]

    @property
    def issuer(self) -> x509.Certificate:
        return self.issuers[0]

    def describe(self) -> str:
        names = [self.signer] + list(self.issuers)
        return " <- ".join(c.subject.rfc4514_string() for c in names)


def load_pem_file(path: str) -> list[x509.Certificate]:
    try:
        with open(path, "rb") as fh:
            certs = x509.load_pem_x509_certificates(fh.read())
    except (OSError, ValueError) as e:
        raise TrustError(f"{path}: cannot load PEM certificates: {e}") from None
    return certs


def load_tsl_roots(path: str) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """(anchors, cross certificates) from a TSL ``roots.json``."""
    try:
        with open(path, "rb") as fh:
            entries = orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError) as e:
        raise TrustError(f"{path}: cannot read roots.json: {e}") from None
    if not isinstance(entries, list):
        raise TrustError(f"{path}: roots.json must be a JSON list")
    anchors, cross = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("cert"), str):
            raise TrustError(f"{path}: entry {i} has no 'cert'")
        try:
            anchors.append(x509.load_der_x509_certificate(base64.b64decode(entry["cert"])))
            for key in ("next", "prev"):
                if entry.get(key):
                    cross.append(x509.load_der_x509_certificate(base64.b64decode(entry[key])))
        except ValueError as e:
            raise TrustError(f"{path}: entry {i}: bad certificate: {e}") from None
    return anchors, cross


def load_trust(cfg: TrustConfig) -> TrustStore:
    anchors: list[x509.Certificate] = []
    inter: list[x509.Certificate] = []
    for path in cfg.anchors:
        anchors += load_pem_file(path)
    for path in cfg.tsl_roots:
        a, c = load_tsl_roots(path)
        anchors += a
        inter += c
    for path in cfg.intermediates:
        inter += load_pem_file(path)
    if not anchors:
        raise TrustError("no trust anchors configured")
    return TrustStore(tuple(anchors), tuple(inter))


def _valid_at(cert: x509.Certificate, at: datetime.datetime, skew: datetime.timedelta) -> bool:
    return cert.not_valid_before_utc <= at + skew and at - skew <= cert.not_valid_after_utc


def _check_signer_validity(cert: x509.Certificate, at: datetime.datetime, skew: datetime.timedelta) -> None:
    if not _valid_at(cert, at, skew):
        raise ListRejected("cert_not_valid",
                           f"signer {cert.subject.rfc4514_string()} is valid {cert.not_valid_before_utc:%Y-%m-%d}"
                           f"..{cert.not_valid_after_utc:%Y-%m-%d}, not at {at:%Y-%m-%dT%H:%M:%SZ}")


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> object | None:
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        return False
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    return not isinstance(ku, x509.KeyUsage) or ku.key_cert_sign


def _role_oids(cert: x509.Certificate) -> set[str]:
    adm = _ext(cert, _ADMISSION_OID)
    out: set[str] = set()
    if isinstance(adm, x509.Admissions):
        for admission in adm:
            for info in admission.profession_infos:
                out.update(o.dotted_string for o in (info.profession_oids or ()))
    return out


def check_signer_profile(cert: x509.Certificate, policy_oids: Iterable[str], role_oids: Iterable[str]) -> None:
    """End-entity checks: not a CA, digitalSignature, all required policies, one of the required roles."""
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if isinstance(bc, x509.BasicConstraints) and bc.ca:
        raise ListRejected("cert_policy", "signer certificate is a CA certificate")
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    if not isinstance(ku, x509.KeyUsage) or not ku.digital_signature:
        raise ListRejected("cert_policy", "signer certificate lacks keyUsage digitalSignature")
    cp = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES)
    have = {p.policy_identifier.dotted_string for p in cp} if isinstance(cp, x509.CertificatePolicies) else set()
    missing = [o for o in policy_oids if o not in have]
    if missing:
        raise ListRejected("cert_policy", f"signer certificate lacks policy OID(s) {missing}")
    roles = list(role_oids)
    if roles and not _role_oids(cert) & set(roles):
        raise ListRejected("cert_policy", f"signer certificate carries none of the role OIDs {roles}")


def build_chain(signer: x509.Certificate, extra: Iterable[x509.Certificate], store: TrustStore,
                at: datetime.datetime, skew: datetime.timedelta) -> Chain:
    """Find a path from `signer` to a trust anchor where every link verifies and is valid at `at`."""
    _check_signer_validity(signer, at, skew)
    pool = TrustStore(store.anchors, store.intermediates + tuple(extra))
    last_error = "no issuer certificate found for " + signer.issuer.rfc4514_string()

    def walk(cert: x509.Certificate, path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        nonlocal last_error
        if len(path) > MAX_DEPTH:
            last_error = "path too long"
            return None
        for issuer, is_anchor in pool.issuers_of(cert):
            if any(issuer == p for p in path) or issuer == cert and not is_anchor:
                continue
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature) as e:
                last_error = f"{cert.subject.rfc4514_string()}: not signed by {issuer.subject.rfc4514_string()} ({e})"
                continue
            if not _is_ca(issuer):
                last_error = f"{issuer.subject.rfc4514_string()} is not a CA certificate"
                continue
            if not _valid_at(issuer, at, skew):
                last_error = f"{issuer.subject.rfc4514_string()} is not valid at {at:%Y-%m-%d}"
                continue
            if is_anchor:
                return path + [issuer]
            found = walk(issuer, path + [issuer])
            if found:
                return found
        return None

    issuers = walk(signer, [])
    if not issuers:
        raise ListRejected("untrusted_chain", last_error)
    return Chain(signer, tuple(issuers))
