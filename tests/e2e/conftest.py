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

from tests.e2e.homeserver import PROXY_VARS, Homeserver, MatrixUser
from tests.e2e.wait import Received
from tests.fakes.apns import FakeAPNs, TokenAuth, make_p8
from tests.fakes.fcm import FakeGoogle, make_service_account
from tests.support.gateway import NOTIFY, GatewayProcess
from tests.support.tls import TestCA, make_ca

HERE = Path(__file__).resolve().parent
VZD = HERE.parent / "fixtures" / "vzd"
_users = itertools.count(1)

#: app_ids the session gateway serves. Pushers pick one; the kind of pushkin decides what "delivered" means.
IOS_APP = "org.example.e2e.ios"
ANDROID_APP = "org.example.e2e.android"
SCRIPTED_APP = "org.example.e2e.scripted"
#: The same providers in TI-M mode (``tim_content_free``): nothing but ids and counts may leave the gateway.
IOS_TIM_APP = "org.example.e2e.tim.ios"
ANDROID_TIM_APP = "org.example.e2e.tim.android"
#: The gateway's retry-queue poll interval (its queue metrics are refreshed this often).
QUEUE_POLL_S = 0.1
APNS_TOPIC = "org.example.e2e.ios"
APNS_KEY_ID = "E2EKEY0001"
APNS_TEAM_ID = "E2ETEAM001"


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


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: TestCA
    p8: Path
    p8_public: str


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    p8, public = make_p8(folder)
    return Pki(folder, make_ca(folder), p8, public)


@pytest.fixture(scope="session")
def fake_apns(pki: Pki) -> Iterator[FakeAPNs]:
    with FakeAPNs(pki.ca, pki.folder, topic=APNS_TOPIC,
                  token_auth=TokenAuth(pki.p8_public, APNS_KEY_ID, APNS_TEAM_ID)) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_fcm(pki: Pki) -> Iterator[FakeGoogle]:
    fake = FakeGoogle(pki.ca.issue(pki.folder, "fake-google", ("127.0.0.1",))).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, homeserver: Homeserver, pki: Pki, fake_apns: FakeAPNs,
            fake_fcm: FakeGoogle) -> Iterator[GatewayProcess]:
    """The product as deployed: push gateway and TiMessengerInformation in one process.

    Pushes go over TLS (trusting the test CA) to the fake APNs and FCM; OpenID tokens are checked at the
    session Synapse; the federation list is the real signed v1650 list.
    """
    folder = tmp_path_factory.mktemp("gateway")
    record = folder / "scripted.jsonl"
    record.touch()
    account = make_service_account(pki.folder, fake_fcm.token_uri, project_id=fake_fcm.project_id)
    fake_fcm.add_account(account)
    ca_file = str(pki.ca.cert_path)
    apns = {"type": "apns", "keyfile": str(pki.p8), "key_id": APNS_KEY_ID, "team_id": APNS_TEAM_ID,
            "topic": APNS_TOPIC, "apns_url": fake_apns.url, "ca_file": ca_file}
    fcm = {"type": "fcm", "service_account_file": str(account.path), "fcm_url": fake_fcm.url, "ca_file": ca_file}
    config = {
        "server": {"request_timeout_s": 2},
        # Production single-instance setup; queued retries start quickly so late deliveries come soon.
        "state": {"backend": "sqlite", "path": str(folder / "state.db"), "retry_backoff_base_s": 0.5,
                  "retry_poll_interval_s": QUEUE_POLL_S},
        "apps": {
            IOS_APP: apns,
            ANDROID_APP: fcm,
            IOS_TIM_APP: {**apns, "tim_content_free": True},
            ANDROID_TIM_APP: {**fcm, "tim_content_free": True},
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
    # An empty value counts as unset: the gateway reaches the fakes without a proxy from the environment.
    gw = GatewayProcess(folder, config, env={var: "" for var in PROXY_VARS})
    gw.record_file = record  # type: ignore[attr-defined]
    yield from _running("gateway", gw)


@pytest.fixture(scope="session")
def alice(homeserver: Homeserver) -> MatrixUser:
    """The sender in every scenario."""
    return homeserver.register("alice")


@pytest.fixture(scope="session")
def notify_url(gateway: GatewayProcess) -> str:
    return f"http://127.0.0.1:{gateway.port}{NOTIFY}"


@pytest.fixture
def received(gateway: GatewayProcess, fake_apns: FakeAPNs, fake_fcm: FakeGoogle) -> Received:
    return Received(fake_apns, fake_fcm, gateway.record_file)  # type: ignore[attr-defined]


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


def _scene(homeserver: Homeserver, alice: MatrixUser, notify_url: str, extra_members: int,
           name: str | None = None) -> Scene:
    bob = homeserver.register(f"bob{next(_users)}")
    others = [homeserver.register(f"carol{next(_users)}") for _ in range(extra_members)]
    room_id = alice.create_room(invite=[bob, *others], name=name)
    for member in (*others, bob):
        member.join(room_id)
    bob.read_receipt(room_id, bob.latest_event(room_id))
    return Scene(alice, bob, room_id, notify_url)


@pytest.fixture
def scene(homeserver: Homeserver, alice: MatrixUser, notify_url: str) -> Scene:
    return _scene(homeserver, alice, notify_url, extra_members=0)


@pytest.fixture
def group_scene(homeserver: Homeserver, alice: MatrixUser, notify_url: str) -> Scene:
    """Like `scene`, in a three-member room named "Lunch": Synapse's default rules push without sound there."""
    return _scene(homeserver, alice, notify_url, extra_members=1, name="Lunch")
