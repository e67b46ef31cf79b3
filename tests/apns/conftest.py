from __future__ import annotations

import pytest

from tests.fakes.apns import FakeAPNs, TokenAuth, make_p8
from tests.support.tls import make_ca

TOPIC = "org.example.tim"
KEY_ID = "ABC123DEFG"
TEAM_ID = "TEAM456789"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    p8, public = make_p8(d)
    return ca, d, p8, public


@pytest.fixture(scope="module")
def fake_apns(pki):
    ca, d, _p8, public = pki
    fake = FakeAPNs(ca, d, topic=TOPIC, token_auth=TokenAuth(public, KEY_ID, TEAM_ID))
    with fake:
        yield fake


@pytest.fixture
def fake(fake_apns):
    fake_apns.clear()
    return fake_apns
