"""A throw-away TI-like PKI (brainpoolP256r1 root -> Komponenten-CA -> list signer) and list signing.

Lets tests produce federation lists that verify, and lists that fail exactly one check (expired or
foreign signer, wrong curve, missing policy), without touching the real gematik test material.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

POLICY_FD_SIG = "1.2.276.0.76.4.203"
POLICY_GEMATIK = "1.2.276.0.76.4.163"
ROLE_VZD_TI = "1.2.276.0.76.4.171"

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test PKI NOT-VALID")])


def _ca_exts(b: x509.CertificateBuilder) -> x509.CertificateBuilder:
    return (b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True))


@dataclass
class Issued:
    cert: x509.Certificate
    key: Any

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_ca(cn: str, issuer: Issued | None = None, curve: ec.EllipticCurve | None = None,
            days: int = 3650) -> Issued:
    key = ec.generate_private_key(curve or ec.BrainpoolP256R1())
    b = (x509.CertificateBuilder().subject_name(_name(cn))
         .issuer_name(issuer.cert.subject if issuer else _name(cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(_NOW - datetime.timedelta(days=1)).not_valid_after(_NOW + datetime.timedelta(days=days)))
    cert = _ca_exts(b).sign(issuer.key if issuer else key, hashes.SHA256())
    return Issued(cert, key)


def make_signer(ca: Issued, *, curve: ec.EllipticCurve | None = None, not_before: datetime.datetime | None = None,
                not_after: datetime.datetime | None = None, policies: tuple[str, ...] = (POLICY_GEMATIK, POLICY_FD_SIG),
                roles: tuple[str, ...] = (ROLE_VZD_TI,), ocsp_url: str | None = None) -> Issued:
    key = ec.generate_private_key(curve or ec.BrainpoolP256R1())
    b = (x509.CertificateBuilder().subject_name(_name("VZD-FHIR-FList-Signer"))
         .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or _NOW - datetime.timedelta(days=1))
         .not_valid_after(not_after or _NOW + datetime.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
    if policies:
        b = b.add_extension(x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]), critical=False)
    if roles:
        b = b.add_extension(x509.Admissions(None, [x509.Admission(None, None, [x509.ProfessionInfo(
            None, ["Verzeichnisdienst-TI"], [x509.ObjectIdentifier(r) for r in roles], None, None)])]), critical=False)
    if ocsp_url:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    return Issued(b.sign(ca.key, hashes.SHA256()), key)


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def sign_jws(payload: bytes, signer: Issued, *, alg: str = "BP256R1", x5c: list[x509.Certificate] | None = None,
             extra_header: dict[str, Any] | None = None) -> bytes:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    chain = [signer.cert] if x5c is None else x5c
    if chain:
        header["x5c"] = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    header.update(extra_header or {})
    signing_input = b64url(orjson.dumps(header)) + b"." + b64url(payload)
    der = signer.key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return signing_input + b"." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def make_payload(version: int, entries: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"version": version, "domainList": entries})


def ik_with_check(first8: str) -> str:
    from timinfo.ik import check_digit

    return first8 + str(check_digit(first8))


def generated_entries(n: int, insurer_every: int = 3) -> list[dict[str, Any]]:
    """`n` domains; every `insurer_every`-th is an insurer with one valid IK (prefix 10)."""
    out = []
    for i in range(n):
        insurer = i % insurer_every == 0
        entry: dict[str, Any] = {"domain": f"tim{i}.example-kk.de" if insurer else f"hs{i}.example.org",
                                 "telematikID": f"9-{i}", "timAnbieter": None, "isInsurance": insurer}
        if insurer:
            entry["ik"] = [ik_with_check(f"10{i:06d}")]
        out.append(entry)
    return out


@dataclass
class ListPki:
    root: Issued
    ca: Issued
    signer: Issued
    dir: Path

    @property
    def root_pem(self) -> Path:
        return self.dir / "root.pem"

    @property
    def ca_pem(self) -> Path:
        return self.dir / "ca.pem"

    def trust_config(self) -> dict[str, Any]:
        return {"anchors": [str(self.root_pem)], "intermediates": [str(self.ca_pem)]}

    def sign(self, version: int, entries: list[dict[str, Any]] | None = None, **kw: Any) -> bytes:
        signer = kw.pop("signer", self.signer)
        return sign_jws(make_payload(version, entries if entries is not None else default_entries()), signer, **kw)


def default_entries() -> list[dict[str, Any]]:
    return [
        {"domain": "kk.example.de", "telematikID": "8-01", "timAnbieter": "ORG-1", "isInsurance": True,
         "ik": ["104940005"]},
        {"domain": "pkv.example.de", "telematikID": "8-02", "isInsurance": True, "iks": ["168140346"]},
        {"domain": "praxis.example.org", "telematikID": "1-01", "timAnbieter": None, "isInsurance": False},
    ]


def make_list_pki(directory: Path) -> ListPki:
    directory.mkdir(parents=True, exist_ok=True)
    root = make_ca("TEST.RCA")
    ca = make_ca("TEST.KOMP-CA", issuer=root)
    signer = make_signer(ca)
    pki = ListPki(root, ca, signer, directory)
    pki.root_pem.write_bytes(root.pem())
    pki.ca_pem.write_bytes(ca.pem())
    return pki
