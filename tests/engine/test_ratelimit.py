"""The per-key limiter: evenly paced under the limit, halves on 429 with a growing pause, then recovers."""

from __future__ import annotations

import asyncio
import random

from mirror.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_slots_are_evenly_paced_below_the_limit(monkeypatch):
    clock = Clock()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = RateLimiter(600, clock=clock)
    for _ in range(601):
        await limiter.acquire()
    # 601 slots at >= 60/600 s apart: the last starts after a full minute, so no rolling minute holds 601.
    assert clock.now >= 60.0
    assert clock.now <= 60.0 / 0.98
    assert min(slept) > 0.0999


def test_throttle_halves_rate_backs_off_with_jitter_and_recovers():
    clock = Clock()
    limiter = RateLimiter(600, backoff=0.25, clock=clock, rng=random.Random(1))
    pauses = [limiter.on_throttled() for _ in range(3)]
    assert limiter.rate == 600 / 8 and limiter.throttled == 3
    assert pauses[0] < pauses[1] < pauses[2], "consecutive 429s back off further"
    assert 0.25 <= pauses[0] <= 0.75
    for _ in range(200):
        limiter.on_success()
    assert limiter.rate == 600, "recovers to the configured rate once 429s stop"


def test_recovery_stays_under_a_lower_real_limit():
    limiter = RateLimiter(600, rng=random.Random(2))
    limiter.rate = 300
    limiter.on_throttled()                      # the server's real limit sits near 300
    for _ in range(30):
        limiter.on_success()
    assert 200 <= limiter.rate <= 300, "climbs back quickly to just under the rate that failed"
