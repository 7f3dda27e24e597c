"""How an emulator runs: in a daemon thread (tests, the demo) or in the foreground until a signal (CLI).

``LoopThread.start(open, close)`` runs ``open()`` on a new loop in a thread and returns its result
once it finished (so the server is listening), re-raising in the caller any error it raised;
``stop()`` stops the loop, awaits ``close(result)`` there, and joins the thread.
``serve_until_signal`` is every emulator verb's ``main``: serve, print ``READY <url>``, stop
cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["LISTEN_BACKLOG", "LoopThread", "serve_until_signal"]

T = TypeVar("T")

# Connections waiting to be accepted, for every emulator's listening socket. aiohttp's default of
# 128 is below what one client opens at once (``sync --concurrency 256`` opens 260): the kernel then
# drops the excess SYNs and each costs that client a 1 s retransmit, which a production front end
# would not charge. Measured: 2 of 6 such 500-item runs took 1.16 s instead of ~0.42 s.
LISTEN_BACKLOG = 1024


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


def serve_until_signal(serve: Callable[[Callable[[str], None]], Awaitable[None]], *, name: str, where: str) -> int:
    """Run ``serve(ready)`` until SIGINT/SIGTERM; exit 0, or 1 with one line when it cannot listen."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(serve(lambda url: print(f"READY {url}", flush=True)))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for pending in (task, waiter):
            pending.cancel()
        results = await asyncio.gather(task, waiter, return_exceptions=True)
        if isinstance(results[0], Exception):
            raise results[0]

    try:
        asyncio.run(run())
    except OSError as err:  # e.g. the port is taken
        print(f"{name}: cannot listen on {where}: {err}", file=sys.stderr)
        return 1
    return 0
