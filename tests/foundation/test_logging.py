"""Log output: one JSON object per line with the request id; access lines for every request."""

from __future__ import annotations

import orjson


def test_json_logs_one_object_per_line(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory({"apps": {"a": {"type": "log"}}, "logging": {"format": "json"}})
    gw.notify({"event_id": "$e", "devices": [{"app_id": "a", "pushkey": "pk-json-test"}]},
              headers={"X-Request-ID": "rid-json-1"})
    gw.stop()
    records = [orjson.loads(line) for line in gw.log().splitlines() if line.strip()]
    assert records, "no log lines"
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "gateway.access" and r.get("request_id") == "rid-json-1"]
    assert len(access) == 1 and access[0]["status"] == 200 and access[0]["duration_ms"] >= 0
    assert "pk-json-test" not in gw.log()


def test_access_log_can_be_disabled(gateway_factory) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory({"apps": {"a": {"type": "log"}}, "logging": {"access_log": False}})
    gw.get("/health")
    gw.stop()
    assert "gateway.access" not in gw.log()
