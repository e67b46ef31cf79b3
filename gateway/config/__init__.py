"""Configuration: loaded once from YAML into frozen objects (see `load.load_config`)."""

from gateway.config.model import AppConfig, GatewayConfig, LoggingConfig, MetricsConfig, ServerConfig
from gateway.config.reader import ConfigError, Section

__all__ = ["AppConfig", "ConfigError", "GatewayConfig", "LoggingConfig", "MetricsConfig", "Section",
           "ServerConfig"]
