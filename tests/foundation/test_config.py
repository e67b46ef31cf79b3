"""Configuration errors: each class of mistake names its key path and stops start-up with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.config.load import parse_config
from gateway.config.reader import ConfigError
from tests.support.gateway import REPO

BASE = {"apps": {"a": {"type": "log"}}}


def err(doc: object) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(doc)
    return str(e.value)


def test_minimal_config_and_defaults() -> None:
    cfg = parse_config(BASE)
    assert cfg.server.port == 5000 and cfg.server.bind == ("127.0.0.1",)
    assert cfg.server.max_body_bytes == 262144 and cfg.server.request_timeout_s == 10
    assert cfg.apps[0].app_id == "a" and cfg.apps[0].inflight_request_limit == 512


def test_config_objects_are_frozen() -> None:
    cfg = parse_config(BASE)
    with pytest.raises(AttributeError):
        cfg.server.port = 1  # type: ignore[misc]


def test_unknown_key_with_did_you_mean() -> None:
    assert err({**BASE, "server": {"prot": 5000}}) == "server.prot: unknown key (did you mean 'port'?)"
    assert "apps.a.inflight_request_limt: unknown key (did you mean 'inflight_request_limit'?)" == err(
        {"apps": {"a": {"type": "log", "inflight_request_limt": 3}}})
    assert err({**BASE, "metrix": {}}).startswith("metrix: unknown key (did you mean 'metrics'?)")


def test_wrong_type_names_the_key() -> None:
    assert err({**BASE, "server": {"port": "80"}}) == "server.port: expected an integer, got string"
    assert err({**BASE, "metrics": {"enabled": "yes"}}) == "metrics.enabled: expected true or false, got string"
    assert err({**BASE, "server": {"bind": [1]}}) == "server.bind[0]: expected a string, got integer"
    assert err({**BASE, "server": []}) == "server: expected a mapping, got list"


def test_out_of_range() -> None:
    assert err({**BASE, "server": {"port": 70000}}) == "server.port: must be <= 65535, got 70000"
    assert "apps.a.inflight_request_limit: must be >= 1" in err(
        {"apps": {"a": {"type": "log", "inflight_request_limit": 0}}})


def test_bad_choice_with_hint() -> None:
    assert err({**BASE, "logging": {"format": "jsn"}}) == (
        "logging.format: must be one of text, json; got 'jsn' (did you mean 'json'?)")


def test_missing_required() -> None:
    assert err({}) == "apps: is required"
    assert err({"apps": {}}) == "apps: at least one app must be configured"
    assert err({"apps": {"a": {}}}) == "apps.a.type: is required"


def test_unknown_pushkin_type() -> None:
    assert "apps.a.type: unknown pushkin type 'webpush'" in err({"apps": {"a": {"type": "webpush"}}})


def test_env_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_LEVEL", "debug")
    cfg = parse_config({**BASE, "logging": {"level": "${GW_LEVEL}"}, "metrics": {"bind": "${GW_NOPE:-0.0.0.0}",
                                                                                  "port": 9100}})
    assert cfg.logging.level == "DEBUG" and cfg.metrics.bind == "0.0.0.0"
    assert err({**BASE, "logging": {"level": "${GW_UNSET_VAR}"}}) == (
        "logging.level: environment variable GW_UNSET_VAR is not set")


def test_secret_from_file(tmp_path: Path) -> None:
    from gateway.config.reader import Section

    (tmp_path / "s").write_text("hunter2\n")
    s = Section({"password_file": str(tmp_path / "s")}, "x")
    assert s.secret("password") == "hunter2"
    s.finish()
    with pytest.raises(ConfigError, match=r"x.password_file: file not found"):
        Section({"password_file": str(tmp_path / "missing")}, "x").secret("password")
    with pytest.raises(ConfigError, match="give either password or password_file"):
        Section({"password": "a", "password_file": "b"}, "x").secret("password")


def test_proxy_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_config({**BASE, "proxy": "http://127.0.0.1:3128"}).proxy == "http://127.0.0.1:3128"
    assert err({**BASE, "proxy": "socks5://x:1"}).startswith("proxy: must be an http://host:port URL")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:8080")
    assert parse_config(BASE).proxy == "http://proxy.local:8080"
    monkeypatch.setenv("HTTPS_PROXY", "ftp://x")
    assert err(BASE).startswith("proxy (from HTTPS_PROXY): must be")


def test_metrics_listener_needs_bind_and_port() -> None:
    assert err({**BASE, "metrics": {"port": 9100}}) == "metrics.bind: bind and port go together for a separate listener"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=env)


def test_cli_config_error_exits_2_before_listening(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"apps": {"a": {"type": "log"}}, "server": {"prot": 1}}))
    p = run_cli("--config", str(path))
    assert p.returncode == 2
    assert p.stderr.strip() == "tim-push-gateway: config error: server.prot: unknown key (did you mean 'port'?)"


def test_cli_missing_and_invalid_files(tmp_path: Path) -> None:
    p = run_cli("--config", str(tmp_path / "nope.yaml"))
    assert p.returncode == 2 and "config file not found" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apps: [unclosed")
    p = run_cli("--config", str(bad))
    assert p.returncode == 2 and "is not valid YAML" in p.stderr
    import os

    env = {k: v for k, v in os.environ.items() if k != "TIM_PUSH_GATEWAY_CONFIG"}
    p = run_cli(env=env)
    assert p.returncode == 2 and "TIM_PUSH_GATEWAY_CONFIG" in p.stderr


def test_cli_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"apps": {"a": {"type": "log"}}, "server": {"port": port}}))
        p = run_cli("--config", str(path))
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("tim-push-gateway: start-up failed: server.bind: cannot listen on 127.0.0.1:")


def test_config_from_env_variable(tmp_path: Path) -> None:
    import os

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"apps": {"a": {"type": "log"}}, "server": {"port": -1}}))
    p = run_cli(env={**os.environ, "TIM_PUSH_GATEWAY_CONFIG": str(path)})
    assert p.returncode == 2 and "server.port: must be >= 0" in p.stderr


def test_sample_config_is_valid() -> None:
    cfg = parse_config(yaml.safe_load((REPO / "config.sample.yaml").read_text()))
    assert cfg.apps
