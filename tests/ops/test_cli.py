"""The operator CLI, run as a real process: check-config, send-test-push, federation-list verify."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from gateway.model import pushkey_hash
from tests.ops import creds
from tests.support.cli import Run, cli, write_config

CRED_TYPE = "tests.ops.credpushkin.CredentialPushkin"
SCRIPTED_TYPE = "tests.support.pushkins.ScriptedPushkin"


# -- check-config -----------------------------------------------------------------------------------------

def test_check_config_sample_is_ok() -> None:
    r = cli("check-config", "config.sample.yaml")
    assert r.code == 0, r.err
    resolved = yaml.safe_load(r.out)
    assert resolved["server"]["port"] == 5000
    assert resolved["apps"][0]["app_id"] == "org.example.debug"
    assert resolved["tracing"]["enabled"] is False
    assert r.err.strip().endswith("config OK")


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text("file-secret-value\n")
    cfg = write_config(tmp_path, {
        "proxy": "http://user:proxy-pass-123@127.0.0.1:3128",
        "apps": {
            "a.inline": {"type": CRED_TYPE, "api_key": "${TEST_API_KEY}"},
            "a.file": {"type": CRED_TYPE, "api_key_file": str(key_file)},
        },
    })
    r = cli("check-config", str(cfg), env={"TEST_API_KEY": "env-secret-value"})
    assert r.code == 0, r.err
    for secret in ("env-secret-value", "file-secret-value", "proxy-pass-123"):
        assert secret not in r.out and secret not in r.err
    resolved = yaml.safe_load(r.out)
    assert [a["options"]["api_key"] for a in resolved["apps"]] == ["***", "***"]
    assert resolved["proxy"] == "http://user:***@127.0.0.1:3128"


@pytest.mark.parametrize("config,needle", [
    ({"apps": {"a": {"type": "log"}}, "sever": {}}, "sever: unknown key (did you mean 'server'?)"),
    ({"apps": {"a": {"type": "nope"}}}, "apps.a.type: unknown pushkin type 'nope'"),
    ({"apps": {"a": {"type": "log"}}, "tracing": {"exporter": "zipkin"}}, "tracing.exporter: must be one of"),
    ({"apps": {"a": {"type": CRED_TYPE, "certfile": "/nonexistent/apns.pem"}}},
     "apps.a.certfile: file not found: /nonexistent/apns.pem"),
])
def test_check_config_errors_name_the_key(tmp_path: Path, config: dict[str, Any], needle: str) -> None:
    r = cli("check-config", str(write_config(tmp_path, config)))
    assert r.code == 2
    assert needle in r.err
    assert r.out == ""


def test_check_config_missing_file() -> None:
    r = cli("check-config", "/nonexistent/gw.yaml")
    assert r.code == 2
    assert "config file not found: /nonexistent/gw.yaml" in r.err


def _cred_app(tmp_path: Path, kind: str, maker: Any) -> tuple[Path, Path]:
    path = maker(tmp_path / f"{kind}.pem")
    cfg = write_config(tmp_path, {"apps": {"org.example.app": {"type": CRED_TYPE, kind: str(path)}}})
    return cfg, path


@pytest.mark.parametrize("kind,maker,code,expect", [
    ("certfile", lambda p: creds.apns_certfile(p, days_left=200), 0, r"OK certificate .* expires \S+ \(in 200\.0 days\)$"),
    ("certfile", lambda p: creds.apns_certfile(p, days_left=10), 0, r"in 10\.0 days\) WARNING: less than 30 days"),
    ("certfile", lambda p: creds.apns_certfile(p, days_left=-3), 1, r"EXPIRED certificate .* \(3\.0 days ago\)"),
    ("certfile", lambda p: creds.apns_certfile(p, days_left=90, matching_key=False), 1,
     "ERROR the private key does not belong to the certificate"),
    ("certfile", lambda p: creds.apns_p8(p), 1, "ERROR"),
    ("keyfile", lambda p: creds.apns_p8(p), 0, "OK EC secp256r1 private key; no expiry date"),
    ("keyfile", lambda p: creds.apns_p8(p, rsa_instead=True), 1, "ERROR expected an EC P-256 .* got RSA 2048"),
    ("service_account_file", lambda p: creds.service_account(p), 0,
     r"OK service account push@example-project\.iam\.gserviceaccount\.com \(RSA 2048 private key\); no expiry"),
    ("service_account_file", lambda p: creds.service_account(p, client_email=None), 1,
     "ERROR service-account JSON lacks client_email"),
    ("service_account_file", lambda p: creds.service_account(p, type="authorized_user"), 1,
     "ERROR type is 'authorized_user'"),
    ("service_account_file", lambda p: p.write_text("{not json") and p, 1, "ERROR"),
])
def test_check_config_reports_credential_files(tmp_path: Path, kind: str, maker: Any, code: int,
                                               expect: str) -> None:
    import re

    cfg, path = _cred_app(tmp_path, kind, maker)
    r = cli("check-config", str(cfg))
    assert r.code == code, r.err
    line = next(ln for ln in r.err.splitlines() if ln.startswith(f"apps.org.example.app.{kind}: {path}: "))
    assert re.search(expect, line), line
    assert "PRIVATE KEY" not in r.out + r.err
    assert ("config OK" in r.err) == (code == 0)


# -- send-test-push --------------------------------------------------------------------------------------

def _push_config(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "sent.jsonl"
    cfg = write_config(tmp_path, {
        "apps": {
            "org.example.log": {"type": "log"},
            "org.example.scripted.*": {"type": SCRIPTED_TYPE, "record_file": str(record)},
            "org.example.broken": {"type": CRED_TYPE, "fail_start": True},
        },
    })
    return cfg, record


def _outcome(r: Run) -> dict[str, Any]:
    lines = r.out.strip().splitlines()
    assert len(lines) == 1, r.out
    return orjson.loads(lines[0])


def test_send_test_push_log_pushkin(tmp_path: Path) -> None:
    cfg, _ = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.log", "--pushkey", "device-token-abc", "--config", str(cfg))
    assert r.code == 0, r.err
    out = _outcome(r)
    assert out["status"] == "delivered" and out["pushkin"] == "log"
    assert out["pushkey_hash"] == pushkey_hash("device-token-abc")
    assert "device-token-abc" not in r.out + r.err
    # The log pushkin's line shows that exactly this notification went through it.
    assert f"pushkey={pushkey_hash('device-token-abc')} event_id={out['event_id']}" in r.err


def test_send_test_push_starts_only_the_matching_pushkin(tmp_path: Path) -> None:
    """org.example.broken fails to start; pushing to another app must not start (or notice) it."""
    cfg, record = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.scripted.ios", "--pushkey", "ok-1", "--config", str(cfg))
    assert r.code == 0, r.err
    out = _outcome(r)
    assert (out["status"], out["config_app"]) == ("delivered", "org.example.scripted.*")
    sent = [orjson.loads(line) for line in record.read_text().splitlines()]
    assert [s["pushkey"] for s in sent] == ["ok-1"]
    assert sent[0]["event_id"] == out["event_id"]


@pytest.mark.parametrize("pushkey,status,reason,retry_after", [
    ("reject-1", "rejected", "test_reject", None),
    ("temp-1", "temporary", "test_temporary", 7),
    ("fail-1", "failed", "test_failed", None),
])
def test_send_test_push_reports_provider_answer(tmp_path: Path, pushkey: str, status: str, reason: str,
                                                retry_after: int | None) -> None:
    cfg, record = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.scripted.x", "--pushkey", pushkey, "--config", str(cfg))
    assert r.code == 1
    out = _outcome(r)
    assert (out["status"], out["reason"], out["retry_after"]) == (status, reason, retry_after)
    assert not record.exists()


def test_send_test_push_pushkin_raising(tmp_path: Path) -> None:
    cfg, _ = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.scripted.x", "--pushkey", "raise-1", "--config", str(cfg))
    assert r.code == 1
    assert _outcome(r)["status"] == "error"
    assert "RuntimeError" in _outcome(r)["reason"]


def test_send_test_push_timeout(tmp_path: Path) -> None:
    cfg, _ = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.scripted.x", "--pushkey", "slow-20-x", "--config", str(cfg),
            "--timeout", "0.5")
    assert r.code == 1
    assert _outcome(r)["status"] == "timeout"


def test_send_test_push_start_failure(tmp_path: Path) -> None:
    cfg, _ = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.broken", "--pushkey", "k", "--config", str(cfg))
    assert r.code == 1
    out = _outcome(r)
    assert out["status"] == "start_failed"
    assert "credential pushkin told to fail" in out["reason"]


def test_send_test_push_unknown_app(tmp_path: Path) -> None:
    cfg, _ = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.other", "--pushkey", "k", "--config", str(cfg))
    assert r.code == 2
    assert "no configured app matches app id 'org.other'" in r.err
    assert r.out == ""


def test_send_test_push_config_from_env(tmp_path: Path) -> None:
    cfg, _ = _push_config(tmp_path)
    r = cli("send-test-push", "--app-id", "org.example.log", "--pushkey", "k",
            env={"TIM_PUSH_GATEWAY_CONFIG": str(cfg)})
    assert r.code == 0, r.err
    assert _outcome(r)["status"] == "delivered"


def test_send_test_push_requires_arguments() -> None:
    r = cli("send-test-push", "--app-id", "x")
    assert r.code == 2
    assert "--pushkey" in r.err


# -- federation-list verify -------------------------------------------------------------------------------

def test_federation_list_verify_delegates_to_timinfo(tmp_path: Path) -> None:
    r = cli("federation-list", "verify", str(tmp_path / "missing.jws"), "--trust", str(tmp_path / "missing.pem"))
    if importlib.util.find_spec("timinfo.cli") is None:
        assert r.code == 2
        assert "federation-list verify is not available in this installation" in r.err
    else:
        assert r.code != 0
        h = cli("federation-list", "verify", "--help")
        assert h.code == 0 and "federation-list verify" in h.out
