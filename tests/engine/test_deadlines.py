"""Total request deadlines (``mirror.api.deadlines``): one watchdog for every request in flight.

The API client and the storage fetcher send requests without aiohttp's per-request timer; these
tests hold them to the same promise: a server that stalls past the deadline is a clear retryable
failure within the deadline plus a tick, nothing is charged twice, and a cancellation from
outside stays a cancellation.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from mirror_testkit import do_sync

import mirror
from mirror.api.client import MargenClient
from mirror.api.deadlines import Deadlines
from mirror.config import ApiKey, Retries, Timeouts
from mirror.engine.sync import run_sync
from mirror.errors import TransportError
from mirror.jobs import Selection, SyncJob
from mirror.ratelimit import RateLimiter

TWO_TRIES = Retries(attempts=2, backoff=0.01, max_backoff=0.05, rate_limit_patience=10)


async def test_an_overdue_block_raises_timeout_and_the_task_carries_on():
    async with Deadlines(tick=0.05) as deadlines:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            with deadlines.limit(0.2):
                await asyncio.sleep(30)
        took = time.monotonic() - started
        assert 0.2 <= took < 1.0
        assert asyncio.current_task().cancelling() == 0     # the watchdog's cancel was taken back
        await asyncio.sleep(0.01)                             # ...so later awaits are not cancelled
        with deadlines.limit(5):                              # a block that ends in time is untouched
            await asyncio.sleep(0.01)


async def test_a_cancellation_from_outside_stays_a_cancellation():
    async with Deadlines(tick=0.05) as deadlines:
        async def waits() -> None:
            with deadlines.limit(30):
                await asyncio.sleep(30)

        task = asyncio.create_task(waits())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not deadlines._due                             # its deadline was dropped with it


async def test_limit_needs_a_running_watchdog():
    with pytest.raises(RuntimeError, match="async with Deadlines"):
        Deadlines().limit(1)


async def test_an_api_call_that_stalls_past_the_deadline_fails_in_time(emulator, account):
    emulator.admin.set_faults(api_slow=1.0, slow_seconds=5.0)
    client = MargenClient(ApiKey(account.key), emulator.url, limiter=RateLimiter(100_000),
                          timeouts=Timeouts(api=0.5, storage=5, connect=2), retries=TWO_TRIES)
    started = time.monotonic()
    async with client:
        with pytest.raises(TransportError, match="no answer before the deadline after 2 attempts"):
            await client.usage()
    took = time.monotonic() - started
    assert 1.0 <= took < 3.0          # two deadlines of 0.5 s plus a tick each, not two 5 s stalls
    assert emulator.admin.counters()["faults"]["api_slow"] == 2


async def test_a_storage_fetch_that_stalls_fails_in_time_and_is_paid_once(emulator, account, tmp_path):
    """Every signed URL stalls at first: each item's fetch fails after its deadline (charged, not
    written); once storage is healthy the next run fetches them free, since the account owns them."""
    job = SyncJob(selection=Selection(benchmark="synthetic-face-v1"), dest=tmp_path / "dest", max_credits=10,
                  limits=mirror.Limits(rate_limit=100_000, concurrency=8))
    emulator.admin.set_faults(storage_slow=1.0, slow_seconds=5.0)
    started = time.monotonic()
    first = await run_sync(job, api_key=ApiKey(account.key), base_url=emulator.url, retries=TWO_TRIES,
                           timeouts=Timeouts(api=5, storage=0.4, connect=2))
    took = time.monotonic() - started
    assert first.failed == 10 and first.mirrored == 0 and first.charged == 10
    assert all("no answer before the deadline" in f.reason and f.retryable for f in first.failures)
    assert took < 5.0                 # every fetch gave up at ~0.4 s, none waited out the 5 s stall
    assert emulator.admin.ledger(account.name)["charge_count"] == 10
    assert not any((tmp_path / "dest" / "images").rglob("*.jpg"))

    emulator.admin.set_faults(storage_slow=0.0)
    second = await do_sync(emulator, account, tmp_path / "dest", max_credits=10)
    assert second.recovered == 10 and second.mirrored == 20 and second.charged == 10 and second.failed == 0
    assert emulator.admin.ledger(account.name)["charge_count"] == 20          # the stalled 10 were not paid again
    rows = mirror.open_manifest(tmp_path / "dest").to_table().to_pylist()
    assert len(rows) == 20 and all((tmp_path / "dest" / r["path"]).is_file() for r in rows)
