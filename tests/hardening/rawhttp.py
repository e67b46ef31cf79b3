"""A raw-socket HTTP/1.x client for hostile requests that http.client refuses to send.

It writes exactly the bytes given and parses answers strictly (status line, headers, Content-Length
body), so tests see pipelined answers one by one, a close instead of an answer, and malformed replies.
All waits are bounded by the socket timeout.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import orjson


class Closed(Exception):
    """The server closed the connection before a complete answer arrived."""


@dataclass
class RawResponse:
    version: bytes
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self) -> Any:
        return orjson.loads(self.body)


class RawConnection:
    def __init__(self, port: int, timeout: float = 15) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send; False when the server has already closed or reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self) -> None:
        if self.eof:
            raise Closed(self.buf)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed(self.buf)
        self.buf += chunk

    def read_response(self, head_only: bool = False) -> RawResponse:
        """One complete answer; `head_only` for answers to HEAD (no body despite Content-Length)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        version, status, *_ = lines[0].split(b" ", 2)
        resp = RawResponse(version, int(status))
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            resp.headers.setdefault(name.strip().lower().decode("latin-1"), []).append(
                value.strip().decode("latin-1"))
        length = resp.header("content-length")
        if head_only or resp.status in (100, 204, 304):
            return resp
        if (resp.header("transfer-encoding") or "").lower() == "chunked":
            resp.body = self._read_chunked()
            return resp
        if length is None:
            # Without a length the body runs to the close (HTTP/1.0 style).
            try:
                while True:
                    self._fill()
            except Closed:
                pass
            resp.body, self.buf = self.buf, b""
            return resp
        n = int(length)
        while len(self.buf) < n:
            self._fill()
        resp.body, self.buf = self.buf[:n], self.buf[n:]
        return resp

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self._read_line().split(b";")[0], 16)
            if size == 0:
                while self._read_line():  # trailers up to the empty line
                    pass
                return body
            while len(self.buf) < size + 2:
                self._fill()
            body, self.buf = body + self.buf[:size], self.buf[size + 2:]

    def readable(self, timeout: float) -> bool:
        """True once the server sent something (or closed) within `timeout` seconds."""
        if self.buf:
            return True
        return bool(select.select([self.sock], [], [], timeout)[0])

    def answer_or_close(self) -> RawResponse | None:
        """The next answer, or None if the server closed (or reset) the connection without a complete one."""
        try:
            return self.read_response()
        except Closed:
            return None

    def wait_closed(self, timeout: float) -> bytes:
        """Wait (bounded) until the server closes; returns whatever it sent meanwhile."""
        deadline = time.monotonic() + timeout
        got = self.buf
        self.buf = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk
        raise AssertionError(f"server did not close within {timeout}s; got {got[:300]!r}")


def http_request(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                 version: str = "HTTP/1.1") -> bytes:
    """Serialise one request; Content-Length is added for a body unless a header overrides framing."""
    h = {"Host": "gateway.test", **(headers or {})}
    lower = {k.lower() for k in h}
    if body is not None and "content-length" not in lower and "transfer-encoding" not in lower:
        h["Content-Length"] = str(len(body))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def exchange(port: int, data: bytes, timeout: float = 15) -> RawResponse | None:
    """Send raw bytes on a fresh connection; the first answer, or None if the server just closed."""
    with RawConnection(port, timeout) as c:
        if not c.try_send(data):
            return None
        return c.answer_or_close()
