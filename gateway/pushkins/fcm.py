"""The ``fcm`` pushkin (alias ``gcm``): Firebase Cloud Messaging HTTP v1 for Android and FCM-for-iOS apps.

Config keys are Sygnal's (``api_version``, ``project_id``, ``service_account_file``, ``fcm_options``,
``max_connections``, ``send_badge_counts``) plus timeouts, retries, TTL, collapse key and test overrides
(see docs/fcm.md). The legacy API is refused at start-up: Google shut it down in 2024.

The pushkin itself only glues three parts together: `fcm_payload` (pure message building),
`fcm_client` (asyncio HTTPS client with retries) and `fcm_auth` (access tokens). The client lives on the
asyncio loop that the asyncio reactor runs on; `dispatch` is a Twisted coroutine and bridges with
``Deferred.fromFuture(asyncio.ensure_future(...))``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from google.oauth2 import service_account
from twisted.internet.defer import Deferred

from gateway.backoff import Backoff
from gateway.config.reader import Section
from gateway.model import Device, Notification, Outcome, Status, frozen_json
from gateway.pushkins.base import Pushkin, PushkinContext
from gateway.pushkins.fcm_client import ClientSettings, FcmClient
from gateway.pushkins.fcm_metrics import FcmMetrics
from gateway.pushkins.fcm_payload import FCM_OPTION_KEYS, MessageOptions, build_data, build_message
from gateway.pushkins.tls import read_ca_file

log = logging.getLogger("gateway.pushkins.fcm")

T = TypeVar("T")

DEFAULT_FCM_URL = "https://fcm.googleapis.com"
#: Project ids are lowercase words with hyphens; domain-scoped ones add "example.com:".
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]*$")
#: Legacy (``fcm/send``) body keys that FCM v1 answers with 400; caught at start-up instead.
_LEGACY_OPTION_KEYS = frozenset({"priority", "time_to_live", "content_available", "mutable_content",
                                 "collapse_key", "delay_while_idle", "restricted_package_name", "dry_run"})
_SA_REQUIRED = ("type", "client_email", "private_key", "token_uri")


@dataclass(frozen=True)
class FcmOptions:
    project_id: str
    service_account_file: str
    send_url: str
    #: Sygnal's ``fcm_options`` (frozen JSON), deep-merged into a copy of every message.
    fcm_options: Mapping[str, Any]
    max_connections: int = 20
    send_badge_counts: bool = True
    ca_file: str | None = None
    ttl_s: int | None = None
    collapse_key: str | None = None
    max_tries: int = 3
    request_timeout_s: float = 5.0
    connect_timeout_s: float = 3.0


def _read_service_account(s: Section, path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise s.error("service_account_file", f"not a readable JSON file: {type(e).__name__}") from None
    if not isinstance(info, dict):
        raise s.error("service_account_file", "expected a JSON object (a Google service-account key file)")
    missing = [k for k in _SA_REQUIRED if not isinstance(info.get(k), str) or not info[k]]
    if missing:
        raise s.error("service_account_file", f"missing {', '.join(missing)} (is this a service-account key?)")
    if info["type"] != "service_account":
        raise s.error("service_account_file", f"type must be service_account, got {info['type']!r}")
    try:
        service_account.Credentials.from_service_account_info(info)
    except (ValueError, TypeError) as e:
        raise s.error("service_account_file", f"unusable private key or fields: {type(e).__name__}") from None
    return info


def _fcm_options(s: Section) -> Mapping[str, Any]:
    raw = s.mapping("fcm_options", {})
    for key, value in raw.items():
        if key in _LEGACY_OPTION_KEYS:
            raise s.error("fcm_options", f"{key!r} is a legacy FCM option; in v1 put it under android/apns "
                                         f"(e.g. android.ttl, android.collapse_key) or use ttl_s/collapse_key")
        if key not in FCM_OPTION_KEYS:
            raise s.error("fcm_options", f"unknown key {key!r}; allowed: {', '.join(FCM_OPTION_KEYS)} "
                                         f"(data comes from the notification, the token from the pushkey)")
        if not isinstance(value, Mapping):
            raise s.error("fcm_options", f"{key} must be a mapping, got {type(value).__name__}")
    try:
        json.dumps(raw)
    except (TypeError, ValueError):
        raise s.error("fcm_options", "must contain only JSON values") from None
    return frozen_json(dict(raw))


def _url(s: Section, key: str, default: str) -> str:
    value = s.str(key, default)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise s.error(key, f"must be an https:// base URL, got {value!r}")
    return value.rstrip("/")


class FcmPushkin(Pushkin):
    @classmethod
    def parse_config(cls, section: Section) -> FcmOptions:
        s = section
        api_version = s.str("api_version", "v1")
        if api_version == "legacy":
            raise s.error("api_version", "the legacy FCM API was shut down by Google in 2024; use "
                                         "api_version: v1 with project_id and service_account_file")
        if api_version != "v1":
            raise s.error("api_version", f"must be v1, got {api_version!r}")
        if s.has("api_key"):
            raise s.error("api_key", "belongs to the legacy FCM API; v1 uses service_account_file")
        sa_file = s.path_to_file("service_account_file")
        info = _read_service_account(s, sa_file)
        project_id = s.str("project_id", None) or info.get("project_id")
        if not isinstance(project_id, str) or not project_id:
            raise s.error("project_id", "is required (or set project_id in the service-account file)")
        if not _PROJECT_ID.match(project_id):
            raise s.error("project_id", f"not a Firebase project id: {project_id!r}")
        base = _url(s, "fcm_url", DEFAULT_FCM_URL)
        d = FcmOptions
        return FcmOptions(
            project_id=project_id,
            service_account_file=sa_file,
            send_url=f"{base}/v1/projects/{project_id}/messages:send",
            fcm_options=_fcm_options(s),
            max_connections=s.int("max_connections", d.max_connections, min=1, max=1000),
            send_badge_counts=s.bool("send_badge_counts", d.send_badge_counts),
            ca_file=read_ca_file(s),
            ttl_s=s.int("ttl_s", None, min=0, max=2_419_200),
            collapse_key=s.str("collapse_key", None),
            max_tries=s.int("max_tries", d.max_tries, min=1, max=10),
            request_timeout_s=s.number("request_timeout_s", d.request_timeout_s, min=0.1, max=300),
            connect_timeout_s=s.number("connect_timeout_s", d.connect_timeout_s, min=0.1, max=300),
        )

    def __init__(self, app: Any, ctx: PushkinContext) -> None:
        super().__init__(app, ctx)
        opts: FcmOptions = app.options
        self.options = opts
        self.metrics = FcmMetrics(app.app_id)
        self.message_options = MessageOptions(opts.fcm_options, opts.ttl_s, opts.collapse_key)
        self.client = FcmClient(app.app_id, ClientSettings(
            send_url=opts.send_url,
            service_account_file=opts.service_account_file,
            max_connections=opts.max_connections,
            connect_timeout_s=opts.connect_timeout_s,
            request_timeout_s=opts.request_timeout_s,
            # Inside the notify deadline unless a retry queue takes over sends still running at it.
            budget_s=ctx.attempt_budget_s(opts.request_timeout_s * opts.max_tries + 5.0),
            backoff=Backoff(max_tries=opts.max_tries),
            proxy=ctx.proxy,
            ca_file=opts.ca_file,
        ), self.metrics)

    async def start(self) -> None:
        await _on_loop(self.client.start())

    async def stop(self) -> None:
        await _on_loop(self.client.close())

    async def dispatch(self, notification: Notification, device: Device) -> Outcome:
        try:
            outcome = await _on_loop(self._deliver(notification, device))
        except Exception:  # CancelledError is a BaseException and passes through
            log.exception("fcm app=%s pushkey=%s: unexpected error", self.app_id, device.key_hash)
            outcome = Outcome.temporary("internal_error")
        return outcome

    async def _deliver(self, notification: Notification, device: Device) -> Outcome:
        default_payload = device.data.get("default_payload")
        if default_payload is not None and not isinstance(default_payload, Mapping):
            # As Sygnal: the pusher was registered with unusable data; the client must register again.
            log.warning("fcm app=%s pushkey=%s: pusher data.default_payload is not an object",
                        self.app_id, device.key_hash)
            return Outcome.rejected("invalid_default_payload")
        if not self.options.send_badge_counts and notification.is_badge_only:
            # Counts are switched off and there is no event: there is nothing to tell the device.
            return Outcome(Status.DELIVERED, "nothing_to_send")
        payload = build_data(notification, device, content_free=self.app.tim_content_free,
                             send_badge_counts=self.options.send_badge_counts)
        if payload is None:
            log.error("fcm app=%s pushkey=%s event_id=%s: even ids and counts exceed FCM's 4 KiB data limit",
                      self.app_id, device.key_hash, notification.event_id)
            return Outcome.failed("payload_too_large")
        if payload.dropped is not None:
            self.metrics.content_dropped(payload.dropped)
            log.info("fcm app=%s pushkey=%s event_id=%s: left out %s to fit FCM's 4 KiB limit",
                     self.app_id, device.key_hash, notification.event_id, payload.dropped)
        body = build_message(device.pushkey, payload.data, self.message_options)
        return await self.client.send(body, device.key_hash)


def _on_loop(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Run an asyncio coroutine as a task on the shared loop and wait for it from Twisted."""
    return Deferred.fromFuture(asyncio.ensure_future(coro))
