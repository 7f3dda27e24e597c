"""The one worker pool under sync and score: every unit done once by at most N workers, memory
bounded by the queue, a periodic flush that a cancellation waits out, a last flush whatever stops
the run, and a worker's fatal error out as itself, not as a group."""

from __future__ import annotations

import asyncio

import pytest

from mirror.engine.tasks import until_stopped
from mirror.engine.workers import Put, run_pool
from mirror.errors import DestinationError


class Record:
    """What a pool did, in order: units worked, flushes, and the last flush."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.done: list[int] = []

    async def flush(self) -> None:
        self.events.append("flush")

    def last_flush(self) -> None:
        self.events.append("last")


async def test_every_unit_is_worked_once_by_at_most_n_workers_and_the_feed_waits_for_room() -> None:
    rec = Record()
    running = peak = 0
    fed = 0
    ahead = 0                       # units fed but not yet finished, at the worst moment

    async def feed(put: Put[int]) -> None:
        nonlocal fed, ahead
        for i in range(1, 201):
            await put(i)
            fed += 1
            ahead = max(ahead, fed - len(rec.done))

    async def work(unit: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        rec.done.append(unit)

    await run_pool(feed, work, concurrency=4, queue_size=5, flush=rec.flush, last_flush=rec.last_flush,
                   flush_every=60)
    assert sorted(rec.done) == list(range(1, 201))
    assert peak == 4
    assert ahead <= 5 + 4 + 1        # the queue, one unit in each worker, the one being put
    assert rec.events == ["flush", "last"]   # the flush as the work ends, then the last one


async def test_the_flush_runs_periodically_while_the_work_goes_on() -> None:
    rec = Record()

    async def feed(put: Put[int]) -> None:
        for i in range(1, 4):
            await put(i)

    async def work(unit: int) -> None:
        await asyncio.sleep(0.12)
        rec.done.append(unit)

    await run_pool(feed, work, concurrency=1, queue_size=1, flush=rec.flush, last_flush=rec.last_flush,
                   flush_every=0.05)
    assert rec.done == [1, 2, 3]
    assert rec.events.count("flush") >= 4       # ~0.36 s of work at one flush per 0.05 s, then the end's
    assert rec.events[-1] == "last"


async def test_a_workers_fatal_error_stops_the_others_and_comes_out_as_itself_after_the_last_flush() -> None:
    rec = Record()
    cancelled: list[int] = []

    async def feed(put: Put[int]) -> None:
        for i in range(1, 1001):
            await put(i)

    async def work(unit: int) -> None:
        if unit == 3:
            await asyncio.sleep(0.01)
            raise DestinationError("dest is full: free some space and run the same command again")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(unit)
            raise
        rec.done.append(unit)

    with pytest.raises(DestinationError, match="dest is full") as caught:
        await run_pool(feed, work, concurrency=3, queue_size=10, flush=rec.flush, last_flush=rec.last_flush,
                       flush_every=60)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert sorted(cancelled) == [1, 2]          # the other two workers were stopped, nothing more was taken
    assert rec.done == []
    assert rec.events == ["last"]


async def test_a_bug_in_the_feed_comes_out_as_itself_and_stops_the_workers() -> None:
    rec = Record()

    async def feed(put: Put[int]) -> None:
        await put(1)
        raise ValueError("a bug")

    async def work(unit: int) -> None:
        await asyncio.sleep(10)

    with pytest.raises(ValueError, match="a bug"):
        await run_pool(feed, work, concurrency=2, queue_size=2, flush=rec.flush, last_flush=rec.last_flush,
                       flush_every=60)
    assert rec.events == ["last"]


async def test_a_flush_interrupted_by_a_stop_runs_to_its_end_then_the_last_flush_runs() -> None:
    events: list[str] = []
    stop = asyncio.Event()

    async def feed(put: Put[int]) -> None:
        for i in range(1, 1001):
            await put(i)

    async def work(unit: int) -> None:
        await asyncio.sleep(0.01)

    async def flush() -> None:
        events.append("flush start")
        stop.set()                               # Ctrl-C arrives while a part is being written
        await asyncio.sleep(0.1)
        events.append("flush end")

    pool = run_pool(feed, work, concurrency=2, queue_size=4, flush=flush,
                    last_flush=lambda: events.append("last"), flush_every=0.02)
    assert await until_stopped(pool, stop) is True
    assert events == ["flush start", "flush end", "last"]


async def test_the_callers_cancellation_cancels_the_pool_after_its_last_flush() -> None:
    rec = Record()
    started = asyncio.Event()

    async def feed(put: Put[int]) -> None:
        for i in range(1, 1001):
            await put(i)

    async def work(unit: int) -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(run_pool(feed, work, concurrency=2, queue_size=4, flush=rec.flush,
                                        last_flush=rec.last_flush, flush_every=60))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.events == ["last"]
