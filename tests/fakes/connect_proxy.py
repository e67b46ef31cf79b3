"""A small HTTP CONNECT proxy for tests, running its own asyncio loop in a thread.

Generic (any TLS or TCP client that tunnels through CONNECT: aioapns, Twisted agents, httpx):
answers ``CONNECT host:port`` with ``200 Connection established`` and splices bytes both ways. It
only tunnels to loopback targets, records every CONNECT (target and headers) for assertions, can
require ``Proxy-Authorization`` credentials, and can refuse tunnels with a chosen status.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests.fakes.loop_thread import LoopThreadFake

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass
class ConnectRecord:
    target: str
    headers: dict[str, str]
    status: int


@dataclass
class ConnectProxy(LoopThreadFake):
    thread_name = "connect-proxy"

    host: str = "127.0.0.1"
    #: Required "user:password" (Basic auth, either Base64 alphabet), or None for an open proxy.
    credentials: str | None = None
    #: Answer every CONNECT with this status instead of tunnelling (e.g. 502, 407), when set.
    refuse_with: int | None = None
    port: int = 0
    connects: list[ConnectRecord] = field(default_factory=list)
    bytes_relayed: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        yield
        server.close()
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        scheme, _, value = headers.get("proxy-authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.replace("-", "+").replace("_", "/")).decode()
        except ValueError:
            return False
        return decoded == self.credentials

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if method != "CONNECT" or not port.isdigit():
            status = 405
        elif not self._authorized(headers):
            status = 407
        elif host not in LOOPBACK:
            status = 403
        else:
            status = self.refuse_with or 200
        with self._lock:
            self.connects.append(ConnectRecord(target, headers, status))
        if status != 200:
            writer.write(f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.bytes_relayed += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
