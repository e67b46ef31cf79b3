"""The FCM v1 answer → action table (pure), using the fake's error documents."""

from __future__ import annotations

import pytest

from gateway.pushkins.fcm_response import Action, classify
from tests.fakes.fcm import error_body


@pytest.mark.parametrize("status,code,violation,message,action,reason", [
    (404, "UNREGISTERED", False, "", Action.REJECT, "unregistered"),
    (403, "SENDER_ID_MISMATCH", False, "", Action.REJECT, "sender_id_mismatch"),
    (400, "INVALID_ARGUMENT", True, "", Action.REJECT, "invalid_token"),
    (400, "INVALID_ARGUMENT", False, "The registration token is not a valid FCM registration token",
     Action.REJECT, "invalid_token"),
    (400, "INVALID_ARGUMENT", False, "Invalid value at 'message.data[0].value'", Action.FAIL, "invalid_argument"),
    (401, "THIRD_PARTY_AUTH_ERROR", False, "", Action.FAIL, "third_party_auth_error"),
    (429, "QUOTA_EXCEEDED", False, "", Action.RETRY, "quota_exceeded"),
    (503, "UNAVAILABLE", False, "", Action.RETRY, "unavailable"),
    (500, "INTERNAL", False, "", Action.RETRY, "internal"),
    (502, None, False, "", Action.RETRY, "server_error"),
    (401, None, False, "", Action.REAUTH, "unauthenticated"),
    (403, None, False, "", Action.REAUTH, "permission_denied"),
    (404, None, False, "", Action.FAIL, "not_found"),
    (302, None, False, "", Action.FAIL, "unexpected_status"),
])
def test_error_table(status: int, code: str | None, violation: bool, message: str, action: Action,
                     reason: str) -> None:
    verdict = classify(status, error_body(status, code, message, violation))
    assert (verdict.action, verdict.reason) == (action, reason)


@pytest.mark.parametrize("body", [b"", b"<html>bad gateway</html>", b"[]", b'{"error": "x"}', b"\xff"])
def test_unparseable_bodies_never_reject(body: bytes) -> None:
    assert classify(404, body).action is Action.FAIL
    assert classify(400, body).action is Action.FAIL
    assert classify(503, body).action is Action.RETRY
    assert classify(200, body).action is Action.DELIVERED
