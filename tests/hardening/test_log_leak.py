"""The gateways' complete logs (DEBUG level) after every hostile test: no secrets, no forged lines, no 5xx.

Runs last in this package (see conftest). It adds its own battery of secrets through every path that
might log them — delivered, rejected and invalid notifications, 413 bodies, good/bad/malformed bearer
tokens, tokens in query strings — then stops both gateways and greps their whole output.
"""

from __future__ import annotations

import re

import orjson

from tests.fakes.userinfo import FakeUserinfo
from tests.hardening.conftest import GOOD_TOKEN, MAX_BODY, Secrets
from tests.hardening.rawhttp import exchange, http_request
from tests.support.gateway import NOTIFY, GatewayProcess, request

FORGED = "2099-01-01 00:00:00,000 CRITICAL forged"


def test_logged_values_cannot_forge_log_lines(gw: GatewayProcess) -> None:
    # The log pushkin writes app_id, event_id and room_id into its line.
    r = gw.notify({"event_id": f"$ev\n{FORGED} event", "room_id": f"!r\r\n{FORGED} room\x1b[2K",
                   "devices": [{"app_id": f"com.example.glob.\n{FORGED} app", "pushkey": "forge-key"}]})
    assert r.status == 200
    lines = gw.log().splitlines()
    assert not [line for line in lines if line.startswith("2099")], "a logged value started a new log line"
    assert not [line for line in lines if "\x1b" in line]
    assert any("\\n2099-01-01" in line and "gateway.pushkins.log" in line for line in lines)


def _battery(gw: GatewayProcess, secrets: Secrets, userinfo: FakeUserinfo) -> None:
    key = secrets.add("SECRET-PUSHKEY-final-delivered")
    rejected = secrets.add("SECRET-PUSHKEY-final-rejected")
    content = secrets.add("SECRET-CONTENT-final-body")
    name = secrets.add("SECRET-CONTENT-final-display-name")
    note = {"event_id": "$final", "room_id": "!r:hs", "sender_display_name": name, "room_name": name,
            "content": {"body": content, "msgtype": "m.text"}, "counts": {"unread": 1},
            "devices": [{"app_id": "com.example.log", "pushkey": key, "data": {"secret": content}},
                        {"app_id": "org.unknown", "pushkey": rejected}]}
    r = gw.notify(note)
    assert r.status == 200 and r.json() == {"rejected": [rejected]}
    # Invalid bodies that carry secrets: the errors name fields, never values.
    for bad in ({"notification": {"devices": [{"app_id": "com.example.log", "pushkey": key, "pushkey_ts": content}]}},
                {"notification": {"content": content, "devices": [{"app_id": "a", "pushkey": key}]}},
                {"notification": {"prio": content, "devices": [{"app_id": "a", "pushkey": key}]}}):
        r = gw.post(NOTIFY, bad)
        assert r.status == 400 and content not in r.body.decode() and key not in r.body.decode()
    assert gw.post(NOTIFY, orjson.dumps(note)[:-5]).status == 400
    assert gw.post(NOTIFY, orjson.dumps(note) + b" " * MAX_BODY).status == 413
    # Bearer tokens: good (asked once, then cached), unknown, malformed, and in the query string.
    unknown = secrets.add("SECRET-TOKEN-final-unknown")
    fresh = secrets.add("SECRET-TOKEN-final-fresh")
    userinfo.tokens[fresh] = "@carol:hs.example"
    path = "/tim-information/v1/server/findByIk?ikNumber=104940005"
    for token, status in ((fresh, 200), (fresh, 200), (unknown, 401), (GOOD_TOKEN, 200)):
        assert request(gw.port, "GET", path, None, {"Authorization": f"Bearer {token}"}).status == status
    malformed = secrets.add("SECRET-TOKEN-final-malformed\u00e9")
    answer = exchange(gw.port, http_request("GET", path, None, {"Authorization": "Bearer " + malformed}))
    assert answer is not None and answer.status == 401
    in_query = secrets.add("SECRET-TOKEN-final-in-query")
    assert request(gw.port, "GET", f"{path}&access_token={in_query}").status == 401
    assert request(gw.port, "GET", f"/health?access_token={in_query}").status == 200


def _server_errors(gw: GatewayProcess) -> dict[str, float]:
    return {f"{labels}": value for labels, value in gw.samples("tim_push_http_requests_total")
            if labels.get("code", "").startswith("5") and value}


def test_no_secret_reaches_the_logs(gw: GatewayProcess, gw_short: GatewayProcess, secrets: Secrets,
                                    userinfo: FakeUserinfo) -> None:
    for g in (gw, gw_short):
        _battery(g, secrets, userinfo)
        assert _server_errors(g) == {}, "a hostile input produced a 5xx"
        assert g.get("/health").status == 200
    for g in (gw, gw_short):
        assert g.stop() == 0
        text = g.log()
        assert len(text) > 1000  # the logs are really there (access lines at least)
        leaked = sorted(s[:60] for s in secrets.values if len(s) >= 8 and s in text)
        assert not leaked, f"secrets in the log of gateway {g.port}: {leaked}"
        assert not re.search(r"SECRET-(PUSHKEY|TOKEN|CONTENT)", text)
        assert "Traceback" not in text and "Unhandled" not in text
