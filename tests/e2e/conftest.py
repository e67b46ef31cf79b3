"""End-to-end fixtures: one real Synapse and one gateway per test session, fresh users and rooms per test.

Synapse and the gateway start once (about 2 s each); every test registers its own receiving user and
room, so unread counts start from zero and pushers of one test never see another test's events. When a
test fails, the part of the Synapse and gateway logs written during that test is attached to its report.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.homeserver import Homeserver, MatrixUser
from tests.e2e.wait import PushLog
from tests.support.gateway import GatewayProcess

HERE = Path(__file__).resolve().parent
VZD = HERE.parent / "fixtures" / "vzd"
_users = itertools.count(1)

#: app_ids the session gateway serves. Pushers pick one; the kind of pushkin decides what "delivered" means.
IOS_APP = "org.example.e2e.ios"
ANDROID_APP = "org.example.e2e.android"
SCRIPTED_APP = "org.example.e2e.scripted"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# --- log slices on failure -------------------------------------------------------------------------------

_watched: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _log_offsets(request: pytest.FixtureRequest) -> None:
    request.node._e2e_log_offsets = {name: _size(path) for name, path in _watched.items()}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    offsets: dict[str, int] = getattr(item, "_e2e_log_offsets", {})
    for name, path in _watched.items():
        try:
            with open(path, "rb") as fh:
                fh.seek(offsets.get(name, 0))
                text = fh.read().decode(errors="replace")
        except OSError as e:
            text = f"(cannot read {path}: {e})"
        report.sections.append((f"{name} log during this test", text[-40000:]))


# --- session processes -------------------------------------------------------------------------------------

def _running(name: str, proc: Any) -> Iterator[Any]:
    """Start a process with a ``log_path``, watch its log for failure reports, stop it at the end."""
    _watched[name] = proc.log_path
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    yield from _running("synapse", Homeserver(tmp_path_factory.mktemp("synapse")))


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, homeserver: Homeserver) -> Iterator[GatewayProcess]:
    """The product as deployed: push gateway and TiMessengerInformation in one process.

    OpenID tokens are checked at the session Synapse; the federation list is the real signed v1650 list.
    """
    folder = tmp_path_factory.mktemp("gateway")
    record = folder / "scripted.jsonl"
    record.touch()
    config = {
        "debug": True,
        "server": {"request_timeout_s": 2},
        "apps": {
            IOS_APP: {"type": "log", "keep_last": 10000},
            ANDROID_APP: {"type": "log", "keep_last": 10000},
            SCRIPTED_APP: {"type": "tests.support.pushkins.ScriptedPushkin", "record_file": str(record)},
        },
        "tim_information": {
            "homeserver_url": homeserver.url,
            "federation_list": {
                "source": "file", "path": str(VZD / "federationList-ru-v1650.jws"),
                "trust": {"tsl_roots": [str(VZD / "tsl-roots-ru.json")],
                          "intermediates": [str(VZD / "GEM.KOMP-CA50-TEST-ONLY.pem")]},
            },
        },
    }
    gw = GatewayProcess(folder, config)
    gw.record_file = record  # type: ignore[attr-defined]
    yield from _running("gateway", gw)


@pytest.fixture(scope="session")
def alice(homeserver: Homeserver) -> MatrixUser:
    """The sender in every scenario."""
    return homeserver.register("alice")


@pytest.fixture(scope="session")
def notify_url(gateway: GatewayProcess) -> str:
    return f"http://127.0.0.1:{gateway.port}/_matrix/push/v1/notify"


@pytest.fixture
def push_log(gateway: GatewayProcess) -> PushLog:
    return PushLog(gateway)


@dataclass(frozen=True)
class Scene:
    """A receiving user who has joined a fresh two-member room created by alice and read everything in it.

    The invite is a notification of its own; the read receipt on the join clears it, so the first message
    alice sends is unread number 1. Pushers are set by the test afterwards.
    """

    sender: MatrixUser
    receiver: MatrixUser
    room_id: str
    notify_url: str


@pytest.fixture
def scene(homeserver: Homeserver, alice: MatrixUser, notify_url: str) -> Scene:
    bob = homeserver.register(f"bob{next(_users)}")
    room_id = alice.create_room(invite=[bob])
    bob.join(room_id)
    bob.read_receipt(room_id, bob.latest_event(room_id))
    return Scene(alice, bob, room_id, notify_url)
