"""Embedded state in one SQLite file (stdlib `sqlite3`), for a single gateway instance.

Runs on the reactor thread on purpose. Measured on this project's bench machine, a primary-key lookup costs
~4 µs and a write inside an open transaction ~2 µs, while a thread hand-off (`deferToThread`) costs more
CPU than the statement itself and adds latency. What is expensive is the commit (~15 µs), so writes
are batched: the first write of a reactor turn opens a transaction and a `callLater(0)` commits it at
the end of the turn. Writes that must be durable before we answer the homeserver (a queue entry behind
a 200, the removal of a delivered entry) commit at once. `bench/guarantees_cost.py` shows the total
cost on the notify path.

WAL with ``synchronous=NORMAL`` survives a killed process (the OS keeps the written pages); set
``sqlite_synchronous: full`` to also survive power loss at the cost of an fsync per commit. An
exclusive lock file keeps a second process off the same database: the queue leases assume one owner.
``secure_delete`` overwrites deleted rows, and the periodic sweep truncates the WAL, so a delivered or
expired push's content does not linger in the file. On start, leases and pending claims left by a crashed predecessor are released so its queue resumes
at once.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.state.base import Check, StateStore
from gateway.state.records import PENDING, QueueEntry, Rejection

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

_CLAIM = ("INSERT INTO dedup(k, v, exp) VALUES (?, ?, ?) "
          "ON CONFLICT(k) DO UPDATE SET v = excluded.v, exp = excluded.exp WHERE dedup.exp <= ?")


class StateFileError(Exception):
    """The database cannot be opened or is in use by another process."""


class SqliteStore(StateStore):
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
        self._write("DELETE FROM dedup WHERE v LIKE ?", (PENDING + "%",))
        self._commit()

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
            self._commit_call = self.reactor.callLater(0, self._commit)
        return self.db.execute(sql, args)

    def _commit(self) -> None:
        if self._commit_call is not None and self._commit_call.active():
            self._commit_call.cancel()
        self._commit_call = None
        if self._in_txn and self.db is not None:
            self._in_txn = False
            self.db.execute("COMMIT")

    def _one(self, sql: str, args: Sequence[Any]) -> Any:
        assert self.db is not None, "state store is closed"
        return self.db.execute(sql, args).fetchone()

    # --- de-duplication and rejections -------------------------------------------------------------

    async def check(self, rejection_key: str, dedup_key: str | None, claim: str, lease_s: float) -> Check:
        now = self.clock()
        row = self._one("SELECT v FROM rejected WHERE k = ? AND exp > ?", (rejection_key, now))
        if row is not None:
            return Check(rejection=Rejection.decode(row[0]))
        if dedup_key is None:
            return Check()
        return Check(existing=self._claim(dedup_key, claim, lease_s, now))

    async def claim(self, dedup_key: str, claim: str, lease_s: float) -> str | None:
        return self._claim(dedup_key, claim, lease_s, self.clock())

    def _claim(self, dedup_key: str, claim: str, lease_s: float, now: float) -> str | None:
        if self._write(_CLAIM, (dedup_key, claim, now + lease_s, now)).rowcount == 1:
            return None
        row = self._one("SELECT v FROM dedup WHERE k = ?", (dedup_key,))
        return row[0] if row is not None else None

    async def get(self, dedup_key: str) -> str | None:
        row = self._one("SELECT v FROM dedup WHERE k = ? AND exp > ?", (dedup_key, self.clock()))
        return row[0] if row is not None else None

    async def settle(self, dedup_key: str, value: str, ttl_s: float) -> None:
        self._write("INSERT OR REPLACE INTO dedup(k, v, exp) VALUES (?, ?, ?)",
                    (dedup_key, value, self.clock() + ttl_s))

    async def release(self, dedup_key: str, claim: str) -> None:
        self._write("DELETE FROM dedup WHERE k = ? AND v = ?", (dedup_key, claim))

    async def remember_rejection(self, rejection_key: str, rejection: Rejection, ttl_s: float) -> None:
        self._write("INSERT OR REPLACE INTO rejected(k, v, exp) VALUES (?, ?, ?)",
                    (rejection_key, rejection.encode(), self.clock() + ttl_s))

    async def forget_rejection(self, rejection_key: str) -> None:
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
        self._write("DELETE FROM dedup WHERE exp <= ?", (now,))
        self._write("DELETE FROM rejected WHERE exp <= ?", (now,))
        self._commit()
        assert self.db is not None
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
