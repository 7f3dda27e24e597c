"""What a sync shows while it runs and how a stopped one ends, in-process against the emulator: the
bar on a resume (the whole selection, what was here counted as done, the money beside it), a run
told to stop (rows flushed, status ``interrupted``, exit 130, then resumed with nothing paid twice),
the time estimate and rclone's duration syntax for ``--stats``."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from mirror_testkit import FAST_RETRIES, FAST_TIMEOUTS, all_items, do_sync

import mirror
from mirror.cli.output import Progress, parse_duration, stats_interval
from mirror.config import ApiKey
from mirror.engine.outlook import describe_duration, estimate_seconds, listing_calls
from mirror.engine.sync import run_sync
from mirror.errors import EXIT_INTERRUPTED, UsageError
from mirror.jobs import Selection, SyncJob

BENCH = "synthetic-face-v1"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _job(dest, concurrency=4) -> SyncJob:
    return SyncJob(selection=Selection(benchmark=BENCH), dest=dest,
                   limits=mirror.Limits(rate_limit=100_000, concurrency=concurrency))


async def test_a_sync_told_to_stop_flushes_its_rows_reports_interrupted_and_resumes(emulator, account, tmp_path):
    dest = tmp_path / "m"
    emulator.admin.set_faults(latency_ms=10)
    stop = asyncio.Event()
    placed = 0

    def count(items: int, nbytes: int) -> None:
        nonlocal placed
        placed += items
        if placed >= 20:
            stop.set()

    report = await run_sync(_job(dest), api_key=ApiKey(account.key), base_url=emulator.url, progress=count,
                            timeouts=FAST_TIMEOUTS, retries=FAST_RETRIES, stop=stop)
    total = len(all_items(emulator, account))
    assert report.status == "interrupted" and report.exit_code == EXIT_INTERRUPTED
    assert 20 <= report.mirrored < total and report.matching == total and report.left == total - report.mirrored
    assert mirror.open_manifest(dest).count_rows() == report.mirrored
    assert "run the same command again to resume" in report.summary_line()
    emulator.admin.set_faults(latency_ms=0)
    again = await do_sync(emulator, account, dest)
    assert again.status == "complete" and again.left == 0
    assert mirror.open_manifest(dest).count_rows() == total
    assert emulator.admin.ledger(account.name)["charge_count"] == total == report.charged + again.charged


async def test_the_bar_of_a_resumed_sync_counts_what_was_here_as_done_and_shows_the_money(emulator, account,
                                                                                            tmp_path):
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest, max_credits=100)
    assert first.status == "budget" and first.mirrored == 100
    screen = _Terminal()
    progress = Progress(enabled=True, stream=screen)
    try:
        report = await run_sync(_job(dest), api_key=ApiKey(account.key), base_url=emulator.url,
                                progress=progress.advance, on_total=progress.set_total, timeouts=FAST_TIMEOUTS,
                                retries=FAST_RETRIES)
    finally:
        progress.close()
    total = len(all_items(emulator, account))
    frames = [f for f in screen.getvalue().split("\r") if f.strip()]
    assert report.status == "complete" and frames, screen.getvalue()
    assert f" 100/{total} " in frames[0], frames[0]          # the whole selection; what was here is done
    last = frames[-1]
    assert f" {total}/{total} " in last, last
    balance = emulator.admin.ledger(account.name)["balance"]
    assert re.search(rf"{total - 100} charged, 0 failed, [\d.]+ MB, balance {balance:,}", last), last


def test_rclone_durations_for_stats() -> None:
    assert [parse_duration(t) for t in ("30s", "1m", "1h30m", "500ms", "45", "0", "off", "2.5s")] == \
        [30, 60, 5400, 0.5, 45, 0, 0, 2.5]
    for bad in ("5x", "-1s", "1m-", "", "m", "-3"):
        with pytest.raises(UsageError, match="--stats"):
            parse_duration(bad)
    assert stats_interval(None, quiet=False, stream=io.StringIO()) == 60       # off a terminal: a cron log
    assert stats_interval(None, quiet=False, stream=_Terminal()) == 0          # the bar shows it
    assert stats_interval(None, quiet=True, stream=io.StringIO()) == 0
    assert stats_interval("10s", quiet=True, stream=io.StringIO()) == 10       # asked for: given


def test_the_time_estimate_is_one_api_call_per_item_plus_the_pages_at_the_rate() -> None:
    assert listing_calls(10_000) == 20 + 2
    assert estimate_seconds(10_000, 60, listing_calls(10_000)) == 10_022
    assert describe_duration(10_022) == "about 2 h 47 min"
    assert [describe_duration(s) for s in (59, 300, 3600, 200_000)] == \
        ["under a minute", "about 5 min", "about 1 h", "about 2 days 7 h"]
