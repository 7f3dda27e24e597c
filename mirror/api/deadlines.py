"""Total deadlines for every request in flight, kept by one watchdog instead of a timer each.

Instead of a loop timer per request (aiohttp's ``ClientTimeout(total=...)``, too costly at
thousands of requests a second: docs/design.md), a request only notes when it is due; one watchdog task wakes every
``tick`` seconds and cancels the tasks whose request is overdue, and ``Deadlines.limit`` turns that
cancellation into ``TimeoutError``, the way ``asyncio.timeout`` does: it counts cancel requests
(``Task.uncancel``), so a real cancellation from outside (Ctrl-C, a failing task group) still
propagates as a cancellation. A deadline fires between ``seconds`` and ``seconds + tick`` late.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["Deadlines", "TimedSession"]


class Deadlines:
    """Use as ``async with Deadlines():`` around a session's life, then ``with deadlines.limit(s):``
    around each request."""

    def __init__(self, tick: float = 0.25) -> None:
        self.tick = tick
        self._due: dict[_Limit, float] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Deadlines:
        self._watchdog = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None

    def limit(self, seconds: float) -> _Limit:
        """A ``with`` block that raises TimeoutError once it has run ``seconds`` (plus up to a tick)."""
        if self._watchdog is None:
            raise RuntimeError("use 'async with Deadlines()' before limiting a request")
        return _Limit(self, seconds)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            if not self._due:
                continue
            now = time.monotonic()
            for limit in [limit for limit, due in self._due.items() if due <= now]:
                del self._due[limit]
                limit.expire()


class _Limit:
    """One request's deadline: registered on entry, dropped on exit."""

    __slots__ = ("_cancelling", "_expired", "_owner", "_seconds", "_task")

    def __init__(self, owner: Deadlines, seconds: float) -> None:
        self._owner = owner
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False

    def __enter__(self) -> _Limit:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.limit must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._owner._due[self] = time.monotonic() + self._seconds
        return self

    def expire(self) -> None:
        assert self._task is not None
        self._expired = True
        self._task.cancel()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._owner._due.pop(self, None)
        if self._expired and self._task is not None:
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc


class TimedSession:
    """An aiohttp session whose requests get their total deadline from one ``Deadlines`` watchdog.

    aiohttp's own ``total`` timeout is off; ``connect`` still bounds the wait for a pool slot or a
    new connection. ``open`` and ``close`` bracket the session's life (from an ``__aenter__`` and
    ``__aexit__``); pass ``deadlines`` to ``mirror.api.retry.attempt_loop``.
    """

    def __init__(self) -> None:
        self.deadlines = Deadlines()
        self._session: aiohttp.ClientSession | None = None

    async def open(self, connect: float, **options: Any) -> aiohttp.ClientSession:
        await self.deadlines.__aenter__()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=connect), **options)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.deadlines.__aexit__()
