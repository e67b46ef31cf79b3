"""Operator commands that do not serve: config validation (and, later, test pushes)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import yaml

_SECRET_WORDS = ("secret", "password", "token", "key", "credential")


def _masked(value: Any, key: str = "") -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _masked(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, key) for v in value]
    if isinstance(value, str) and any(w in key.lower() for w in _SECRET_WORDS) and not key.endswith(
            ("_file", "_id", "file")):
        return "***"
    if hasattr(value, "items"):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    return value


def check_config(path_arg: str | None) -> int:
    from gateway.config.load import config_path, load_config
    from gateway.config.reader import ConfigError

    try:
        cfg = load_config(config_path(path_arg))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    yaml.safe_dump(_masked(cfg), sys.stdout, sort_keys=False, default_flow_style=False)
    print("config OK", file=sys.stderr)
    return 0
