"""Shared fixtures: a test CA, the fake Google server, service accounts, and a gateway with several FCM apps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fcm import FakeGoogle, ServiceAccount, make_service_account
from tests.support.gateway import GatewayProcess
from tests.support.tls import TestCA, make_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TestCA]:
    d = tmp_path_factory.mktemp("fcm-pki")
    return d, make_ca(d)


@pytest.fixture(scope="module")
def fake(pki: tuple[Path, TestCA]) -> Iterator[FakeGoogle]:
    d, ca = pki
    server = FakeGoogle(ca.issue(d, "fake-google", ("127.0.0.1",))).start()
    yield server
    server.stop()


def account(pki: tuple[Path, TestCA], fake: FakeGoogle, name: str, register: bool = True) -> ServiceAccount:
    sa = make_service_account(pki[0], fake.token_uri, name=name, project_id=fake.project_id)
    if register:
        fake.add_account(sa)
    return sa


def fcm_app(sa: ServiceAccount, fake: FakeGoogle, ca: TestCA, **extra: Any) -> dict[str, Any]:
    return {"type": "fcm", "service_account_file": str(sa.path), "fcm_url": fake.url, "ca_file": str(ca.cert_path),
            **extra}


def start_gateway(tmp: Path, apps: dict[str, Any], **config: Any) -> GatewayProcess:
    return GatewayProcess(tmp, {"apps": apps, "logging": {"level": "INFO"}, **config}).start()


def key(prefix: str = "pk") -> str:
    """A fresh pushkey (FCM tokens are long opaque strings; uniqueness keeps tests independent)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def note(*devices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"event_id": "$ev:hs", "room_id": "!room:hs", "devices": list(devices), **extra}


def dev(app_id: str, pushkey: str, **kw: Any) -> dict[str, Any]:
    return {"app_id": app_id, "pushkey": pushkey, **kw}
