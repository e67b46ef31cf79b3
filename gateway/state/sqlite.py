"""Embedded state in one SQLite file (stdlib `sqlite3`), for a single gateway instance.

Runs on the reactor thread on purpose. Measured on this project's bench machine, a primary-key lookup costs
~4 µs and a write inside an open transaction ~2 µs, while a thread hand-off (`deferToThread`) costs more
CPU than the statement itself and adds latency. What is expensive is the commit (~15 µs), so writes
are group-committed: the first write opens a transaction that commits `COMMIT_DELAY_S` later, together
with everything written meanwhile. Writes that must be durable before we answer the homeserver (a queue
entry behind a 200, the removal or rescheduling of a queue entry) commit at once; a crash can lose only
the last few milliseconds of de-duplication and rejection records, never a queued push.
`bench/guarantees_cost.py` shows the total cost on the notify path.

WAL with ``synchronous=NORMAL`` survives a killed process (the OS keeps the written pages); set
``sqlite_synchronous: full`` to also survive power loss at the cost of an fsync per commit. An
exclusive lock file keeps a second process off the same database: the queue leases assume one owner.
``secure_delete`` overwrites deleted rows, and the periodic sweep truncates the WAL, so a delivered or
expired push's content does not linger in the file. On start, leases left by a crashed predecessor are released so its queue resumes at once.

Because the lock makes this process the file's only user, most reads need no SQL at all: pending
claims live in memory (they are meaningless after a restart, when their sender is gone), and the
rejections and settled de-duplication records are mirrored in memory (loaded at start, written through;
the dedup mirror is dropped in favour of SQL lookups if the window holds more than `MIRROR_MAX` records).
Settled records are written with one `executemany` per group commit. A new event therefore costs two
dict operations and a share of one batched write.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.state.base import LocalStore
from gateway.state.memory import ExpiringDict
from gateway.state.records import QueueEntry, Rejection

log = logging.getLogger("gateway.state.sqlite")

SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup(k TEXT PRIMARY KEY, v TEXT NOT NULL, exp REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_exp ON dedup(exp);
CREATE TABLE IF NOT EXISTS rejected(k TEXT PRIMARY KEY, v TEXT NOT NULL, exp REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rejected_exp ON rejected(exp);
CREATE TABLE IF NOT EXISTS queue(id TEXT PRIMARY KEY, entry BLOB NOT NULL, created REAL NOT NULL,
                                 due REAL NOT NULL, leased INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queue_due ON queue(due);
CREATE INDEX IF NOT EXISTS queue_created ON queue(created);
"""


#: Group-commit window for de-duplication and rejection records.
COMMIT_DELAY_S = 0.05
#: Dedup records mirrored in memory at most (about 400 bytes each).
MIRROR_MAX = 200_000


class StateFileError(Exception):
    """The database cannot be opened or is in use by another process."""


class SqliteStore(LocalStore):
    def __init__(self, path: str, reactor: Any, synchronous: str = "normal",
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.reactor = reactor
        self.synchronous = synchronous
        self.clock = clock
        self.db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._in_txn = False
        self._commit_call: Any = None
        self._claims = ExpiringDict(clock)
        self._rejected = ExpiringDict(clock)
        #: Settled dedup records not yet written: flushed with one executemany per group commit, which
        #: costs far less per record than one INSERT statement per push.
        self._settled: dict[str, tuple[str, float]] = {}
        #: All unexpired dedup records, in memory, so the common case (a new event) needs no SELECT.
        #: If the window holds more than MIRROR_MAX records the mirror is dropped and reads go to SQLite.
        self._mirror: ExpiringDict | None = ExpiringDict(clock)

    async def start(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._lock_fd = os.open(self.path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as e:
            raise StateFileError(f"cannot create {self.path}: {e}") from e
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StateFileError(f"{self.path} is in use by another gateway process; several instances need "
                                 "backend: redis") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}")
            self.db.execute("PRAGMA secure_delete=ON")
            self.db.executescript(SCHEMA)
            os.chmod(self.path, 0o600)
        except (sqlite3.Error, OSError) as e:
            raise StateFileError(f"cannot open {self.path}: {e}") from e
        now = self.clock()
        # We hold the lock, so every lease and pending claim belongs to a process that is gone.
        self._write("UPDATE queue SET due = ?, leased = 0 WHERE leased = 1", (now,))
        self._commit()
        for k, v, exp in self.db.execute("SELECT k, v, exp FROM rejected WHERE exp > ?", (now,)):
            self._rejected.set(k, v, exp - now)
        count = self._one("SELECT count(*) FROM dedup WHERE exp > ?", (now,))[0]
        if count > MIRROR_MAX:
            self._mirror = None
        else:
            for k, v, exp in self.db.execute("SELECT k, v, exp FROM dedup WHERE exp > ?", (now,)):
                self._mirror.set(k, v, exp - now)  # type: ignore[union-attr]

    async def close(self) -> None:
        if self.db is not None:
            self._commit()
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- transactions ------------------------------------------------------------------------------

    def _write(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        assert self.db is not None, "state store is closed"
        if not self._in_txn:
            self.db.execute("BEGIN")
            self._in_txn = True
        if self._commit_call is None:
            self._commit_call = self.reactor.callLater(COMMIT_DELAY_S, self._commit)
        return self.db.execute(sql, args)

    def _commit(self) -> None:
        if self._commit_call is not None and self._commit_call.active():
            self._commit_call.cancel()
        self._commit_call = None
        if self._settled and self.db is not None:
            rows = [(k, v, exp) for k, (v, exp) in self._settled.items()]
            self._settled.clear()
            if not self._in_txn:
                self.db.execute("BEGIN")
                self._in_txn = True
            self.db.executemany("INSERT INTO dedup(k, v, exp) VALUES (?, ?, ?) "
                                "ON CONFLICT(k) DO UPDATE SET v = excluded.v, exp = excluded.exp", rows)
        if self._in_txn and self.db is not None:
            self._in_txn = False
            self.db.execute("COMMIT")

    def _one(self, sql: str, args: Sequence[Any]) -> Any:
        assert self.db is not None, "state store is closed"
        return self.db.execute(sql, args).fetchone()

    # --- de-duplication and rejections -------------------------------------------------------------

    def _rejection(self, rejection_key: str) -> str | None:
        return self._rejected.get(rejection_key)

    def _claim(self, dedup_key: str, claim: str, lease_s: float) -> str | None:
        existing = self._get(dedup_key)
        if existing is None:
            self._claims.set(dedup_key, claim, lease_s)
        return existing

    def _get(self, dedup_key: str) -> str | None:
        pending = self._claims.get(dedup_key)
        if pending is not None:
            return pending
        if self._mirror is not None:
            return self._mirror.get(dedup_key)
        settled = self._settled.get(dedup_key)
        if settled is not None and settled[1] > self.clock():
            return settled[0]
        row = self._one("SELECT v FROM dedup WHERE k = ? AND exp > ?", (dedup_key, self.clock()))
        return row[0] if row is not None else None

    async def get(self, dedup_key: str) -> str | None:
        return self._get(dedup_key)

    async def settle(self, dedup_key: str, value: str, ttl_s: float) -> None:
        self._claims.delete(dedup_key)
        self._settled[dedup_key] = (value, self.clock() + ttl_s)
        mirror = self._mirror
        if mirror is not None:
            mirror.set(dedup_key, value, ttl_s)
            if len(mirror.items) > MIRROR_MAX:
                mirror.sweep(self.clock())
                if len(mirror.items) > MIRROR_MAX:
                    log.warning("more than %d de-duplication records in the window: reading them from SQLite",
                                MIRROR_MAX)
                    self._mirror = None
        if self._commit_call is None:
            self._commit_call = self.reactor.callLater(COMMIT_DELAY_S, self._commit)

    async def release(self, dedup_key: str, claim: str) -> None:
        if self._claims.get(dedup_key) == claim:
            self._claims.delete(dedup_key)
        elif self._settled.get(dedup_key, ("",))[0] == claim:
            del self._settled[dedup_key]
            if self._mirror is not None:
                self._mirror.delete(dedup_key)
        else:
            if self._mirror is not None and self._mirror.get(dedup_key) == claim:
                self._mirror.delete(dedup_key)
            self._write("DELETE FROM dedup WHERE k = ? AND v = ?", (dedup_key, claim))

    async def remember_rejection(self, rejection_key: str, rejection: Rejection, ttl_s: float) -> None:
        self._rejected.set(rejection_key, rejection.encode(), ttl_s)
        self._write("INSERT OR REPLACE INTO rejected(k, v, exp) VALUES (?, ?, ?)",
                    (rejection_key, rejection.encode(), self.clock() + ttl_s))

    async def forget_rejection(self, rejection_key: str) -> None:
        self._rejected.delete(rejection_key)
        self._write("DELETE FROM rejected WHERE k = ?", (rejection_key,))

    # --- retry queue -------------------------------------------------------------------------------

    async def enqueue(self, entry: QueueEntry, due: float, leased: bool = False) -> None:
        self._write("INSERT OR REPLACE INTO queue(id, entry, created, due, leased) VALUES (?, ?, ?, ?, ?)",
                    (entry.id, entry.encode(), entry.created, due, int(leased)))
        self._commit()

    async def take_due(self, now: float, limit: int, lease_until: float) -> list[QueueEntry]:
        assert self.db is not None, "state store is closed"
        rows = self.db.execute("SELECT id, entry FROM queue WHERE due <= ? ORDER BY due LIMIT ?",
                               (now, limit)).fetchall()
        for entry_id, _ in rows:
            self._write("UPDATE queue SET due = ?, leased = 1 WHERE id = ?", (lease_until, entry_id))
        return [QueueEntry.decode(raw) for _, raw in rows]

    async def renew(self, ids: Sequence[str], lease_until: float) -> None:
        for entry_id in ids:
            self._write("UPDATE queue SET due = ? WHERE id = ? AND leased = 1", (lease_until, entry_id))

    async def reschedule(self, entry: QueueEntry, due: float) -> None:
        self._write("UPDATE queue SET entry = ?, due = ?, leased = 0 WHERE id = ?", (entry.encode(), due, entry.id))
        self._commit()

    async def remove(self, entry_id: str) -> None:
        self._write("DELETE FROM queue WHERE id = ?", (entry_id,))
        self._commit()

    async def queue_stats(self) -> tuple[int, float | None]:
        count, oldest = self._one("SELECT count(*), min(created) FROM queue", ())
        return count, oldest

    async def sweep(self, now: float) -> None:
        self._claims.sweep(now)
        self._rejected.sweep(now)
        if self._mirror is not None:
            self._mirror.sweep(now)
        self._write("DELETE FROM dedup WHERE exp <= ?", (now,))
        self._write("DELETE FROM rejected WHERE exp <= ?", (now,))
        self._commit()
        assert self.db is not None
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
