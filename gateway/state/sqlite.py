"""Embedded state in one SQLite file (stdlib `sqlite3`), for a single gateway instance.

Runs on the reactor thread on purpose. Measured on this project's bench machine, a primary-key lookup costs
~4 µs and a write inside an open transaction ~2 µs, while a thread hand-off (`deferToThread`) costs more
CPU than the statement itself and adds latency. What is expensive is the commit (~15 µs), so writes
are group-committed: the first write opens a transaction that commits `COMMIT_DELAY_S` later, together
with everything written meanwhile. Writes that must be durable before we answer the homeserver (a queue
entry behind a 200, the removal or rescheduling of a queue entry, the release of a settled de-duplication
record) commit at once; a crash can lose only the last few milliseconds of de-duplication and rejection
records, never a queued push.
`bench/guarantees_cost.py` and `bench/guarantees_inprocess.py` show the total cost on the notify path.

WAL with ``synchronous=NORMAL`` survives a killed process (the OS keeps the written pages); set
``sqlite_synchronous: full`` to also survive power loss at the cost of an fsync per commit. An
exclusive lock file keeps a second process off the same database: the queue leases assume one owner.
``secure_delete`` overwrites deleted rows, and the periodic sweep truncates the WAL, so a delivered or
expired push's content does not linger in the file. On start, leases left by a crashed predecessor are
released so its queue resumes at once.

Because the lock makes this process the file's only user, most reads need no SQL at all: pending
claims live in memory (they are meaningless after a restart, when their sender is gone), and the
rejections and settled de-duplication records are kept in memory (loaded at start, written through).

Settled de-duplication records are *appended* to `dedup_log`, a plain rowid table without an index, with one
`executemany` per group commit; the in-memory mirror is the lookup structure. The reason is the cost of
writing: a table keyed by the (random) record hash dirties about one 4 KiB B-tree page per row, and every
commit copies those pages to the WAL. Measured on the bench machine with 50-row batches into a 70k-row
table: 15 µs CPU per row keyed by hash with an expiry index, 1.5 µs per row appended. Appending keeps the
rows in time order, so the sweep deletes expired rows as one rowid range. The log is replayed at start in
rowid order (the last write of a key wins); releasing a settled record appends a tombstone (an empty value)
so that a restart does not bring it back.

Memory is bounded without shortening the window: above ``mirror_max`` records
(``state.sqlite_memory_records``) the earliest-expiring ones move from memory to the `dedup` table (keyed
by hash, indexed by expiry), and only then does a lookup that misses the mirror ask SQLite. The same holds at start when the log is longer than that, or when
`dedup` still holds records written by an older version of the gateway (those are moved into the log and
memory when they fit). A new event therefore costs two dict operations and a share of one batched append.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.state.base import LocalStore
from gateway.state.memory import ExpiringDict
from gateway.state.records import QueueEntry, Rejection

log = logging.getLogger("gateway.state.sqlite")

SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_log(k TEXT NOT NULL, v TEXT NOT NULL, exp REAL NOT NULL);
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
#: Dedup records kept in memory at most by default (about 270 bytes each, so ~270 MB at the bound; 1 h of
#: ~280 pushes/s); the earliest-expiring rest is in `dedup`. Set by ``state.sqlite_memory_records``.
MIRROR_MAX = 1_000_000
#: The value of a `dedup_log` row that deletes its key (settled values are never empty).
TOMBSTONE = ""

_ON_CONFLICT_REPLACE = " ON CONFLICT(k) DO UPDATE SET v = excluded.v, exp = excluded.exp"
_UPSERT_DEDUP = "INSERT INTO dedup(k, v, exp) VALUES (?, ?, ?)" + _ON_CONFLICT_REPLACE
_APPEND_LOG = "INSERT INTO dedup_log(k, v, exp) VALUES (?, ?, ?)"
_SPILL_WARNING = "more than %d de-duplication records in the window: the oldest are read from SQLite"
#: The last `dedup_log` row of every key written before a given rowid.
_LATEST_BEFORE = ("SELECT k, v, exp FROM dedup_log WHERE rowid IN "
                  "(SELECT max(rowid) FROM dedup_log WHERE rowid < ? GROUP BY k)")


class StateFileError(Exception):
    """The database cannot be opened or is in use by another process."""


class SqliteStore(LocalStore):
    def __init__(self, path: str, reactor: Any, synchronous: str = "normal",
                 clock: Callable[[], float] = time.time, mirror_max: int = MIRROR_MAX) -> None:
        self.path = path
        self.reactor = reactor
        self.synchronous = synchronous
        self.clock = clock
        self.mirror_max = mirror_max
        self.db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._in_txn = False
        self._commit_call: Any = None
        self._claims = ExpiringDict(clock)
        self._rejected = ExpiringDict(clock)
        #: `dedup_log` rows not yet written (value, expiry), appended with one executemany per group commit,
        #: which costs far less per record than one INSERT statement per push.
        self._pending: dict[str, tuple[str, float]] = {}
        #: The unexpired settled dedup records, except those spilled to the `dedup` table.
        self._mirror = ExpiringDict(clock)
        #: True while the `dedup` table may hold records: only then does a mirror miss need a SELECT.
        self._spilled = False

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
        self._write("DELETE FROM dedup WHERE exp <= ?", (now,))
        self._sweep_log(now)
        self._commit()
        for k, v, exp in self.db.execute("SELECT k, v, exp FROM rejected WHERE exp > ?", (now,)):
            self._rejected.set_until(k, v, exp)
        self._load_dedup(now)
        self._commit()

    def _load_dedup(self, now: float) -> None:
        """Replay `dedup_log` into memory; what does not fit goes to (or stays in) the `dedup` table."""
        assert self.db is not None
        count = self._one("SELECT count(*) FROM dedup_log", ())[0]
        split = 0
        if count > self.mirror_max:
            # Only the newest `mirror_max` rows are replayed into memory; the latest state of every key
            # before them is copied to `dedup` (idempotent, so a restart repeats it harmlessly).
            split = self._one("SELECT rowid FROM dedup_log ORDER BY rowid LIMIT 1 OFFSET ?",
                              (count - self.mirror_max,))[0]
            self._write(f"DELETE FROM dedup WHERE k IN (SELECT k FROM ({_LATEST_BEFORE}) WHERE v = ?)",
                        (split, TOMBSTONE))
            self._write(f"INSERT INTO dedup(k, v, exp) SELECT k, v, exp FROM ({_LATEST_BEFORE}) "
                        f"WHERE v != ? AND exp > ?{_ON_CONFLICT_REPLACE}", (split, TOMBSTONE, now))
            log.warning(_SPILL_WARNING, self.mirror_max)
        mirror = self._mirror
        released: list[tuple[str]] = []
        for k, v, exp in self.db.execute("SELECT k, v, exp FROM dedup_log WHERE rowid >= ? ORDER BY rowid",
                                         (split,)):
            if v != TOMBSTONE and exp > now:
                mirror.set_until(k, v, exp)
            else:
                mirror.delete(k)
                if v == TOMBSTONE:
                    released.append((k,))
        self._write_many("DELETE FROM dedup WHERE k = ?", released)
        in_sql = self._one("SELECT count(*) FROM dedup", ())[0]
        if in_sql and not split and in_sql + len(mirror.items) <= self.mirror_max:
            # Records in `dedup` that the log does not supersede (written by an older version, or spilled
            # by an earlier run): they fit in memory, so move them into the log and the mirror.
            rows = [(k, v, exp) for k, v, exp in self.db.execute("SELECT k, v, exp FROM dedup ORDER BY exp")
                    if k not in mirror.items]
            self._write_many(_APPEND_LOG, rows)
            self._write("DELETE FROM dedup", ())
            for k, v, exp in rows:
                mirror.set_until(k, v, exp)
            in_sql = 0
        self._spilled = in_sql > 0

    @property
    def in_memory(self) -> int:
        """Settled de-duplication records held in memory (at most `mirror_max`)."""
        return len(self._mirror.items)

    async def close(self) -> None:
        if self.db is not None:
            self._commit()
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- transactions ------------------------------------------------------------------------------

    def _begin(self) -> sqlite3.Connection:
        """The connection inside an open transaction, whose group commit is scheduled."""
        db = self._open_txn()
        self._schedule_commit()
        return db

    def _open_txn(self) -> sqlite3.Connection:
        assert self.db is not None, "state store is closed"
        if not self._in_txn:
            self.db.execute("BEGIN")
            self._in_txn = True
        return self.db

    def _schedule_commit(self) -> None:
        if self._commit_call is None:
            self._commit_call = self.reactor.callLater(COMMIT_DELAY_S, self._commit)

    def _write(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        return self._begin().execute(sql, args)

    def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._begin().executemany(sql, rows)

    def _commit(self) -> None:
        if self._commit_call is not None and self._commit_call.active():
            self._commit_call.cancel()
        self._commit_call = None
        if self.db is None:
            return
        if self._pending:
            rows = [(k, v, exp) for k, (v, exp) in self._pending.items()]
            self._pending.clear()
            self._open_txn().executemany(_APPEND_LOG, rows)
        if self._in_txn:
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
        value = self._mirror.get(dedup_key)
        if value is not None or not self._spilled:
            return value
        row = self._one("SELECT v FROM dedup WHERE k = ? AND exp > ?", (dedup_key, self.clock()))
        return row[0] if row is not None else None

    async def get(self, dedup_key: str) -> str | None:
        return self._get(dedup_key)

    async def settle(self, dedup_key: str, value: str, ttl_s: float) -> None:
        self._claims.delete(dedup_key)
        expires = self.clock() + ttl_s
        self._pending[dedup_key] = (value, expires)
        mirror = self._mirror
        mirror.set_until(dedup_key, value, expires)
        if len(mirror.items) > self.mirror_max:
            self._spill()
        self._schedule_commit()

    def _spill(self) -> None:
        """Keep the mirror within `mirror_max` by moving its earliest-expiring records to `dedup`, a batch at
        a time (each row costs a random-page write, so the batch is small enough not to stall the reactor)."""
        mirror = self._mirror
        mirror.sweep(self.clock())
        if len(mirror.items) <= self.mirror_max:
            return
        if not self._spilled:
            log.warning(_SPILL_WARNING, self.mirror_max)
            self._spilled = True
        self._write_many(_UPSERT_DEDUP, mirror.evict(self.mirror_max - max(1, self.mirror_max // 256)))

    async def release(self, dedup_key: str, claim: str) -> None:
        if self._claims.get(dedup_key) == claim:
            self._claims.delete(dedup_key)
            return
        now = self.clock()
        item = self._mirror.items.get(dedup_key)
        if item is None and self._spilled:
            item = self._one("SELECT v, exp FROM dedup WHERE k = ?", (dedup_key,))
        if item is None or item[0] != claim or item[1] <= now:
            return
        self._mirror.delete(dedup_key)
        if self._spilled:
            self._write("DELETE FROM dedup WHERE k = ?", (dedup_key,))
        # The tombstone lives as long as the record it cancels, so a restart cannot replay the record alone.
        # It commits at once: a released "queued" record means nothing was queued and the homeserver is told
        # to retry, and a crash must not bring the record back to swallow that retry.
        self._pending[dedup_key] = (TOMBSTONE, item[1])
        self._commit()

    async def remember_rejection(self, rejection_key: str, rejection: Rejection, ttl_s: float) -> None:
        value, expires = rejection.encode(), self.clock() + ttl_s
        self._rejected.set_until(rejection_key, value, expires)
        self._write("INSERT OR REPLACE INTO rejected(k, v, exp) VALUES (?, ?, ?)", (rejection_key, value, expires))

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
        self._mirror.sweep(now)
        self._sweep_log(now)
        self._write("DELETE FROM dedup WHERE exp <= ?", (now,))
        self._write("DELETE FROM rejected WHERE exp <= ?", (now,))
        if self._spilled and self._one("SELECT 1 FROM dedup LIMIT 1", ()) is None:
            self._spilled = False
        self._commit()
        assert self.db is not None
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _sweep_log(self, now: float) -> None:
        """Delete the expired rows at the start of `dedup_log`: it is appended in time order, so this is one
        rowid range, found by scanning from the start, instead of a scan of the whole table. Any row it
        deletes was written before the first unexpired row, so a tombstone goes only together with the
        record it cancels."""
        first = self._one("SELECT rowid FROM dedup_log WHERE exp > ? ORDER BY rowid LIMIT 1", (now,))
        if first is None:
            self._write("DELETE FROM dedup_log", ())
        else:
            self._write("DELETE FROM dedup_log WHERE rowid < ?", (first[0],))
