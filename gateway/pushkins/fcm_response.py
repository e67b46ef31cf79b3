"""Classify one FCM HTTP v1 ``messages:send`` answer: deliver, reject the pushkey, fail, retry, or re-auth.

pyfcm's own mapping goes by HTTP status only (every 400 is "invalid data", every 404 "not registered",
429 and 5xx are the same error) and never reads ``error.details[].errorCode``, which is what says whether
a token is dead. Rejecting a pushkey makes the homeserver delete the pusher, so a pushkey is rejected
only on an explicit token verdict; anything ambiguous fails or retries instead.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class Action(enum.Enum):
    DELIVERED = "delivered"
    REJECT = "reject"
    FAIL = "fail"
    RETRY = "retry"
    #: Our access token was refused: refresh it once and try again, then fail (never reject).
    REAUTH = "reauth"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    #: Fixed vocabulary, safe as a metric label and in logs.
    reason: str


_DELIVERED = Verdict(Action.DELIVERED, "ok")
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_TOKEN_FIELDS = frozenset({"message.token", "token"})


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The parts of a Google API error document that decide the outcome."""

    status: str | None = None
    error_code: str | None = None
    token_field_violation: bool = False
    message: str = ""


def parse_error(body: bytes) -> ErrorBody:
    """Best effort: a proxy's HTML page or an empty body gives an empty ErrorBody."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ErrorBody()
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return ErrorBody()
    status = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    error_code = None
    token_violation = False
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == _FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            error_code = detail["errorCode"]
        elif kind == _BAD_REQUEST_TYPE and isinstance(detail.get("fieldViolations"), list):
            token_violation = token_violation or any(
                isinstance(v, dict) and v.get("field") in _TOKEN_FIELDS for v in detail["fieldViolations"])
    return ErrorBody(status, error_code, token_violation, message)


def _token_invalid(err: ErrorBody) -> bool:
    return err.token_field_violation or "registration token" in err.message.lower()


def classify(status: int, body: bytes) -> Verdict:
    if 200 <= status < 300:
        return _DELIVERED
    err = parse_error(body)
    code = err.error_code or err.status
    if code == "UNREGISTERED":
        return Verdict(Action.REJECT, "unregistered")
    if code == "SENDER_ID_MISMATCH":
        return Verdict(Action.REJECT, "sender_id_mismatch")
    if code == "INVALID_ARGUMENT" or (status == 400 and code is None):
        if _token_invalid(err):
            return Verdict(Action.REJECT, "invalid_token")
        return Verdict(Action.FAIL, "invalid_argument")
    if code == "THIRD_PARTY_AUTH_ERROR":
        # The APNs/web-push credentials uploaded to Firebase are wrong; a new access token will not help.
        return Verdict(Action.FAIL, "third_party_auth_error")
    if code == "QUOTA_EXCEEDED" or status == 429:
        return Verdict(Action.RETRY, "quota_exceeded")
    if code == "UNAVAILABLE" or status == 503:
        return Verdict(Action.RETRY, "unavailable")
    if code == "INTERNAL" or status == 500:
        return Verdict(Action.RETRY, "internal")
    if status >= 500:
        return Verdict(Action.RETRY, "server_error")
    if status == 401 or code == "UNAUTHENTICATED":
        return Verdict(Action.REAUTH, "unauthenticated")
    if status == 403 or code == "PERMISSION_DENIED":
        return Verdict(Action.REAUTH, "permission_denied")
    if status == 404:
        # Without UNREGISTERED this is a wrong project id or URL, not a dead token.
        return Verdict(Action.FAIL, "not_found")
    return Verdict(Action.FAIL, "unexpected_status")
