"""A flush that a cancellation interrupts runs to its end first: a part on disk whose items are not
marked done in the journal would be fetched again by the next run."""

from __future__ import annotations

import asyncio

import pytest

from mirror.engine.run import _to_the_end


async def test_a_step_cancelled_midway_finishes_before_the_cancellation_goes_on() -> None:
    steps: list[str] = []

    async def step() -> None:
        steps.append("start")
        await asyncio.sleep(0.05)
        steps.append("end")

    async def caller() -> None:
        await _to_the_end(step())
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
        await _to_the_end(step())
