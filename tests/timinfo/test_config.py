"""The tim_information section through the gateway's real config reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import timinfo
from gateway.config.reader import ConfigError, Section
from tests.timinfo.conftest import KOMP_CA50, ROOTS, V1650
from timinfo.config import DATA_DIR

BUNDLED = {"tsl_roots": ["bundled:tsl-roots-ru.json"], "intermediates": ["bundled:GEM.KOMP-CA50-TEST-ONLY.pem"]}


def parse(data: dict[str, Any]) -> timinfo.TimInfoConfig:
    return timinfo.parse_config(Section(data, "tim_information"))


def base(**fl: Any) -> dict[str, Any]:
    return {"homeserver_url": "http://127.0.0.1:8008",
            "federation_list": {"source": "file", "path": "bundled:federationList-ru-v1650.jws", "trust": BUNDLED,
                                **fl}}


def test_sample_config_uses_bundled_files() -> None:
    cfg = parse(base())
    assert cfg.enabled and cfg.path_prefix == "/tim-information"
    assert cfg.federation_list.path == str(DATA_DIR / "federationList-ru-v1650.jws")
    assert cfg.federation_list.trust.policy_oids == ("1.2.276.0.76.4.203",)
    assert cfg.federation_list.trust.role_oids == ("1.2.276.0.76.4.171",)
    assert (DATA_DIR / "federationList-ru-v1650.jws").read_bytes() == V1650.read_bytes()
    assert (DATA_DIR / "tsl-roots-ru.json").read_bytes() == ROOTS.read_bytes()
    assert (DATA_DIR / "GEM.KOMP-CA50-TEST-ONLY.pem").read_bytes() == KOMP_CA50.read_bytes()


def test_token_ttl_is_capped_at_five_minutes() -> None:
    assert parse({**base(), "token_cache_ttl_s": 3600}).token_cache_ttl_s == 300


def test_vzd_secret_from_env_and_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VZD_SECRET", "abc")
    data = base()
    data["federation_list"] = {"source": "vzd", "state_dir": str(tmp_path), "trust": BUNDLED,
                               "vzd": {"token_url": "https://auth.example/token", "base_url": "https://fhir.example/",
                                       "client_id": "me", "client_secret": "${VZD_SECRET}"}}
    vzd = parse(data).federation_list.vzd
    assert vzd is not None and vzd.client_secret == "abc" and "abc" not in repr(vzd)
    assert vzd.auth_url == "https://fhir.example/ti-provider-authenticate"
    assert vzd.list_url == "https://fhir.example/tim-provider-services/FederationList/federationList.jws"


@pytest.mark.parametrize("mutate,where", [
    (lambda d: d.pop("homeserver_url"), "tim_information.homeserver_url"),
    (lambda d: d.update(homeserver_url="ftp://x"), "tim_information.homeserver_url"),
    (lambda d: d.update(path_prefix="tim/"), "tim_information.path_prefix"),
    (lambda d: d.update(homeserver_urls="x"), "tim_information.homeserver_urls"),
    (lambda d: d["federation_list"].pop("trust"), "tim_information.federation_list.trust"),
    (lambda d: d["federation_list"].update(trust={}), "tim_information.federation_list.trust.anchors"),
    (lambda d: d["federation_list"].update(path="/nonexistent.jws"), "tim_information.federation_list.path"),
    (lambda d: d["federation_list"].update(source="http"), "tim_information.federation_list.source"),
    (lambda d: d["federation_list"].update(source="vzd", path=None), "tim_information.federation_list"),
    (lambda d: d["federation_list"]["trust"].update(policy_oids=["x.y"]),
     "tim_information.federation_list.trust.policy_oids"),
    (lambda d: d["federation_list"]["trust"].update(algorithms=["none"]),
     "tim_information.federation_list.trust.algorithms"),
])
def test_errors_name_the_key(mutate: Any, where: str) -> None:
    data = base()
    data["federation_list"]["trust"] = dict(BUNDLED)
    mutate(data)
    with pytest.raises(ConfigError) as exc:
        parse(data)
    assert str(exc.value).startswith(where)


def test_vzd_requires_state_dir() -> None:
    data = base()
    data["federation_list"] = {"source": "vzd", "trust": BUNDLED,
                               "vzd": {"token_url": "https://a/t", "base_url": "https://b", "client_id": "c",
                                       "client_secret": "d"}}
    with pytest.raises(ConfigError, match="state_dir"):
        parse(data)
