"""TiMessengerInformation with real Matrix OpenID tokens: Synapse issues them, the gateway checks them at
Synapse's ``/_matrix/federation/v1/openid/userinfo`` and answers from the signed federation list."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Scene
from tests.e2e.homeserver import MatrixUser
from tests.support.gateway import GatewayProcess, Response

#: From the real, signed v1650 list the gateway serves.
IK = "104940005"
INSURER = "epa-proxy.bar-02-ma1.tim-ru.mg2.mdb.osc.live"
NOT_INSURER = "one-bob.ujumbelabs.com"


def tim_get(gateway: GatewayProcess, path: str, token: str) -> Response:
    return gateway.get(f"/tim-information{path}", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def user(scene: Scene) -> MatrixUser:
    return scene.receiver


def test_openid_token_issued_by_synapse_is_accepted(user: MatrixUser, gateway: GatewayProcess) -> None:
    grant = user.openid_token()
    assert grant["token_type"] == "Bearer" and grant["matrix_server_name"] == user.hs.server_name
    token = grant["access_token"]

    r = tim_get(gateway, f"/v1/server/findByIk?ikNumber={IK}", token)
    assert (r.status, r.json()) == (200, {"serverName": INSURER})
    r = tim_get(gateway, f"/v1/server/isInsurance?serverName={INSURER}", token)
    assert (r.status, r.json()) == (200, {"isInsurance": True})
    r = tim_get(gateway, f"/v1/server/isInsurance?serverName={NOT_INSURER}", token)
    assert (r.status, r.json()) == (200, {"isInsurance": False})


@pytest.mark.parametrize("path", [f"/v1/server/findByIk?ikNumber={IK}",
                                  f"/v1/server/isInsurance?serverName={INSURER}"])
def test_made_up_token_is_refused(user: MatrixUser, gateway: GatewayProcess, path: str) -> None:
    user.openid_token()  # a real token exists for this user; the made-up one must still fail
    r = tim_get(gateway, path, "made-up-token-0123456789")
    assert r.status == 401
    assert set(r.json()) == {"errorCode", "errorMessage"}


def test_client_access_token_is_not_an_openid_token(user: MatrixUser, gateway: GatewayProcess) -> None:
    r = tim_get(gateway, f"/v1/server/findByIk?ikNumber={IK}", user.token)
    assert r.status == 401
