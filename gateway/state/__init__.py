"""State backends behind one interface (`StateStore`): ``memory``, ``sqlite``, ``redis``.

Backends are imported lazily so a memory-backed gateway never imports sqlite3 or redis.
"""

from __future__ import annotations

from typing import Any

from gateway.config.model import StateConfig
from gateway.state.base import Check, StateStore
from gateway.state.records import QueueEntry, Rejection


def open_store(cfg: StateConfig, reactor: Any) -> StateStore:
    """The configured backend, not yet started (call `await store.start()`)."""
    if cfg.backend == "sqlite":
        from gateway.state.sqlite import SqliteStore

        assert cfg.path is not None
        return SqliteStore(cfg.path, reactor, synchronous=cfg.sqlite_synchronous,
                           mirror_max=cfg.sqlite_memory_records)
    if cfg.backend == "redis":
        from gateway.state.redis import RedisStore

        assert cfg.redis_url is not None
        return RedisStore(cfg.redis_url, cfg.key_prefix)
    from gateway.state.memory import MemoryStore

    return MemoryStore()


__all__ = ["Check", "QueueEntry", "Rejection", "StateStore", "open_store"]
