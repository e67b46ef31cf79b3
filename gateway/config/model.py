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
class GatewayConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    proxy: str | None = None
    apps: tuple[AppConfig, ...] = ()
    debug: bool = False
    #: Parsed by `timinfo.parse_config`; None when the section is absent.
    tim_information: Any = None
    #: `gateway.tracing.TracingConfig`; None means tracing off.
    tracing: Any = None
    source: str = ""
