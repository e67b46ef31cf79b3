"""OCSP: pure evaluation of responses, and the end-to-end check at a fake responder through the gateway."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.x509 import ocsp as x509_ocsp

from tests.fakes.fedlist_pki import ListPki, make_ca, make_signer
from tests.fakes.ocsp import FakeOcsp, ocsp_response
from tests.fakes.userinfo import FakeUserinfo
from tests.support.gateway import GatewayProcess
from tests.support.wait import eventually
from tests.timinfo.conftest import start_gateway, stop_gateway, tim_config
from timinfo.errors import ListRejected
from timinfo.ocsp import evaluate

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
SKEW = datetime.timedelta(minutes=5)
GOOD = x509_ocsp.OCSPCertStatus.GOOD


def _eval(pki: ListPki, der: bytes) -> None:
    evaluate(der, pki.signer.cert, pki.ca.cert, NOW, DAY, SKEW)


def test_good_response_accepted(test_pki: ListPki) -> None:
    _eval(test_pki, ocsp_response(test_pki.signer.cert, test_pki.ca, GOOD))


def test_delegated_responder_accepted(test_pki: ListPki) -> None:
    responder = make_signer(test_pki.ca)
    _eval(test_pki, ocsp_response(test_pki.signer.cert, test_pki.ca, GOOD, responder=responder))


@pytest.mark.parametrize("case", ["revoked", "unknown", "foreign_responder", "stale", "future", "garbage"])
def test_bad_responses_rejected(test_pki: ListPki, case: str) -> None:
    cert, ca = test_pki.signer.cert, test_pki.ca
    der = {
        "revoked": lambda: ocsp_response(cert, ca, x509_ocsp.OCSPCertStatus.REVOKED),
        "unknown": lambda: ocsp_response(cert, ca, x509_ocsp.OCSPCertStatus.UNKNOWN),
        "foreign_responder": lambda: ocsp_response(cert, ca, GOOD, responder=make_signer(make_ca("X"))),
        "stale": lambda: ocsp_response(cert, ca, GOOD, this_update=NOW - 3 * DAY, next_update=NOW - 2 * DAY),
        "future": lambda: ocsp_response(cert, ca, GOOD, this_update=NOW + DAY, next_update=NOW + 2 * DAY),
        "garbage": lambda: b"\x30\x03\x0a\x01\x01",
    }[case]()
    with pytest.raises(ListRejected) as exc:
        _eval(test_pki, der)
    assert exc.value.reason == "ocsp_failed"


@pytest.fixture
def responder(test_pki: ListPki) -> Iterator[FakeOcsp]:
    with FakeOcsp(test_pki.ca) as fake:
        yield fake


def test_gateway_checks_ocsp(tmp_path: Path, userinfo: FakeUserinfo, test_pki: ListPki, responder: FakeOcsp) -> None:
    path = tmp_path / "list.jws"
    path.write_bytes(test_pki.sign(40))
    gw: GatewayProcess = start_gateway(tmp_path / "gw", tim_config(userinfo.url, {
        "source": "file", "path": str(path), "trust": test_pki.trust_config(), "file_poll_interval_s": 0.1,
        "ocsp": {"enabled": True, "responder_url": responder.url, "timeout_s": 2}}))
    try:
        assert gw.metric("tim_information_federation_list_version") == 40
        assert responder.calls["POST"] >= 1
        responder.status = x509_ocsp.OCSPCertStatus.REVOKED
        path.write_bytes(test_pki.sign(41))
        eventually(lambda: gw.metric("tim_information_federation_list_refresh_total", {"outcome": "ocsp_failed"}),
                   "an ocsp_failed outcome")
        assert gw.metric("tim_information_federation_list_version") == 40
    finally:
        stop_gateway(gw)
