"""Why a federation list was not accepted; `reason` is a stable metric label."""

from __future__ import annotations

#: Every reason a refresh can end with; used as the ``outcome`` label values.
REASONS = (
    "updated", "unchanged", "older_version",
    "malformed", "bad_header", "unsupported_alg", "missing_x5c", "wrong_curve", "bad_signature",
    "untrusted_chain", "cert_not_valid", "cert_policy", "ocsp_failed", "bad_payload",
    "fetch_failed", "auth_failed", "not_modified_without_list",
)


class ListRejected(Exception):
    """A candidate list failed a check; it must never replace the current list."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
