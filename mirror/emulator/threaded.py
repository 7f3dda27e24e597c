"""An asyncio loop in a daemon thread, serving one app: how every emulator runs inside a test or the demo.

``start(open, close)`` runs ``open()`` on the new loop and returns its result once it finished
(so the server is listening), re-raising in the caller any error it raised; ``stop()`` stops the
loop, awaits ``close(result)`` there, and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, open_: Callable[[], Awaitable[T]], close: Callable[[T], Awaitable[None]]) -> T:
        ready = threading.Event()
        outcome: list[T] = []
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                outcome.append(loop.run_until_complete(open_()))
            except BaseException as err:  # handed to the caller of start()
                failure.append(err)
                ready.set()
                loop.close()
                return
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(close(outcome[0]))
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return outcome[0]

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread, self._loop = None, None
