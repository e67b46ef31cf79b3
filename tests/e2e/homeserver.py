"""A real Synapse homeserver as a subprocess on 127.0.0.1, and a small Matrix client for the scenarios.

The config is written here rather than by ``--generate-config``: generating costs seconds and writes
values (listeners on all interfaces, strict rate limits, remote key servers) that the tests would then
have to rewrite anyway. Only the signing key is generated, with ``signedjson`` (a Synapse dependency).
Everything lives in one temporary folder: SQLite database, media store, signing key, log.

Facts the config encodes (see the Synapse notes in the shared reference):
- ``ip_range_whitelist: [127.0.0.0/8]``: Synapse refuses to push to loopback without it.
- the ``federation`` resource serves ``/_matrix/federation/v1/openid/userinfo``, which the
  TiMessengerInformation API asks to validate OpenID tokens.
- ``push.group_unread_count_by_room: false`` makes ``counts.unread`` the number of unread notifications,
  so a second message visibly raises it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import hmac
import itertools
import os
import secrets
import signal
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.support.gateway import REPO, Response, free_port, request, wait_http_ok

SERVER_NAME = "hs.e2e.test"
#: Proxy variables HTTP clients honour; the processes under test must talk to each other directly.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_txn = itertools.count(1)


def _signing_key(path: Path) -> None:
    from signedjson.key import generate_signing_key, write_signing_keys

    with open(path, "w") as fh:
        write_signing_keys(fh, [generate_signing_key("e2e")])


def homeserver_config(folder: Path, port: int, shared_secret: str) -> dict[str, Any]:
    lenient = {"per_second": 1000, "burst_count": 1000}
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(folder / "homeserver.pid"),
        "report_stats": False,
        "listeners": [{
            "port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
            "resources": [{"names": ["client", "federation"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": str(folder / "homeserver.db")}},
        "media_store_path": str(folder / "media"),
        "signing_key_path": str(folder / "signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "enable_registration": False,
        "bcrypt_rounds": 4,
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "enable_metrics": False,
        "ip_range_whitelist": ["127.0.0.0/8"],
        "push": {"include_content": True, "group_unread_count_by_room": False},
        "rc_message": lenient,
        "rc_registration": lenient,
        "rc_joins": {"local": lenient, "remote": lenient},
        "rc_invites": {"per_room": lenient, "per_user": lenient, "per_issuer": lenient},
        "rc_room_creation": lenient,
        "rc_login": {"address": lenient, "account": lenient, "failed_attempts": lenient},
    }


class Homeserver:
    """One Synapse process. `start()` waits for ``/health``; `stop()` terminates it by PID."""

    def __init__(self, folder: Path, python: str = sys.executable) -> None:
        self.dir = folder
        self.port = free_port()
        self.python = python
        self.shared_secret = secrets.token_hex(16)
        self.config_path = folder / "homeserver.yaml"
        self.log_path = folder / "homeserver.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.server_name = SERVER_NAME

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> Homeserver:
        if importlib.util.find_spec("synapse") is None:
            raise RuntimeError(f"matrix-synapse is not installed for {self.python}; install the dev extra "
                               "(pip install -e '.[dev]') to run the end-to-end tests")
        (self.dir / "media").mkdir(parents=True, exist_ok=True)
        _signing_key(self.dir / "signing.key")
        self.config_path.write_text(yaml.safe_dump(homeserver_config(self.dir, self.port, self.shared_secret)))
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        env["PYTHONPATH"] = str(REPO)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.python, "-m", "tests.e2e.synapse_main", "-c", str(self.config_path)],
                                     cwd=str(self.dir), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait_http_ok(self.proc, self.port, "/health", timeout, interval=0.1):
            return self
        if self.proc.poll() is not None:
            raise RuntimeError(f"synapse exited with {self.proc.returncode}:\n{self.log()}")
        self.stop()
        raise RuntimeError(f"synapse did not answer /health within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Response:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else orjson.dumps(body)
        return request(self.port, method, path, data, headers)

    def register(self, localpart: str, admin: bool = False) -> MatrixUser:
        """Create a user with the shared-secret admin API; the answer carries an access token."""
        path = "/_synapse/admin/v1/register"
        nonce = _ok(self.api("GET", path))["nonce"]
        password = secrets.token_hex(8)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        doc = _ok(self.api("POST", path, {"nonce": nonce, "username": localpart, "password": password,
                                          "admin": admin, "mac": mac.hexdigest()}))
        return MatrixUser(self, doc["user_id"], doc["access_token"])


class MatrixError(AssertionError):
    pass


def _ok(resp: Response) -> Any:
    if resp.status != 200:
        raise MatrixError(f"homeserver answered {resp.status}: {resp.body[:500]!r}")
    return resp.json()


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass(frozen=True)
class MatrixUser:
    hs: Homeserver
    user_id: str
    token: str

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return _ok(self.hs.api(method, path, body, self.token))

    def create_room(self, invite: list[MatrixUser] = (), name: str | None = None) -> str:  # type: ignore[assignment]
        body: dict[str, Any] = {"preset": "private_chat", "invite": [u.user_id for u in invite]}
        if name is not None:
            body["name"] = name
        doc = self.call("POST", "/_matrix/client/v3/createRoom", body)
        return str(doc["room_id"])

    def join(self, room_id: str) -> None:
        self.call("POST", f"/_matrix/client/v3/join/{_q(room_id)}", {})

    def send_text(self, room_id: str, text: str) -> str:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/t{next(_txn)}"
        return str(self.call("PUT", path, {"msgtype": "m.text", "body": text})["event_id"])

    def latest_event(self, room_id: str) -> str:
        doc = self.call("GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/messages?dir=b&limit=1")
        return str(doc["chunk"][0]["event_id"])

    def read_receipt(self, room_id: str, event_id: str) -> None:
        self.call("POST", f"/_matrix/client/v3/rooms/{_q(room_id)}/receipt/m.read/{_q(event_id)}", {})

    def set_pusher(self, app_id: str, pushkey: str, url: str, *, data: dict[str, Any] | None = None) -> None:
        """An http pusher; ``data`` holds what the app adds next to ``url`` (format, default_payload)."""
        self.call("POST", "/_matrix/client/v3/pushers/set", {
            "kind": "http", "app_id": app_id, "pushkey": pushkey, "app_display_name": "e2e",
            "device_display_name": "e2e device", "lang": "en", "data": {**(data or {}), "url": url},
        })

    def remove_pusher(self, app_id: str, pushkey: str) -> None:
        self.call("POST", "/_matrix/client/v3/pushers/set", {"kind": None, "app_id": app_id, "pushkey": pushkey})

    def pushers(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/_matrix/client/v3/pushers")["pushers"])

    def openid_token(self) -> dict[str, Any]:
        return dict(self.call("POST", f"/_matrix/client/v3/user/{_q(self.user_id)}/openid/request_token", {}))
