"""Typed, path-aware reading of one YAML mapping.

Every config section (server, apps.<id>, tim_information, ...) is read through a `Section`, so every
error names the full key path (``apps.org.example.ios.keyfile: file not found``), unknown keys are
errors with a "did you mean" hint, and secrets may come from ``<key>_file`` or ``${ENV}`` references.
Parsing code calls the typed getters and finally `Section.finish()`, which rejects keys nobody asked
for. Hand-written because no YAML/schema library gives path-exact, did-you-mean errors for free and
the reading code doubles as the schema.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING: Any = object()
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem; the message starts with the offending key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def expand_env(value: str, path: str) -> str:
    """Replace ``${NAME}`` / ``${NAME:-default}`` with environment values; unset without default is an error."""

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(path, f"environment variable {name} is not set")

    return _ENV_REF.sub(repl, value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


class Section:
    """One mapping of the config, with the path that leads to it."""

    def __init__(self, data: Any, path: str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path or "(top level)", f"expected a mapping, got {_type_name(data)}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(self._join(path, str(key)), "keys must be strings")
        self._data: Mapping[str, Any] = data
        self.path = path
        self._seen: set[str] = set()

    @staticmethod
    def _join(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    def key_path(self, key: str) -> str:
        return self._join(self.path, key)

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.key_path(key), message)

    def has(self, key: str) -> bool:
        return key in self._data

    def keys(self) -> list[str]:
        return list(self._data)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._seen.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        value = self._data[key]
        if isinstance(value, str):
            value = expand_env(value, self.key_path(key))
        return value

    def _typed(self, key: str, types: tuple[type, ...], what: str, default: Any) -> Any:
        value = self.raw(key, default)
        if value is default and key not in self._data:
            return value
        if value is None and default is None:
            return None
        if isinstance(value, bool) and bool not in types:
            raise self.error(key, f"expected {what}, got {_type_name(value)}")
        if not isinstance(value, types):
            raise self.error(key, f"expected {what}, got {_type_name(value)}")
        return value

    def str(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None,
            non_empty: bool = True) -> Any:
        value = self._typed(key, (str,), "a string", default)
        if value is None or (value is default and key not in self._data):
            return value
        if non_empty and not value:
            raise self.error(key, "must not be empty")
        if choices is not None and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}{extra}")
        return value

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        return self._typed(key, (bool,), "true or false", default)

    def int(self, key: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None) -> Any:
        value = self._typed(key, (int,), "an integer", default)
        if isinstance(value, int):
            self._check_range(key, value, min, max)
        return value

    def number(self, key: str, default: Any = _MISSING, *, min: float | None = None,
               max: float | None = None) -> Any:
        value = self._typed(key, (int, float), "a number", default)
        if isinstance(value, (int, float)):
            self._check_range(key, value, min, max)
            return float(value)
        return value

    def _check_range(self, key: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise self.error(key, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise self.error(key, f"must be <= {hi}, got {value}")

    def str_list(self, key: str, default: Any = _MISSING, *, allow_single: bool = True) -> Any:
        value = self.raw(key, default)
        if value is default and key not in self._data:
            return value
        if isinstance(value, str) and allow_single:
            value = [value]
        if not isinstance(value, list):
            raise self.error(key, f"expected a list of strings, got {_type_name(value)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{self.key_path(key)}[{i}]", f"expected a string, got {_type_name(item)}")
            out.append(expand_env(item, f"{self.key_path(key)}[{i}]"))
        return tuple(out)

    def mapping(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and key not in self._data:
            return value
        if value is None and default is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping, got {_type_name(value)}")
        return value

    def section(self, key: str, *, required: bool = False) -> Section:
        value = self.raw(key, _MISSING if required else None)
        return Section(value, self.key_path(key))

    def path_to_file(self, key: str, default: Any = _MISSING) -> Any:
        """A file path that must exist and be readable."""
        value = self.str(key, default)
        if value is None or (value is default and key not in self._data):
            return value
        if not os.path.isfile(value):
            raise self.error(key, f"file not found: {value}")
        if not os.access(value, os.R_OK):
            raise self.error(key, f"file not readable: {value}")
        return value

    def secret(self, key: str, default: Any = _MISSING) -> Any:
        """A secret given inline (``key: ${ENV}``) or via a file (``key_file: /run/secrets/x``)."""
        file_key = f"{key}_file"
        if self.has(key) and self.has(file_key):
            raise self.error(key, f"give either {key} or {file_key}, not both")
        if self.has(file_key):
            path = self.path_to_file(file_key)
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
            if not value:
                raise self.error(file_key, f"file is empty: {path}")
            return value
        self._seen.add(file_key)
        return self.str(key, default)

    def finish(self, *, known: tuple[str, ...] = ()) -> None:
        """Reject keys that no getter asked for, suggesting the nearest known key."""
        allowed = self._seen | set(known)
        for key in self._data:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.error(key, f"unknown key{extra}")
