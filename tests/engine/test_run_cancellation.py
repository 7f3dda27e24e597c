"""A flush that a cancellation interrupts runs to its end first: a part on disk whose items are not
marked done in the journal would be fetched again by the next run. A run asked to stop unwinds
through its own ``finally`` blocks and says it was stopped; the caller's own cancellation stays one."""

from __future__ import annotations

import asyncio

import pytest

from mirror.engine.tasks import to_the_end, until_stopped


async def test_a_step_cancelled_midway_finishes_before_the_cancellation_goes_on() -> None:
    steps: list[str] = []

    async def step() -> None:
        steps.append("start")
        await asyncio.sleep(0.05)
        steps.append("end")

    async def caller() -> None:
        await to_the_end(step())
        steps.append("after")            # not reached: the caller was cancelled

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()                        # a second cancellation is waited out too
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["start", "end"]


async def test_a_step_that_fails_reports_its_own_error() -> None:
    async def step() -> None:
        await asyncio.sleep(0)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        await to_the_end(step())


async def test_until_stopped_cancels_the_work_which_unwinds_through_its_finally() -> None:
    stop = asyncio.Event()
    steps: list[str] = []

    async def work() -> None:
        try:
            steps.append("start")
            stop.set()
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01)        # a last flush may await
            steps.append("flushed")

    assert await until_stopped(work(), stop) is True
    assert steps == ["start", "flushed"]


async def test_until_stopped_is_false_for_work_that_ends_and_passes_errors_on() -> None:
    stop = asyncio.Event()

    async def quick() -> None:
        await asyncio.sleep(0)

    async def broken() -> None:
        raise OSError(28, "No space left on device")

    assert await until_stopped(quick(), stop) is False
    assert await until_stopped(quick(), None) is False
    with pytest.raises(OSError, match="No space"):
        await until_stopped(broken(), stop)


async def test_until_stopped_passes_the_callers_own_cancellation_on_after_the_work_unwound() -> None:
    stop = asyncio.Event()
    steps: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            steps.append("unwound")

    task = asyncio.create_task(until_stopped(work(), stop))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["unwound"]
