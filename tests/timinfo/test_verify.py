"""Verification of federation lists: the real gematik RU samples and targeted failures from a test PKI."""

from __future__ import annotations

import datetime

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.fedlist_pki import ListPki, b64url, b64url_decode, make_ca, make_payload, make_signer, sign_jws
from tests.timinfo.conftest import KOMP_CA50, ROOTS, V956, V1650
from timinfo.config import TrustConfig
from timinfo.errors import ListRejected
from timinfo.pki import load_trust
from timinfo.verify import verify_list

REAL = TrustConfig(tsl_roots=(str(ROOTS),), intermediates=(str(KOMP_CA50),))


def _verify(raw: bytes, cfg: TrustConfig = REAL, at: datetime.datetime | None = None):
    return verify_list(raw, load_trust(cfg), cfg, at)


def _reason(raw: bytes, cfg: TrustConfig = REAL, at: datetime.datetime | None = None) -> str:
    with pytest.raises(ListRejected) as exc:
        _verify(raw, cfg, at)
    return exc.value.reason


def test_real_v1650_verifies_and_chains_to_rca4() -> None:
    vl = _verify(V1650.read_bytes())
    assert vl.version == 1650
    assert vl.index.find_by_ik("104940005") == "epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live"
    assert vl.index.find_by_ik("101575519") == "tim-test-evt.tk-online.net"
    assert vl.index.is_insurance("cirosec.de") is True
    assert vl.index.is_insurance("tim.test.gematik.de") is False
    assert vl.index.is_insurance("unknown.example") is None
    assert vl.index.stats.entries == 277 and vl.index.stats.insurers == 18
    assert vl.index.stats.invalid_iks == 3  # the sample violates the check digit rule three times
    assert [c.subject.rfc4514_string().split(",")[0] for c in vl.chain.issuers] == [
        "CN=GEM.KOMP-CA50 TEST-ONLY", "CN=GEM.RCA4 TEST-ONLY"]
    assert "VZD-FHIR-FList-Signer" in vl.chain.signer.subject.rfc4514_string()


def test_real_v956_verifies_with_duplicates_and_no_iks() -> None:
    vl = _verify(V956.read_bytes())
    assert vl.version == 956
    assert vl.index.stats.duplicate_domains == 2
    assert vl.index.stats.iks == 0
    assert vl.index.is_insurance("cirosec.de") is True


def test_real_list_without_intermediate_is_untrusted() -> None:
    assert _reason(V1650.read_bytes(), TrustConfig(tsl_roots=(str(ROOTS),))) == "untrusted_chain"


def test_real_list_pinned_komp_ca_as_anchor() -> None:
    assert _verify(V1650.read_bytes(), TrustConfig(anchors=(str(KOMP_CA50),))).version == 1650


def test_real_signer_outside_validity_is_rejected() -> None:
    later = datetime.datetime(2028, 6, 1, tzinfo=datetime.timezone.utc)
    assert _reason(V1650.read_bytes(), at=later) == "cert_not_valid"


def test_tampered_payload() -> None:
    h, p, s = V1650.read_bytes().strip().split(b".")
    doc = orjson.loads(b64url_decode(p))
    doc["domainList"][0]["isInsurance"] = not doc["domainList"][0]["isInsurance"]
    assert _reason(b".".join([h, b64url(orjson.dumps(doc)), s])) == "bad_signature"


def test_tampered_signature() -> None:
    h, p, s = V1650.read_bytes().strip().split(b".")
    sig = bytearray(b64url_decode(s))
    sig[10] ^= 0x01
    assert _reason(b".".join([h, p, b64url(bytes(sig))])) == "bad_signature"


def test_swapped_header_alg() -> None:
    h, p, s = V1650.read_bytes().strip().split(b".")
    header = orjson.loads(b64url_decode(h))
    header["alg"] = "ES256"
    assert _reason(b".".join([b64url(orjson.dumps(header)), p, s])) == "unsupported_alg"


@pytest.mark.parametrize("raw,reason", [
    (b"", "malformed"), (b"a.b", "malformed"), (b"a.b.c.d", "malformed"), (b"!!.e30.AA", "malformed"),
    (b64url(b"[1]") + b".e30.AA", "bad_header"), (b64url(b"{notjson") + b".e30.AA", "bad_header"),
])
def test_malformed(raw: bytes, reason: str) -> None:
    assert _reason(raw) == reason


def _cfg(pki: ListPki) -> TrustConfig:
    return TrustConfig(anchors=(str(pki.root_pem),), intermediates=(str(pki.ca_pem),))


def test_generated_list_verifies(test_pki: ListPki) -> None:
    vl = _verify(test_pki.sign(7), _cfg(test_pki))
    assert vl.version == 7 and vl.index.find_by_ik("168140346") == "pkv.example.de"


def test_missing_x5c(test_pki: ListPki) -> None:
    assert _reason(test_pki.sign(7, x5c=[]), _cfg(test_pki)) == "missing_x5c"


def test_wrong_curve(test_pki: ListPki) -> None:
    p256 = make_signer(test_pki.ca, curve=ec.SECP256R1())
    assert _reason(test_pki.sign(7, signer=p256), _cfg(test_pki)) == "wrong_curve"


def test_foreign_ca(test_pki: ListPki) -> None:
    foreign_root = make_ca("FOREIGN.RCA")
    foreign_ca = make_ca("TEST.KOMP-CA", issuer=foreign_root)  # same name as the trusted CA, other key
    signer = make_signer(foreign_ca)
    assert _reason(test_pki.sign(7, signer=signer), _cfg(test_pki)) == "untrusted_chain"


def test_expired_signer(test_pki: ListPki) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = make_signer(test_pki.ca, not_before=now - datetime.timedelta(days=400),
                          not_after=now - datetime.timedelta(days=30))
    assert _reason(test_pki.sign(7, signer=expired), _cfg(test_pki)) == "cert_not_valid"


def test_not_yet_valid_signer(test_pki: ListPki) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    future = make_signer(test_pki.ca, not_before=now + datetime.timedelta(days=2))
    assert _reason(test_pki.sign(7, signer=future), _cfg(test_pki)) == "cert_not_valid"


def test_missing_policy_oid(test_pki: ListPki) -> None:
    signer = make_signer(test_pki.ca, policies=("1.2.276.0.76.4.163",))
    assert _reason(test_pki.sign(7, signer=signer), _cfg(test_pki)) == "cert_policy"


def test_missing_role_oid(test_pki: ListPki) -> None:
    signer = make_signer(test_pki.ca, roles=("1.2.276.0.76.4.294",))
    assert _reason(test_pki.sign(7, signer=signer), _cfg(test_pki)) == "cert_policy"


def test_ca_certificate_as_signer(test_pki: ListPki) -> None:
    assert _reason(test_pki.sign(7, signer=test_pki.ca), _cfg(test_pki)) == "cert_policy"


def test_critical_header_rejected(test_pki: ListPki) -> None:
    assert _reason(test_pki.sign(7, extra_header={"crit": ["exp"]}), _cfg(test_pki)) == "bad_header"


def test_es256_only_when_allowed(test_pki: ListPki) -> None:
    p256_ca = make_ca("P256.CA", issuer=test_pki.root)
    signer = make_signer(p256_ca, curve=ec.SECP256R1())
    raw = sign_jws(make_payload(9, []), signer, alg="ES256", x5c=[signer.cert, p256_ca.cert])
    assert _reason(raw, _cfg(test_pki)) == "unsupported_alg"
    cfg = TrustConfig(anchors=(str(test_pki.root_pem),), algorithms=("BP256R1", "ES256"))
    assert _verify(raw, cfg).version == 9  # intermediate taken from x5c


@pytest.mark.parametrize("payload", [b"[]", b'{"version": "1", "domainList": []}', b'{"version": 1}',
                                     b'{"version": true, "domainList": []}', b"not json"])
def test_bad_payload(test_pki: ListPki, payload: bytes) -> None:
    assert _reason(sign_jws(payload, test_pki.signer), _cfg(test_pki)) == "bad_payload"
