"""Load and validate the YAML config file into a `GatewayConfig`, once, before anything listens."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import yaml

import timinfo
from gateway.config.model import (AppConfig, GatewayConfig, LoggingConfig, MetricsConfig, ServerConfig,
                                  StateConfig)
from gateway.config.reader import ConfigError, Section
from gateway.pushkins import resolve
from gateway.tracing import parse_config as parse_tracing

ENV_CONFIG = "TIM_PUSH_GATEWAY_CONFIG"
_TOP_KEYS = ("server", "logging", "metrics", "state", "proxy", "apps", "debug", "tim_information", "tracing")


def config_path(cli_value: str | None) -> str:
    path = cli_value or os.environ.get(ENV_CONFIG)
    if not path:
        raise ConfigError("", f"no config file: pass --config PATH or set {ENV_CONFIG}")
    return path


def read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("", f"cannot read config file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError("", f"config file {path} is not valid YAML: {e}") from None


def load_config(path: str) -> GatewayConfig:
    return parse_config(read_yaml(path), source=path)


def parse_config(data: Any, source: str = "") -> GatewayConfig:
    root = Section(data, "")
    cfg = GatewayConfig(
        server=_server(root.section("server")),
        logging=_logging(root.section("logging")),
        metrics=_metrics(root.section("metrics")),
        state=_state(root.section("state")),
        proxy=_proxy(root),
        apps=_apps(root),
        debug=root.bool("debug", False),
        tim_information=timinfo.parse_config(root.section("tim_information")) if root.has("tim_information")
        else None,
        tracing=parse_tracing(root.section("tracing")),
        source=source,
    )
    root.finish(known=_TOP_KEYS)
    return cfg


def _server(s: Section) -> ServerConfig:
    d = ServerConfig()
    bind = s.str_list("bind", d.bind)
    if not bind:
        raise s.error("bind", "needs at least one address")
    cfg = ServerConfig(
        bind=tuple(bind),
        port=s.int("port", d.port, min=0, max=65535),
        max_body_bytes=s.int("max_body_bytes", d.max_body_bytes, min=1024, max=64 * 1024 * 1024),
        request_timeout_s=s.number("request_timeout_s", d.request_timeout_s, min=0.1, max=600),
        shutdown_grace_s=s.number("shutdown_grace_s", d.shutdown_grace_s, min=0, max=3600),
        idle_timeout_s=s.number("idle_timeout_s", d.idle_timeout_s, min=1, max=3600),
        backlog=s.int("backlog", d.backlog, min=1, max=65535),
        gc_threshold=s.int("gc_threshold", d.gc_threshold, min=100, max=1_000_000),
    )
    s.finish()
    return cfg


def _logging(s: Section) -> LoggingConfig:
    d = LoggingConfig()
    level = s.str("level", d.level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise s.error("level", f"must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got {level!r}")
    cfg = LoggingConfig(level=level, format=s.str("format", d.format, choices=("text", "json")),
                        access_log=s.bool("access_log", d.access_log))
    s.finish()
    return cfg


def _metrics(s: Section) -> MetricsConfig:
    d = MetricsConfig()
    cfg = MetricsConfig(enabled=s.bool("enabled", d.enabled), bind=s.str("bind", None),
                        port=s.int("port", None, min=0, max=65535))
    if (cfg.bind is None) != (cfg.port is None):
        raise s.error("port" if cfg.port is None else "bind", "bind and port go together for a separate listener")
    s.finish()
    return cfg


def _state(s: Section) -> StateConfig:
    d = StateConfig()
    backend = s.str("backend", d.backend, choices=("memory", "sqlite", "redis"))
    path = s.str("path", None)
    redis_url = s.secret("redis_url", None)
    if backend == "sqlite" and path is None:
        raise s.error("path", "is required with backend: sqlite (the database file)")
    if backend == "redis":
        if redis_url is None:
            raise s.error("redis_url", "is required with backend: redis (redis://host:port/db)")
        if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise s.error("redis_url", "must be a redis://, rediss:// or unix:// URL")
    cfg = StateConfig(
        backend=backend, path=path, redis_url=redis_url,
        sqlite_synchronous=s.str("sqlite_synchronous", d.sqlite_synchronous, choices=("normal", "full")),
        sqlite_memory_records=s.int("sqlite_memory_records", d.sqlite_memory_records, min=1000, max=100_000_000),
        key_prefix=s.str("key_prefix", d.key_prefix),
        dedup_window_s=s.number("dedup_window_s", d.dedup_window_s, min=1, max=30 * 86400),
        rejection_ttl_s=s.number("rejection_ttl_s", d.rejection_ttl_s, min=0, max=365 * 86400),
        retry_queue=s.bool("retry_queue", backend != "memory"),
        max_retry_age_s=s.number("max_retry_age_s", d.max_retry_age_s, min=1, max=30 * 86400),
        retry_backoff_base_s=s.number("retry_backoff_base_s", d.retry_backoff_base_s, min=0.01, max=3600),
        retry_backoff_max_s=s.number("retry_backoff_max_s", d.retry_backoff_max_s, min=0.01, max=86400),
        retry_concurrency=s.int("retry_concurrency", d.retry_concurrency, min=1, max=10_000),
        retry_poll_interval_s=s.number("retry_poll_interval_s", d.retry_poll_interval_s, min=0.01, max=60),
        retry_lease_s=s.number("retry_lease_s", d.retry_lease_s, min=0.5, max=3600),
    )
    if cfg.retry_backoff_max_s < cfg.retry_backoff_base_s:
        raise s.error("retry_backoff_max_s", "must be >= retry_backoff_base_s")
    s.finish()
    return cfg


def _proxy(root: Section) -> str | None:
    value = root.str("proxy", None)
    if value is None:
        value = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or None
        where = "proxy (from HTTPS_PROXY)"
    else:
        where = "proxy"
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(where, f"must be an http://host:port URL of a CONNECT proxy, got {value!r}")
    try:
        parts.port
    except ValueError:
        raise ConfigError(where, f"invalid port in {value!r}") from None
    return value


def _apps(root: Section) -> tuple[AppConfig, ...]:
    apps_raw = root.mapping("apps")
    apps_sec = Section(apps_raw, "apps")
    if not apps_sec.keys():
        raise ConfigError("apps", "at least one app must be configured")
    out = []
    for app_id in apps_sec.keys():
        if not app_id:
            raise ConfigError("apps", "app ids must not be empty")
        s = apps_sec.section(app_id, required=True)
        type_name = s.str("type")
        try:
            cls = resolve(type_name)
        except LookupError as e:
            raise s.error("type", str(e)) from None
        common = dict(
            inflight_request_limit=s.int("inflight_request_limit", 512, min=1, max=1_000_000),
            tim_content_free=s.bool("tim_content_free", False),
        )
        options = cls.parse_config(s)
        s.finish()
        out.append(AppConfig(app_id=app_id, type=type_name, options=options, **common))
    apps_sec.finish()
    return tuple(out)
