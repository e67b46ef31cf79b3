"""FcmPushkin.parse_config: defaults, Sygnal keys, and clear errors for every bad value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config.reader import ConfigError, Section
from gateway.pushkins.fcm import FcmOptions, FcmPushkin
from tests.fakes.fcm import make_service_account

PATH = "apps.org.example.fcm"


@pytest.fixture(scope="module")
def sa_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_service_account(tmp_path_factory.mktemp("sa"), "https://127.0.0.1:1/token").path)


def parse(data: dict[str, Any]) -> FcmOptions:
    s = Section(data, PATH)
    opts = FcmPushkin.parse_config(s)
    s.finish()
    return opts


def test_defaults(sa_file: str) -> None:
    o = parse({"service_account_file": sa_file})
    assert o.project_id == "fake-project"
    assert o.send_url == "https://fcm.googleapis.com/v1/projects/fake-project/messages:send"
    assert (o.max_connections, o.send_badge_counts, o.max_tries, o.ttl_s, o.collapse_key) == (20, True, 3, None, None)
    assert dict(o.fcm_options) == {}


def test_sygnal_v1_config_is_accepted(sa_file: str) -> None:
    o = parse({"api_version": "v1", "project_id": "my-proj", "service_account_file": sa_file,
               "max_connections": 50, "send_badge_counts": False,
               "fcm_options": {"android": {"notification": {"channel_id": "x"}}, "apns": {"payload": {}}},
               "fcm_url": "https://127.0.0.1:8443/", "ttl_s": 60, "collapse_key": "k"})
    assert o.send_url == "https://127.0.0.1:8443/v1/projects/my-proj/messages:send"
    assert o.fcm_options["android"]["notification"]["channel_id"] == "x"
    assert (o.max_connections, o.send_badge_counts, o.ttl_s, o.collapse_key) == (50, False, 60, "k")


@pytest.mark.parametrize("extra,message", [
    ({"api_version": "legacy"}, "api_version: the legacy FCM API was shut down by Google in 2024"),
    ({"api_version": "v2"}, "api_version: must be v1"),
    ({"api_key": "abc"}, "api_key: belongs to the legacy FCM API"),
    ({"project_id": "bad/id"}, "project_id: not a Firebase project id"),
    ({"fcm_options": {"time_to_live": 10}}, "'time_to_live' is a legacy FCM option"),
    ({"fcm_options": {"data": {"a": "b"}}}, "unknown key 'data'; allowed: android, apns, webpush, fcm_options"),
    ({"fcm_options": {"android": "high"}}, "android must be a mapping"),
    ({"fcm_options": []}, "fcm_options: expected a mapping"),
    ({"fcm_url": "ftp://x"}, "fcm_url: must be an https:// base URL"),
    ({"max_connections": 0}, "max_connections: must be >= 1"),
    ({"ttl_s": -1}, "ttl_s: must be >= 0"),
    ({"max_tries": "3"}, "max_tries: expected an integer"),
    ({"max_conections": 3}, "max_conections: unknown key (did you mean 'max_connections'?)"),
])
def test_errors(sa_file: str, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse({"service_account_file": sa_file, **extra})
    assert message in str(e.value) and str(e.value).startswith(PATH)


@pytest.mark.parametrize("content,message", [
    ("not json", "not a readable JSON file"),
    ("[]", "expected a JSON object"),
    (json.dumps({"type": "authorized_user", "client_email": "a", "private_key": "b", "token_uri": "c"}),
     "type must be service_account"),
    (json.dumps({"type": "service_account"}), "missing client_email, private_key, token_uri"),
    (json.dumps({"type": "service_account", "client_email": "a", "private_key": "nope", "token_uri": "c"}),
     "unusable private key"),
])
def test_bad_service_account_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "sa.json"
    f.write_text(content)
    with pytest.raises(ConfigError) as e:
        parse({"service_account_file": str(f), "project_id": "p"})
    assert f"{PATH}.service_account_file: {message}" in str(e.value)


def test_missing_file_and_project(tmp_path: Path, sa_file: str) -> None:
    with pytest.raises(ConfigError, match="service_account_file: is required"):
        parse({})
    with pytest.raises(ConfigError, match="file not found"):
        parse({"service_account_file": str(tmp_path / "nope.json")})
    info = json.loads(Path(sa_file).read_text())
    del info["project_id"]
    f = tmp_path / "noproj.json"
    f.write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="project_id: is required"):
        parse({"service_account_file": str(f)})


def test_ca_file_must_be_pem(tmp_path: Path, sa_file: str) -> None:
    f = tmp_path / "ca.pem"
    f.write_text("not a certificate")
    with pytest.raises(ConfigError, match="ca_file: not a PEM CA certificate file"):
        parse({"service_account_file": sa_file, "ca_file": str(f)})
