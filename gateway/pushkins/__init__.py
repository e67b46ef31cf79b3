"""Pushkin registry: config ``type`` → implementation, imported lazily.

Lazy imports keep a ``type: log`` gateway free of aioapns/pyfcm imports and keep every import free of
reactor side effects. A dotted ``type: package.module.Class`` loads a custom pushkin class.
"""

from __future__ import annotations

import importlib

from gateway.pushkins.base import Pushkin, PushkinContext

BUILTIN: dict[str, str] = {
    "log": "gateway.pushkins.log:LogPushkin",
    "apns": "gateway.pushkins.apns:ApnsPushkin",
    "fcm": "gateway.pushkins.fcm:FcmPushkin",
    "gcm": "gateway.pushkins.fcm:FcmPushkin",
}


def known_types() -> tuple[str, ...]:
    return tuple(sorted(BUILTIN))


def resolve(type_name: str) -> type[Pushkin]:
    """The class for a config ``type``; raises LookupError with a readable message."""
    target = BUILTIN.get(type_name)
    if target is None:
        if "." not in type_name:
            raise LookupError(f"unknown pushkin type {type_name!r}; known: {', '.join(known_types())}")
        module_name, _, cls_name = type_name.rpartition(".")
    else:
        module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LookupError(f"cannot import pushkin module {module_name!r}: {e}") from e
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Pushkin)):
        raise LookupError(f"{type_name!r} is not a Pushkin class")
    return cls


__all__ = ["BUILTIN", "Pushkin", "PushkinContext", "known_types", "resolve"]
