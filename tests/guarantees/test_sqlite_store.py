"""The SQLite store's de-duplication records: append-only log, restart replay, bounded memory, sweep.

Driven through the store's interface with a controlled clock and a `task.Clock` reactor (the group commit
runs when the reactor is advanced); the file is inspected with a second `sqlite3` connection.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from twisted.internet import defer, task
from twisted.python.failure import Failure

from gateway.state.memory import ExpiringDict
from gateway.state.sqlite import COMMIT_DELAY_S, SqliteStore

from tests.guarantees.conftest import Harness, notification
from tests.support.wait import eventually
from tests.support.gateway import GatewayProcess

T = TypeVar("T")
WINDOW = 3600.0
CLAIM = "pOWNER"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """The store's local operations never wait, so their Deferred has fired when this returns."""
    results: list[Any] = []
    defer.ensureDeferred(coro).addBoth(results.append)
    assert results, "the store operation did not complete synchronously"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]  # type: ignore[no-any-return]


class Files:
    """One database file, opened by successive stores (restarts) sharing a controlled clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "state" / "gateway.db"
        self.now = 1_000_000.0
        self.reactor = task.Clock()
        self.store: SqliteStore | None = None

    def open(self, mirror_max: int = 1000) -> SqliteStore:
        if self.store is not None:
            run(self.store.close())
        self.store = SqliteStore(str(self.path), self.reactor, clock=lambda: self.now, mirror_max=mirror_max)
        run(self.store.start())
        return self.store

    def close(self) -> None:
        if self.store is not None:
            run(self.store.close())
            self.store = None

    def flush(self) -> None:
        self.reactor.advance(COMMIT_DELAY_S)

    def rows(self, table: str) -> int:
        with sqlite3.connect(self.path) as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def files(tmp_path: Path) -> Any:
    f = Files(tmp_path)
    yield f
    f.close()


def settle_all(store: SqliteStore, keys: list[str], value: str = "d") -> None:
    for k in keys:
        assert run(store.claim(k, CLAIM, 30)) is None
        run(store.settle(k, value, WINDOW))


def existing(store: SqliteStore, keys: list[str]) -> list[str | None]:
    """What a new claim of each key finds (claiming the ones found free)."""
    return [run(store.claim(k, "pOTHER", 30)) for k in keys]


def keys(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_settled_records_deduplicate_after_a_restart(files: Files) -> None:
    store = files.open()
    settle_all(store, keys(300), "d")
    run(store.settle("queued", "q", WINDOW))
    files.flush()
    assert files.rows("dedup_log") == 301 and files.rows("dedup") == 0
    store = files.open()
    assert existing(store, keys(300)) == ["d"] * 300
    assert run(store.get("queued")) == "q"
    assert existing(store, ["never-seen"]) == [None]


def test_a_record_settled_twice_keeps_its_last_value_after_a_restart(files: Files) -> None:
    store = files.open()
    run(store.settle("a", "q", WINDOW))
    files.flush()
    files.now += 5
    run(store.settle("a", "d", WINDOW))
    store = files.open()
    assert run(store.get("a")) == "d"


def test_pending_claims_do_not_survive_a_restart(files: Files) -> None:
    store = files.open()
    assert run(store.claim("a", CLAIM, 30)) is None
    assert run(store.claim("a", "pOTHER", 30)) == CLAIM
    store = files.open()
    assert run(store.claim("a", "pOTHER", 30)) is None


def test_records_expire_after_the_window_across_a_restart(files: Files) -> None:
    store = files.open()
    run(store.settle("short", "d", 10))
    run(store.settle("long", "d", WINDOW))
    files.now += 11
    store = files.open()
    assert run(store.get("short")) is None and run(store.get("long")) == "d"


@pytest.mark.parametrize("flushed", [True, False])
def test_released_records_stay_released_after_a_restart(files: Files, flushed: bool) -> None:
    store = files.open()
    settle_all(store, ["kept", "released"], "q")
    if flushed:
        files.flush()
    run(store.release("released", "d"))  # not its value: nothing happens
    assert run(store.get("released")) == "q"
    run(store.release("released", "q"))
    assert run(store.get("released")) is None
    # Durable at once (the homeserver is told to retry), not with the next group commit.
    with sqlite3.connect(files.path) as db:
        assert db.execute("SELECT count(*) FROM dedup_log WHERE k = 'released' AND v = ''").fetchone()[0] == 1
    store = files.open()
    assert run(store.get("released")) is None and run(store.get("kept")) == "q"
    # A later settle of the same key wins over the tombstone.
    run(store.settle("released", "d", WINDOW))
    store = files.open()
    assert run(store.get("released")) == "d"


def test_records_beyond_the_memory_bound_still_deduplicate(files: Files) -> None:
    store = files.open(mirror_max=50)
    all_keys = keys(400)
    settle_all(store, all_keys)
    assert store.in_memory <= 50
    assert existing(store, all_keys) == ["d"] * 400
    files.flush()
    assert files.rows("dedup") >= 350 and files.rows("dedup_log") == 400
    # After a restart with the same bound, and with a larger one (everything fits in memory again).
    store = files.open(mirror_max=50)
    assert store.in_memory <= 50 and existing(store, all_keys) == ["d"] * 400
    store = files.open(mirror_max=1000)
    assert store.in_memory == 400 and existing(store, all_keys) == ["d"] * 400
    files.flush()
    assert files.rows("dedup") == 0


def test_overflow_evicts_the_earliest_expiring_records(files: Files) -> None:
    store = files.open(mirror_max=20)
    for i, k in enumerate(keys(40)):
        run(store.settle(k, "d", WINDOW + i))
    files.flush()
    with sqlite3.connect(files.path) as db:
        spilled = {k for (k,) in db.execute("SELECT k FROM dedup")}
    assert spilled and spilled <= set(keys(20))
    assert existing(store, keys(40)) == ["d"] * 40


def test_a_spilled_record_released_stays_released_after_restarts(files: Files) -> None:
    store = files.open(mirror_max=10)
    settle_all(store, ["first", "again", "gone"], "q")
    files.flush()
    run(store.release("again", "q"))  # released and settled again: the last write wins
    run(store.release("gone", "q"))
    files.flush()
    run(store.settle("again", "d", WINDOW))
    files.now += 1
    settle_all(store, keys(30))
    files.flush()
    assert files.rows("dedup") > 0 and store.in_memory <= 10
    run(store.release("first", "q"))
    assert run(store.get("first")) is None
    # "first": the record is in the part of the log copied to `dedup`, its tombstone in the part replayed
    # into memory; "again" and "gone" were settled and released within the copied part.
    store = files.open(mirror_max=10)
    assert run(store.get("first")) is None and run(store.get("again")) == "d" and run(store.get("gone")) is None
    store = files.open(mirror_max=1000)
    assert run(store.get("first")) is None and run(store.get("again")) == "d" and run(store.get("gone")) is None
    assert existing(store, keys(30)) == ["d"] * 30


def test_sweep_deletes_expired_log_rows_and_spilled_records(files: Files) -> None:
    store = files.open(mirror_max=30)
    settle_all(store, keys(100, "old"), "q")
    files.flush()
    run(store.release("old00099", "q"))
    files.flush()
    assert files.rows("dedup_log") == 101 and files.rows("dedup") > 0
    files.now += WINDOW + 1
    settle_all(store, keys(10, "new"))
    files.flush()
    run(store.sweep(files.now))
    assert files.rows("dedup_log") == 10 and files.rows("dedup") == 0
    assert existing(store, keys(100, "old")) == [None] * 100
    assert existing(store, keys(10, "new")) == ["d"] * 10
    files.now += WINDOW + 1
    run(store.sweep(files.now))
    assert files.rows("dedup_log") == 0


OLD_SCHEMA = """
CREATE TABLE dedup(k TEXT PRIMARY KEY, v TEXT NOT NULL, exp REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX dedup_exp ON dedup(exp);
CREATE TABLE rejected(k TEXT PRIMARY KEY, v TEXT NOT NULL, exp REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX rejected_exp ON rejected(exp);
CREATE TABLE queue(id TEXT PRIMARY KEY, entry BLOB NOT NULL, created REAL NOT NULL,
                   due REAL NOT NULL, leased INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX queue_due ON queue(due);
CREATE INDEX queue_created ON queue(created);
"""


def old_format_file(files: Files, n: int) -> None:
    """A database as an earlier version wrote it: settled records only in the `dedup` table."""
    files.path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(files.path) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany("INSERT INTO dedup(k, v, exp) VALUES (?, ?, ?)",
                       [(k, "d", files.now + WINDOW) for k in keys(n)] + [("expired", "d", files.now - 1)])
    db.close()


def test_an_old_format_database_still_deduplicates_after_the_upgrade(files: Files) -> None:
    old_format_file(files, 100)
    store = files.open(mirror_max=1000)
    assert existing(store, keys(100)) == ["d"] * 100 and run(store.get("expired")) is None
    files.flush()
    assert files.rows("dedup") == 0 and files.rows("dedup_log") == 100  # moved into the log
    store = files.open(mirror_max=1000)
    assert existing(store, keys(100)) == ["d"] * 100


def test_an_old_format_database_larger_than_memory_still_deduplicates(files: Files) -> None:
    old_format_file(files, 100)
    store = files.open(mirror_max=40)
    assert store.in_memory == 0 and existing(store, keys(100)) == ["d"] * 100
    run(store.release("k00007", "d"))
    store = files.open(mirror_max=40)
    assert run(store.get("k00007")) is None and existing(store, keys(7)) == ["d"] * 7


def test_expiring_dict_evicts_the_earliest_expiring_items() -> None:
    now = [0.0]
    d = ExpiringDict(lambda: now[0])
    for i in range(10):
        d.set(f"k{i}", "v", 100 - i)
    d.set("k9", "v", 500)  # re-set: its earlier expiry is stale
    evicted = d.evict(keep=6)
    assert [k for k, _, _ in evicted] == ["k8", "k7", "k6", "k5"]
    assert all(exp == 100 - int(k[1:]) for k, _, exp in evicted)
    assert len(d.items) == 6 and "k9" in d.items


GatewayFactory = Callable[..., GatewayProcess]


@pytest.mark.parametrize("durable_harness", ["sqlite"], indirect=True)
def test_many_settled_events_deduplicate_after_sigkill_and_restart(durable_harness: Harness,
                                                                  gateway_factory: GatewayFactory) -> None:
    h = durable_harness
    gw = gateway_factory(h.config())
    events = [f"$e{i}" for i in range(40)]
    for event in events:
        assert gw.notify(notification("pk-many", event)).status == 200
    assert len(h.delivered("pk-many")) == 40
    db_path = h.state["path"]

    def logged() -> bool:
        with sqlite3.connect(db_path) as db:
            return bool(db.execute("SELECT count(*) FROM dedup_log").fetchone()[0] == 40)

    eventually(logged, "the group commit of the de-duplication records")
    gw.signal(signal.SIGKILL)
    gw.wait()
    restarted = gateway_factory(h.config())
    for event in events:
        assert restarted.notify(notification("pk-many", event)).status == 200
    assert len(h.delivered("pk-many")) == 40
    assert restarted.notify(notification("pk-many", "$new")).status == 200
    assert len(h.delivered("pk-many")) == 41
