"""The parsed configuration: frozen dataclasses, built once by `gateway.config.load`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServerConfig:
    bind: tuple[str, ...] = ("127.0.0.1",)
    port: int = 5000
    max_body_bytes: int = 262144
    #: The notify response is sent within this many seconds, however slow a provider is.
    request_timeout_s: float = 10.0
    #: On SIGTERM/SIGINT, in-flight requests get this long to finish before the process exits.
    shutdown_grace_s: float = 15.0
    #: Idle keep-alive connections (and clients that stall mid-request) are closed after this.
    idle_timeout_s: float = 60.0
    backlog: int = 1024
    #: Allocations between young garbage collections (CPython: 700); see gateway/gctune.py.
    gc_threshold: int = 20_000


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"
    access_log: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    #: Serve /metrics on a separate listener when set; None means the main listener.
    bind: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class AppConfig:
    app_id: str
    type: str
    #: Devices of this app being dispatched at once before new requests get 429.
    inflight_request_limit: int = 512
    #: TI-M mode: never send message content, sender or room names to the provider.
    tim_content_free: bool = False
    #: The pushkin's own frozen options (its `parse_config` result).
    options: Any = None


@dataclass(frozen=True)
class StateConfig:
    """Delivery guarantees: de-duplication, remembered rejections, the durable retry queue (docs/delivery-guarantees.md)."""

    #: memory (in-process, lost on restart) | sqlite (one instance) | redis (shared by many instances).
    backend: str = "memory"
    #: SQLite database file (backend sqlite).
    path: str | None = None
    #: normal survives a killed process; full also survives power loss (fsync per commit).
    sqlite_synchronous: str = "normal"
    #: De-duplication records the sqlite backend keeps in memory (~270 bytes each); older ones in the
    #: window are looked up in the database file, at several times the CPU per push.
    sqlite_memory_records: int = 1_000_000
    #: redis:// or rediss:// URL (backend redis); may come from redis_url_file or ${ENV}.
    redis_url: str | None = None
    key_prefix: str = "tim-push:"
    #: A notification for the same (app_id, pushkey, event_id) within this window is not sent again.
    dedup_window_s: float = 3600.0
    #: A pushkey the provider rejected is answered "rejected" without sending for this long.
    rejection_ttl_s: float = 7 * 86400.0
    #: Hand devices still sending at the request deadline, or failing temporarily, to the retry queue and
    #: answer 200 (else 503, so the homeserver retries). Default: on for sqlite/redis, off for memory,
    #: whose queue would not survive a restart (the homeserver's own retry is more durable then).
    retry_queue: bool = True
    #: Queued pushes are retried for at most this long after the notification arrived, then dropped.
    max_retry_age_s: float = 86400.0
    retry_backoff_base_s: float = 5.0
    retry_backoff_max_s: float = 900.0
    #: Queue retries sent at once (process-wide); they also use at most half of each app's in-flight limit.
    retry_concurrency: int = 32
    retry_poll_interval_s: float = 1.0
    #: A queue entry being sent is leased for this long (renewed while the send runs); after a crash the
    #: entry is retried once the lease lapses (immediately with sqlite, which has a single owner).
    retry_lease_s: float = 60.0


@dataclass(frozen=True)
class GatewayConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    proxy: str | None = None
    apps: tuple[AppConfig, ...] = ()
    debug: bool = False
    #: Parsed by `timinfo.parse_config`; None when the section is absent.
    tim_information: Any = None
    #: `gateway.tracing.TracingConfig`; None means tracing off.
    tracing: Any = None
    source: str = ""
