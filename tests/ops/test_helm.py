"""The Helm chart, rendered (tests/ops/gotemplate.py) and checked as Kubernetes objects.

The rendered ConfigMap's config.yaml goes through the gateway's own config loader, so a chart default
the gateway would reject fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config.load import parse_config
from tests.ops.gotemplate import TemplateError, parse, render_chart
from tests.support.gateway import REPO

CHART = REPO / "deploy" / "helm" / "tim-push-gateway"


def objects(overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """{kind: object} of one rendering; every template renders to at most one valid YAML document."""
    out: dict[str, dict[str, Any]] = {}
    for name, text in render_chart(CHART, overrides).items():
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        assert len(docs) <= 1, name
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), name
            assert doc["kind"] not in out
            out[doc["kind"]] = doc
    return out


def container(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = objs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_default_render_has_the_expected_objects() -> None:
    assert sorted(objects()) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                                 "Secret", "Service", "ServiceAccount"]


def test_configmap_is_a_valid_gateway_config() -> None:
    objs = objects()
    cfg = parse_config(yaml.safe_load(objs["ConfigMap"]["data"]["config.yaml"]))
    assert cfg.server.bind == ("0.0.0.0",)
    c = container(objs)
    assert c["ports"] == [{"name": "http", "containerPort": cfg.server.port, "protocol": "TCP"}]
    spec = objs["Deployment"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > cfg.server.shutdown_grace_s


def test_probes_use_health_and_ready() -> None:
    c = container(objects())
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_security_context_is_hardened() -> None:
    objs = objects()
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container(objs)["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                  "capabilities": {"drop": ["ALL"]}}


def test_config_and_secrets_are_mounted_read_only() -> None:
    objs = objects()
    c = container(objs)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/config", "readOnly": True}
    assert mounts["secrets"] == {"name": "secrets", "mountPath": "/secrets", "readOnly": True}
    volumes = {v["name"]: v for v in objs["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == objs["ConfigMap"]["metadata"]["name"]
    assert volumes["secrets"]["secret"]["secretName"] == objs["Secret"]["metadata"]["name"]
    assert {"name": "TIM_PUSH_GATEWAY_CONFIG", "value": "/config/config.yaml"} in c["env"]
    assert c["args"] == ["serve", "--config", "/config/config.yaml"]


def test_selectors_agree() -> None:
    objs = objects()
    pod_labels = objs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert objs["Service"]["spec"]["selector"] == selector
    assert objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    target = objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", objs["Deployment"]["metadata"]["name"])
    assert objs["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_hpa_owns_replicas() -> None:
    with_hpa = objects()
    assert "replicas" not in with_hpa["Deployment"]["spec"]
    without = objects({"autoscaling": {"enabled": False}, "replicaCount": 3})
    assert "HorizontalPodAutoscaler" not in without
    assert without["Deployment"]["spec"]["replicas"] == 3


def test_config_change_rolls_the_pods() -> None:
    a = objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    b = objects({"config": {"logging": {"level": "DEBUG"}}})
    assert b["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != a
    assert yaml.safe_load(b["ConfigMap"]["data"]["config.yaml"])["logging"] == {"level": "DEBUG", "format": "json"}


def test_optional_parts() -> None:
    objs = objects({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                    "redis": {"enabled": True}, "secrets": {"existingSecret": "push-creds"},
                    "image": {"tag": "1.2.3"}, "serviceAccount": {"create": False}})
    assert "Secret" not in objs and "ServiceAccount" not in objs
    sm = objs["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s",
                                        "scrapeTimeout": "10s"}]
    # The ServiceMonitor selects the Service (by the Service's labels).
    assert sm["spec"]["selector"]["matchLabels"].items() <= objs["Service"]["metadata"]["labels"].items()
    c = container(objs)
    assert {"name": "TIM_PUSH_GATEWAY_REDIS_URL", "value": "redis://rel-redis-master:6379/0"} in c["env"]
    assert c["image"] == "ghcr.io/example/tim-push-gateway:1.2.3"
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"
    assert {v["name"]: v for v in pod["volumes"]}["secrets"]["secret"]["secretName"] == "push-creds"


def test_secret_files_from_values() -> None:
    objs = objects({"secrets": {"stringData": {"apns.p8": "-----BEGIN PRIVATE KEY-----\nx\n"}}})
    assert objs["Secret"]["stringData"] == {"apns.p8": "-----BEGIN PRIVATE KEY-----\nx\n"}
    assert "stringData" not in objects()["Secret"]


def test_default_image_tag_is_app_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert container(objects())["image"].endswith(":" + chart["appVersion"])
    import gateway

    assert chart["appVersion"] == gateway.__version__


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    (dep,) = chart["dependencies"]
    assert (dep["name"], dep["condition"]) == ("redis", "redis.enabled")


@pytest.mark.parametrize("source", ["{{ range .Values.x }}{{ end }}", "{{ if .a }}", "{{ lookup \"v1\" }}",
                                    "{{ end }}"])
def test_renderer_refuses_what_it_does_not_know(source: str, tmp_path: Path) -> None:
    with pytest.raises((TemplateError, KeyError)):
        from tests.ops.gotemplate import Renderer

        Renderer({}).render_nodes(parse(source), {}, {})
