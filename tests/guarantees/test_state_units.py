"""Pure parts of the state layer: record encoding, minimisation, rejection supersession, expiry, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.load import parse_config
from gateway.config.reader import ConfigError
from gateway.model import Counts, Device, Notification, frozen_json, thaw_json
from gateway.state.memory import ExpiringDict
from gateway.state.records import QueueEntry, Rejection, dedup_key, minimise, rejection_key, restore

from tests.guarantees.conftest import APP, Harness, notification
from tests.support.gateway import GatewayProcess

APPS = {"a": {"type": "log"}}


def sample() -> Notification:
    device = Device("com.x", "PUSHKEY", pushkey_ts=5, data=frozen_json({"format": "event_id_only"}),
                    tweaks=frozen_json({"sound": "default"}))
    other = Device("com.x", "OTHER")
    return Notification(devices=(device, other), event_id="$e", room_id="!r", type="m.room.message", sender="@a:x",
                        sender_display_name="Alice", room_name="Room", prio="low",
                        content=frozen_json({"body": "hi", "msgtype": "m.text"}), counts=Counts(unread=2))


def test_minimise_keeps_one_device_and_round_trips() -> None:
    n = sample()
    payload = minimise(n, n.devices[0], content_free=False)
    entry = QueueEntry.decode(QueueEntry("id", "com.x", payload, 1.5, 2).encode())
    restored, device = restore(entry.payload)
    assert device == n.devices[0] and restored.devices == (device,)
    assert "OTHER" not in str(entry.payload)
    assert thaw_json(restored.content) == {"body": "hi", "msgtype": "m.text"}
    assert (restored.event_id, restored.prio, restored.counts, restored.sender_display_name) == \
        ("$e", "low", Counts(unread=2), "Alice")
    assert (entry.created, entry.attempts) == (1.5, 2)


def test_minimise_drops_what_a_content_free_app_never_sends() -> None:
    n = sample()
    payload = minimise(n, n.devices[0], content_free=True)
    assert not {"content", "sender", "sender_display_name", "room_name"} & payload.keys()
    assert payload["event_id"] == "$e" and payload["counts"] == {"unread": 2}


@pytest.mark.parametrize("stored_ts,at_ms,new_ts,superseded", [
    (1000, 5000, None, False), (1000, 5000, 1000, False), (1000, 5000, 999, False), (1000, 5000, 1001, True),
    (None, 5000, 4000, False), (None, 5000, 5001, True),
])
def test_rejection_superseded_only_by_a_newer_registration(stored_ts: int | None, at_ms: int, new_ts: int | None,
                                                           superseded: bool) -> None:
    rej = Rejection.decode(Rejection(at_ms, stored_ts).encode())
    assert rej == Rejection(at_ms, stored_ts)
    assert rej.superseded_by(new_ts) is superseded


@given(st.text(), st.text(), st.text())
def test_keys_never_contain_the_pushkey_and_separate_fields(app: str, key: str, event: str) -> None:
    k = dedup_key(app, key, event)
    assert len(k) == 32 and (len(key) < 8 or key not in k)
    assert k != dedup_key(app + key, "", event) or key == ""
    assert k != dedup_key(app, key + event, "") or event == ""
    assert rejection_key(app, key) != k


def test_keys_do_not_collide_through_separator_characters() -> None:
    assert dedup_key("", "\x00", "") != dedup_key("\x00", "", "")
    assert dedup_key("a", "k\x00x", "y") != dedup_key("a", "k", "x\x00y")


def test_expiring_dict_forgets_after_ttl_and_sweeps() -> None:
    now = [100.0]
    d = ExpiringDict(lambda: now[0])
    d.set("a", "1", 10)
    d.set("b", "2", 30)
    d.set("a", "3", 50)  # re-set: the earlier expiry must not remove it
    now[0] = 120
    d.sweep(now[0])
    assert d.get("a") == "3" and d.get("b") == "2"
    now[0] = 131
    d.sweep(now[0])
    assert d.get("b") is None and "b" not in d.items and d.get("a") == "3"
    now[0] = 151
    assert d.get("a") is None


@pytest.mark.parametrize("state,message", [
    ({"backend": "sqlite"}, "state.path: is required with backend: sqlite"),
    ({"backend": "redis"}, "state.redis_url: is required"),
    ({"backend": "redis", "redis_url": "http://x"}, "state.redis_url: must be a redis://"),
    ({"backend": "postgres"}, "state.backend: must be one of memory, sqlite, redis"),
    ({"dedup_windows_s": 5}, "did you mean 'dedup_window_s'"),
    ({"retry_backoff_base_s": 10, "retry_backoff_max_s": 5}, "retry_backoff_max_s: must be >="),
    ({"max_retry_age_s": 0}, "state.max_retry_age_s: must be >= 1"),
    ({"sqlite_memory_records": 10}, "state.sqlite_memory_records: must be >= 1000"),
])
def test_state_config_errors_name_the_key(state: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as e:
        parse_config({"apps": APPS, "state": state})
    assert message in str(e.value)


def test_state_config_defaults_and_secret_url(tmp_path: Path) -> None:
    cfg = parse_config({"apps": APPS}).state
    assert (cfg.backend, cfg.dedup_window_s, cfg.rejection_ttl_s, cfg.max_retry_age_s, cfg.retry_queue) == \
        ("memory", 3600, 7 * 86400, 86400, False)
    assert parse_config({"apps": APPS, "state": {"backend": "sqlite", "path": "x.db"}}).state.retry_queue is True
    assert parse_config({"apps": APPS, "state": {"retry_queue": True}}).state.retry_queue is True
    from gateway.state import open_store
    sq = parse_config({"apps": APPS, "state": {"backend": "sqlite", "path": str(tmp_path / "s.db"),
                                               "sqlite_memory_records": 5000}}).state
    assert open_store(sq, None).mirror_max == 5000  # type: ignore[attr-defined]
    assert open_store(parse_config({"apps": APPS, "state": {"backend": "sqlite", "path": "x.db"}}).state,
                      None).mirror_max == 1_000_000  # type: ignore[attr-defined]
    url_file = tmp_path / "url"
    url_file.write_text("redis://:pw@127.0.0.1:1/0\n")
    cfg = parse_config({"apps": APPS, "state": {"backend": "redis", "redis_url_file": str(url_file)}}).state
    assert cfg.redis_url == "redis://:pw@127.0.0.1:1/0"


@pytest.mark.parametrize("durable_harness", ["sqlite"], indirect=True)
def test_second_process_on_one_sqlite_file_refuses_to_start(durable_harness: Harness, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    first = gateway_factory(durable_harness.config())
    second = gateway_factory(durable_harness.config(), start=False)
    with pytest.raises(RuntimeError) as e:
        second.start()
    assert "in use by another gateway process" in str(e.value)
    assert first.notify(notification("pk", "$e")).status == 200


def test_unreachable_redis_is_a_clear_startup_error(tmp_path: Path, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.support.gateway import free_port

    gw: GatewayProcess = gateway_factory({"apps": {APP: {"type": "log"}}, "state": {
        "backend": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}}, start=False)
    with pytest.raises(RuntimeError) as e:
        gw.start()
    assert "state: cannot open the redis state store" in str(e.value)


def test_guarantees_sweep_expired_records_periodically() -> None:
    """The one periodic sweep (with or without a retry queue) keeps the memory store bounded."""
    from twisted.internet import task

    from gateway.config.model import StateConfig
    from gateway.guarantees import SWEEP_INTERVAL_S, Guarantees
    from gateway.state.memory import MemoryStore

    clock = task.Clock()
    store = MemoryStore(clock=clock.seconds)
    guard = Guarantees(store, StateConfig(dedup_window_s=120, rejection_ttl_s=120), clock, 10, clock=clock.seconds)
    guard.start_sweeping()
    for i in range(50):
        store.dedup.set(f"k{i}", "d", 120)
        store.rejections.set(f"r{i}", "1:", 120)
    store.dedup.set("late", "d", 1000)
    clock.advance(SWEEP_INTERVAL_S)
    assert len(store.dedup.items) == 51  # nothing expired yet
    clock.advance(SWEEP_INTERVAL_S * 2)
    assert set(store.dedup.items) == {"late"} and not store.rejections.items
    guard.stop_sweeping()
    clock.advance(SWEEP_INTERVAL_S * 20)
    assert set(store.dedup.items) == {"late"}  # stopped: the expired record stays until looked up
