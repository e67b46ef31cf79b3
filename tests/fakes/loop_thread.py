"""The thread plumbing of the fakes that serve from their own asyncio loop inside the test process.

A fake only says how it serves (`_serving`: bind before the ``yield``, tear down after it); this base
runs that on a fresh loop in a daemon thread, returns from `start` once the port is known, and stops
the loop and joins the thread on `stop` (or at the end of a ``with`` block).
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

F = TypeVar("F", bound="LoopThreadFake")


class LoopThreadFake:
    #: The thread's name, for the start-up error and thread dumps.
    thread_name = "fake"
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def _serving(self) -> AbstractAsyncContextManager[Any]:
        """Start serving on the running loop (setting ``port``) on enter; stop serving on exit."""
        raise NotImplementedError

    def start(self: F) -> F:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            serving = self._serving()
            loop.run_until_complete(serving.__aenter__())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(serving.__aexit__(None, None, None))
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.thread_name} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self: F) -> F:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
