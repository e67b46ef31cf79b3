"""OpenTelemetry tracing against a running gateway: span tree, incoming trace context, exporters, no secrets."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.cli import cli, write_config
from tests.support.gateway import REPO, GatewayProcess

SCRIPTED = {"type": "tests.support.pushkins.ScriptedPushkin"}
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
PUSHKEYS = ("secret-pushkey-one", "reject-secret-pushkey-two")


def notify_two_devices(gw: GatewayProcess, headers: dict[str, str]) -> None:
    r = gw.notify({"event_id": "$ev1", "room_id": "!room:hs", "sender": "@alice:hs",
                   "content": {"body": "secret message body"},
                   "devices": [{"app_id": "org.example.a", "pushkey": k} for k in PUSHKEYS]}, headers=headers)
    assert r.status == 200
    assert r.json() == {"rejected": [PUSHKEYS[1]]}


def check_span_tree(spans: list[dict[str, Any]]) -> None:
    """notify (child of the caller's span) → 2 × dispatch → 2 × provider send, all in the caller's trace."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    assert sorted((n, len(v)) for n, v in by_name.items()) == [
        ("dispatch", 2), ("notify", 1), ("tests.support.pushkins.ScriptedPushkin send", 2)]
    assert {s["trace_id"] for s in spans} == {TRACE_ID}
    notify = by_name["notify"][0]
    assert notify["parent_id"] == PARENT_ID
    assert notify["attributes"]["http.response.status_code"] == 200
    assert notify["attributes"]["notification.devices"] == 2
    dispatch_ids = {s["span_id"] for s in by_name["dispatch"]}
    assert {s["parent_id"] for s in by_name["dispatch"]} == {notify["span_id"]}
    sends = by_name["tests.support.pushkins.ScriptedPushkin send"]
    assert {s["parent_id"] for s in sends} == dispatch_ids
    assert sorted(s["attributes"]["push.outcome"] for s in sends) == ["delivered", "rejected"]
    text = orjson.dumps(spans).decode()
    for secret in (*PUSHKEYS, "secret message body", "@alice:hs"):
        assert secret not in text


def _hex(value: str) -> str:
    return value[2:] if value and value.startswith("0x") else value


def console_spans(log: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        if line.startswith('{"name"'):
            s = orjson.loads(line)
            out.append({"name": s["name"], "trace_id": _hex(s["context"]["trace_id"]),
                        "span_id": _hex(s["context"]["span_id"]), "parent_id": _hex(s["parent_id"] or ""),
                        "attributes": s["attributes"]})
    return out


def test_console_exporter_span_tree(gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = gateway_factory({"apps": {"org.example.a": SCRIPTED}, "tracing": {"enabled": True, "exporter": "console"}})
    notify_two_devices(gw, {"traceparent": TRACEPARENT})
    assert gw.stop() == 0
    check_span_tree(console_spans(gw.log()))


def test_tracing_off_by_default(gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = gateway_factory({"apps": {"org.example.a": SCRIPTED}})
    notify_two_devices(gw, {"traceparent": TRACEPARENT})
    assert gw.stop() == 0
    assert console_spans(gw.log()) == []
    assert TRACE_ID not in gw.log()


class _Collector(http.server.BaseHTTPRequestHandler):
    """A fake OTLP/HTTP collector: decodes ExportTraceServiceRequest protobufs."""

    received: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers["Content-Length"]))
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(body)
        type(self).received.append((self.path, self.headers.get("Content-Type"), msg))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()
    server.server_close()


def test_otlp_exporter_sends_to_collector(gateway_factory: Callable[..., GatewayProcess],
                                          collector: tuple[str, list[Any]]) -> None:
    url, received = collector
    gw = gateway_factory({"apps": {"org.example.a": SCRIPTED},
                          "tracing": {"enabled": True, "exporter": "otlp", "endpoint": url,
                                      "service_name": "push-test"}})
    notify_two_devices(gw, {"traceparent": TRACEPARENT})
    assert gw.stop() == 0  # shutdown flushes the batch
    assert received, gw.log()
    spans = []
    for path, ctype, msg in received:
        assert (path, ctype) == ("/v1/traces", "application/x-protobuf")
        for rs in msg.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            assert attrs["service.name"] == "push-test"
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append({"name": s.name, "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                                  "parent_id": s.parent_span_id.hex(),
                                  "attributes": {a.key: _value(a.value) for a in s.attributes}})
    check_span_tree(spans)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture
def without_otel(tmp_path: Path) -> dict[str, str]:
    """Environment in which opentelemetry looks uninstalled: a regular package of that name earlier on the
    path hides the installed (namespace) one."""
    shadow = tmp_path / "shadow" / "opentelemetry"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    return {"PYTHONPATH": f"{tmp_path / 'shadow'}:{REPO}"}


def test_enabled_without_opentelemetry_is_a_config_error(tmp_path: Path, without_otel: dict[str, str]) -> None:
    cfg = write_config(tmp_path, {"apps": {"a": {"type": "log"}}, "tracing": {"enabled": True}})
    r = cli("check-config", str(cfg), env=without_otel)
    assert r.code == 2
    assert ("tracing.enabled: tracing needs the Python package(s) opentelemetry-sdk, "
            "opentelemetry-exporter-otlp-proto-http") in r.err
    off = write_config(tmp_path, {"apps": {"a": {"type": "log"}}, "tracing": {"enabled": False}}, "off.yaml")
    assert cli("check-config", str(off), env=without_otel).code == 0


def test_serve_refuses_to_start_when_tracing_cannot_load(tmp_path: Path, without_otel: dict[str, str]) -> None:
    cfg = write_config(tmp_path, {"apps": {"a": {"type": "log"}}, "server": {"port": 0},
                                  "tracing": {"enabled": True, "exporter": "console"}})
    r = cli("--config", str(cfg), env=without_otel)
    assert r.code == 2
    assert "tracing.enabled: tracing needs the Python package(s) opentelemetry-sdk (" in r.err
