"""The engine's three ways of running a step as a task: beside a block, to its end, or until a stop.

Each guards one rule of how a run ends: nothing started beside a block outlives it; a step that
writes state (a manifest part and its journal marks, a compaction, the recovery of DEST) is never
abandoned halfway, even when the run is cancelled; a run asked to stop unwinds through its own
``finally`` blocks (which flush what is finished) and says it was stopped, rather than vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

__all__ = ["alongside", "to_the_end", "until_stopped"]

T = TypeVar("T")


@contextlib.asynccontextmanager
async def alongside(coro: Coroutine[Any, Any, T] | None) -> AsyncIterator[asyncio.Task[T] | None]:
    """Run ``coro`` as a task beside the block (None: nothing to run). Whatever is left of it is
    cancelled and waited for on the way out, and an error nobody awaited is read, not reported."""
    if coro is None:
        yield None
        return
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait([task])


async def to_the_end(step: Coroutine[Any, Any, T]) -> T:
    """Run ``step`` to its end even if the caller is cancelled meanwhile; then the cancellation goes on.

    ``asyncio.shield`` alone lets the caller go at once, with ``step`` still running: the run's last
    flush could then start beside it, or DEST's lock be released while a worker thread still
    writes in it. This waits it out, as a shielded cancel scope does.
    """
    task = asyncio.ensure_future(step)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)     # the step's own error, if any, comes out here
            break
        except asyncio.CancelledError:
            if task.cancelled():                # the step itself was cancelled: the loop is closing
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


async def until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event | None) -> bool:
    """Run ``work``; if ``stop`` is set before it ends, cancel it and wait while it unwinds.

    True when the work was stopped. An error the work raises, also while unwinding, comes out as
    itself; work that ended on its own as the stop came is not "stopped". The caller's own
    cancellation cancels the work too, waits for it, and goes on as a cancellation.
    """
    if stop is None:
        await work
        return False
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
    if task.cancelled():
        return True
    task.result()
    return False
