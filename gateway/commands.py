"""Operator commands that do not serve: config validation, one test push, federation-list verification.

Exit codes follow the CLI's: 0 success, 1 the check or push did not succeed, 2 configuration/usage error.
Output meant for scripts goes to stdout (resolved config as YAML, the push outcome as one JSON line);
human-readable findings and logs go to stderr.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import yaml

_SECRET_WORDS = ("secret", "password", "token", "key", "credential")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/:@\s]+:)[^/@\s]+@", re.IGNORECASE)
#: A certificate expiring sooner than this is reported as a warning by check-config.
EXPIRY_WARNING_DAYS = 30


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in _SECRET_WORDS) and not k.endswith(("_file", "_id", "file", "_path"))


def _masked(value: Any, key: str = "") -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _masked(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping) or (hasattr(value, "items") and not isinstance(value, (str, bytes))):
        return {str(k): _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_masked(v, key) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"*** ({len(value)} bytes)"
    if isinstance(value, str):
        return "***" if _is_secret_key(key) else _URL_PASSWORD.sub(r"\g<head>***@", value)
    if value is None or isinstance(value, (bool, int, float)):
        return "***" if value is not None and _is_secret_key(key) and not isinstance(value, bool) else value
    # Loaded keys, enums, callables...: show the type, never the repr (it could embed key material).
    return f"<{type(value).__name__}>"


def _load(path_arg: str | None) -> Any:
    """The parsed config, or None after printing the error (exit code 2)."""
    from gateway.config.load import config_path, load_config
    from gateway.config.reader import ConfigError

    try:
        return load_config(config_path(path_arg))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return None


def check_config(path_arg: str | None) -> int:
    from gateway import credentials

    cfg = _load(path_arg)
    if cfg is None:
        return 2
    yaml.safe_dump(_masked(cfg), sys.stdout, sort_keys=False, default_flow_style=False)
    infos = credentials.inspect_config(cfg.source)
    now = time.time()
    bad = 0
    for info in infos:
        line = credentials.describe(info, now)
        left = info.seconds_left(now)
        if not info.ok or (left is not None and left <= 0):
            bad += 1
        elif left is not None and left < EXPIRY_WARNING_DAYS * 86400:
            line += f" WARNING: less than {EXPIRY_WARNING_DAYS} days left"
        print(line, file=sys.stderr)
    if bad:
        print(f"config has {bad} unusable credential file(s)", file=sys.stderr)
        return 1
    print("config OK", file=sys.stderr)
    return 0


def _test_notification(app_id: str, pushkey: str) -> Any:
    from gateway.model import Counts, Device, Notification, frozen_json

    device = Device(app_id=app_id, pushkey=pushkey, pushkey_ts=int(time.time()))
    return Notification(
        devices=(device,),
        event_id=f"$tim-push-gateway-test-{uuid.uuid4().hex}",
        room_id="!test:tim-push-gateway.invalid",
        type="m.room.message",
        sender="@tim-push-gateway:tim-push-gateway.invalid",
        sender_display_name="tim-push-gateway",
        prio="high",
        content=frozen_json({"msgtype": "m.text", "body": "Test push from tim-push-gateway"}),
        counts=Counts(unread=1),
    )


def send_test_push(path_arg: str | None, app_id: str, pushkey: str, timeout_s: float | None) -> int:
    """Start only the pushkin serving `app_id`, send it one notification, print the outcome as JSON."""
    cfg = _load(path_arg)
    if cfg is None:
        return 2
    from gateway.appmatch import AppMatcher

    app = AppMatcher((a.app_id, a) for a in cfg.apps).match(app_id)
    if app is None:
        known = ", ".join(a.app_id for a in cfg.apps)
        print(f"no configured app matches app id {app_id!r} (configured: {known})", file=sys.stderr)
        return 2

    from gateway import logsetup
    from gateway import reactor as reactor_mod

    reactor = reactor_mod.install()
    logsetup.setup(cfg.logging.level, cfg.logging.format)

    from twisted.internet import defer, task

    from gateway.model import Device, pushkey_hash
    from gateway.pushkins import PushkinContext, resolve

    notification = _test_notification(app_id, pushkey)
    device: Device = notification.devices[0]
    deadline = timeout_s if timeout_s is not None else max(30.0, cfg.server.request_timeout_s * 3)
    result: dict[str, Any] = {"app_id": app_id, "config_app": app.app_id, "pushkin": app.type,
                              "pushkey_hash": pushkey_hash(pushkey), "event_id": notification.event_id}

    async def run() -> None:
        # Yield once so asyncio-based pushkins see a running loop (as in GatewayApp.start).
        await task.deferLater(reactor, 0, lambda: None)
        ctx = PushkinContext(reactor=reactor, proxy=cfg.proxy, request_timeout_s=cfg.server.request_timeout_s)
        pushkin = resolve(app.type)(app, ctx)
        try:
            await pushkin.start()
        except Exception as e:
            result.update(status="start_failed", reason=f"{type(e).__name__}: {e}")
            return
        try:
            sent = defer.ensureDeferred(pushkin.dispatch(notification, device))
            sent.addTimeout(deadline, reactor)
            started = time.perf_counter()
            try:
                outcome = await sent
            except defer.TimeoutError:
                result.update(status="timeout", reason=f"no answer within {deadline:g}s")
                return
            except Exception as e:
                result.update(status="error", reason=f"pushkin raised {type(e).__name__}")
                return
            result.update(status=outcome.status.value, reason=outcome.reason,
                          retry_after=outcome.retry_after, seconds=round(time.perf_counter() - started, 3))
        finally:
            try:
                await pushkin.stop()
            except Exception as e:
                print(f"warning: stopping the pushkin failed: {type(e).__name__}: {e}", file=sys.stderr)

    def go() -> None:
        d = defer.ensureDeferred(run())
        d.addErrback(lambda f: result.update(status="error", reason=f.getErrorMessage()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    print(orjson.dumps(result).decode())
    return 0 if result.get("status") == "delivered" else 1


def healthcheck(path_arg: str | None, path: str, timeout_s: float) -> int:
    """Probe the gateway on this host the way a container runtime would, without curl in the image."""
    import http.client

    cfg = _load(path_arg)
    if cfg is None:
        return 2
    host = cfg.server.bind[0]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        conn = http.client.HTTPConnection(host, cfg.server.port, timeout=timeout_s)
        conn.request("GET", path, headers={"User-Agent": "tim-push-gateway-healthcheck"})
        status = conn.getresponse().status
        conn.close()
    except OSError as e:
        print(f"{path}: {host}:{cfg.server.port} unreachable: {e}", file=sys.stderr)
        return 1
    print(f"{path}: HTTP {status}", file=sys.stderr)
    return 0 if status == 200 else 1


def federation_list(action: str, argv: list[str]) -> int:
    """``federation-list verify FILE [--trust ...]``, implemented by the timinfo package."""
    if action != "verify":
        print(f"unknown federation-list action {action!r}; known: verify", file=sys.stderr)
        return 2
    try:
        from timinfo.cli import verify_main
    except ImportError as e:
        print(f"federation-list verify is not available in this installation (timinfo.cli: {e})", file=sys.stderr)
        return 2
    return int(verify_main(argv) or 0)
