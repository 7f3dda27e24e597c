"""The client's one worker pool: a feed, a bounded queue, N workers, a protected periodic flush, a last flush.

``sync`` (one item per turn: reserve, fetch, place, row) and ``score`` (one distinct file per turn:
submit, wait, row) are two uses of it. The rules it guards:

- memory stays flat: the feed waits whenever the queue is full;
- a worker's fatal error stops the feed and the other workers, and reaches the caller as that one
  error (``first_mirror_error``), not as a group;
- a periodic flush runs to its end even when the run is cancelled meanwhile (``to_the_end``): a part
  on disk whose work is not marked done would be done, or paid for, again;
- whatever stops the run (the end, an error, Ctrl-C, a stop), ``last_flush`` runs on the way out,
  with no await, so finished work is never lost.

asyncio's own ``TaskGroup`` and ``Queue``, not anyio's: aiohttp ties the client to asyncio anyway,
and importing anyio's asyncio backend would cost every sync CPU time before its first download.
``Queue.put`` and ``get`` only yield to the loop when they must wait, so an
item costs no extra loop turn on its way to a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from mirror.engine.tasks import to_the_end
from mirror.errors import first_mirror_error

__all__ = ["Put", "run_pool"]

T = TypeVar("T")
Put = Callable[[T], Awaitable[None]]     # hands one unit of work to the pool; waits while the queue is full


async def run_pool(feed: Callable[[Put[T]], Awaitable[None]], work: Callable[[T], Awaitable[None]], *,
                   concurrency: int, queue_size: int, flush: Callable[[], Coroutine[Any, Any, None]],
                   last_flush: Callable[[], None], flush_every: float) -> None:
    """Run ``feed(put)`` and ``concurrency`` workers, each awaiting ``work(unit)`` for one unit at a time.

    The pool ends when the feed has returned and every unit it put is done. ``flush()`` runs every
    ``flush_every`` seconds and once more as the work ends, each time to its end; ``last_flush()``
    runs in the ``finally``, also after an error or a cancellation. Units must not be None.
    """
    queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=queue_size)
    work_done = asyncio.Event()

    async def feeder() -> None:
        # A failure here raises out of the task group, which cancels the workers.
        await feed(queue.put)
        for _ in range(concurrency):
            await queue.put(None)        # one per worker: there is no more

    async def worker() -> None:
        get = queue.get
        while (unit := await get()) is not None:
            await work(unit)

    async def flusher() -> None:
        while not work_done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_every):
                    await work_done.wait()
            await to_the_end(flush())

    try:
        async with asyncio.TaskGroup() as outer:
            outer.create_task(flusher())
            async with asyncio.TaskGroup() as tg:
                tg.create_task(feeder())
                for _ in range(concurrency):
                    tg.create_task(worker())
            work_done.set()
    except BaseExceptionGroup as group:       # one worker's fatal error stopped them all
        raise first_mirror_error(group) from None
    finally:
        last_flush()
