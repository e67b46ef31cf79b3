"""Dashboard, Prometheus rules and the metrics reference agree with the metrics the code defines.

Metric names are collected from the source of `gateway/` and `timinfo/` (every prometheus-client
definition), so metrics of modules that are not imported in this process count too; every name the
dashboard, the rules and the docs use must really exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops import creds
from tests.support.gateway import REPO, GatewayProcess

DASHBOARD = REPO / "contrib" / "grafana" / "tim-push-gateway.json"
RULES = REPO / "contrib" / "prometheus" / "tim-push-gateway.rules.yml"
DOCS = REPO / "docs" / "operations.md"

#: prometheus-client's default collectors (process_*, python_*) are always there.
BUILTIN = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
           "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"}

_DEF = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|GaugeMetricFamily|CounterMetricFamily)\(\s*"
                  r"[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']")
_NAME = re.compile(r"\b((?:tim_push|tim_information|sygnal|process|python)_[a-z0-9_]+)\b")
_SUFFIXES = {"Counter": ("_total",), "CounterMetricFamily": ("_total",), "Histogram": ("_bucket", "_sum", "_count"),
             "Summary": ("_sum", "_count"), "Info": ("_info",), "Gauge": ("",), "GaugeMetricFamily": ("",)}


def defined_metrics() -> set[str]:
    """Exported sample names of every metric defined in gateway/ and timinfo/."""
    names: set[str] = set()
    for pkg in ("gateway", "timinfo"):
        for path in (REPO / pkg).rglob("*.py"):
            for kind, name in _DEF.findall(path.read_text()):
                base = name.removesuffix("_total") if kind.startswith("Counter") else name
                names.update(base + s for s in _SUFFIXES[kind])
    return names


def known_metrics() -> set[str]:
    return defined_metrics() | BUILTIN


def metric_names(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def test_source_scan_finds_the_core_metrics() -> None:
    defined = defined_metrics()
    assert {"tim_push_outcomes_total", "tim_push_notify_time_seconds_bucket", "tim_push_ready",
            "tim_push_credential_expiry_seconds", "tim_push_build_info"} <= defined


# -- Grafana ---------------------------------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_structure() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int)
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in d["templating"]["list"]}
    cells: set[tuple[int, int]] = set()
    graphs = [p for p in d["panels"] if p["type"] != "row"]
    assert len(graphs) >= 20
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
    for p in graphs:
        assert p["type"] in ("timeseries", "stat", "bargauge", "gauge", "table"), p["type"]
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables or var.startswith("__"), f"{p['title']}: ${var} undefined"


def test_dashboard_expressions_use_existing_metrics() -> None:
    known = known_metrics()
    used: set[str] = set()
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            names = metric_names(t["expr"])
            assert names, f"{p['title']}: no metric in {t['expr']!r}"
            assert names <= known, f"{p['title']}: unknown {sorted(names - known)}"
            assert not any(n.startswith("sygnal_") for n in names)
            assert t["expr"].count("(") == t["expr"].count(")")
            used |= names
    # The must-haves are on the dashboard: rates, error ratios, quantiles, queue, list age.
    for needed in ("tim_push_outcomes_total", "tim_push_notify_time_seconds_bucket", "tim_push_dispatch_seconds_bucket",
                   "tim_push_queue_depth", "tim_push_queue_oldest_age_seconds",
                   "tim_information_federation_list_age_seconds", "tim_push_credential_expiry_seconds"):
        assert needed in used


# -- Prometheus rules ------------------------------------------------------------------------------------

def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


#: Sygnal's metric names (notes §6.1) whose meaning we keep, exported under their Sygnal names by rules.
SYGNAL_NAMES = {"sygnal_notifications_received_total", "sygnal_notifications_devices_received_total",
                "sygnal_pushgateway_status_codes_total", "sygnal_notify_time_bucket", "sygnal_requests_in_flight",
                "sygnal_inflight_request_limit_drop_total", "sygnal_per_pushkin_type_total",
                "sygnal_client_cert_expiry", "sygnal_apns_status_codes_total", "sygnal_apns_request_time_bucket",
                "sygnal_active_apns_requests", "sygnal_gcm_status_codes_total", "sygnal_gcm_request_time_bucket",
                "sygnal_active_gcm_requests"}


def test_rules_structure_and_metrics() -> None:
    known = known_metrics()
    records = set()
    for r in rules():
        assert ("record" in r) != ("alert" in r), r
        names = metric_names(r["expr"])
        assert names and names <= known, f"{r.get('record') or r.get('alert')}: unknown {sorted(names - known)}"
        if "record" in r:
            assert r["record"].startswith("sygnal_")
            records.add(r["record"])
        else:
            assert r["labels"]["severity"] in ("warning", "critical")
            assert r["annotations"]["summary"]
    assert SYGNAL_NAMES <= records


def test_alert_runbooks_exist_in_the_docs() -> None:
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", DOCS.read_text(), re.M)}
    for r in rules():
        link = r.get("annotations", {}).get("runbook")
        if link:
            path, _, anchor = link.partition("#")
            assert path == "docs/operations.md" and anchor in anchors, link
    for heading in ("apns-auth-failing", "fcm-quota", "federation-list-stale", "queue-growing"):
        assert heading in anchors


def test_docs_alert_expressions_match_the_rules() -> None:
    """Every alert in the rules file is documented with its PromQL."""
    text = DOCS.read_text()
    for r in rules():
        if "alert" in r:
            assert f"`{r['alert']}`" in text
            assert " ".join(r["expr"].split()) in " ".join(text.split()), r["alert"]


# -- metrics reference -----------------------------------------------------------------------------------

def documented_metrics() -> set[str]:
    return {m for m in re.findall(r"^\| `([a-z_:]+)`", DOCS.read_text(), re.M)}


def test_every_defined_metric_is_documented() -> None:
    documented = documented_metrics()
    bases = set()
    for n in defined_metrics():
        for suffix in ("_bucket", "_sum", "_count"):
            if n.endswith(suffix) and n.removesuffix(suffix) + "_bucket" in defined_metrics():
                n = n.removesuffix(suffix)
        bases.add(n)
    assert bases <= documented, sorted(bases - documented)


def test_documented_metrics_exist() -> None:
    known = known_metrics()
    for name in documented_metrics():
        assert name in known or name + "_bucket" in known, name


# -- live ------------------------------------------------------------------------------------------------

def test_metrics_endpoint_exports_credential_expiry(gateway_factory: Callable[..., GatewayProcess],
                                                    tmp_path: Path) -> None:
    cert = creds.apns_certfile(tmp_path / "apns.pem", days_left=40)
    gw = gateway_factory({"apps": {"org.example.ios": {"type": "tests.ops.credpushkin.CredentialPushkin",
                                                       "certfile": str(cert)},
                                   "org.example.log": {"type": "log"}}})
    left = gw.metric("tim_push_credential_expiry_seconds", {"app": "org.example.ios", "kind": "certfile"})
    assert 39.9 * 86400 < left <= 40 * 86400
    assert gw.metric("tim_push_build_info", {"version": __import__("gateway").__version__}) == 1.0
    text = gw.get("/metrics").body.decode()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    assert exported <= known_metrics() | {n for n in exported if n.endswith("_created")} | \
        {n for n in exported if n.startswith(("python_", "process_"))}


@pytest.mark.parametrize("expr,names", [
    ('sum by (app) (rate(tim_push_outcomes_total{app=~"$app"}[5m]))', {"tim_push_outcomes_total"}),
    ("time() + tim_push_credential_expiry_seconds", {"tim_push_credential_expiry_seconds"}),
])
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
