"""One pacing gate per API key, shared by every API call the mirror makes.

The server allows each key N requests in any rolling minute and answers 429 past that with no
Retry-After header, so the client has to know the limit and stay under it by itself. Requests
are paced evenly (one slot every 60/N s, slightly slower than the limit so clock jitter and
network delay cannot push a window over N) rather than burst: a burst of N would be followed by a
full minute of silence, and a sliding-window server would answer the next request with 429.

On a 429 the limiter halves its rate (other scripts may share the key, or the key's real limit
is lower than configured), pauses every caller for a jittered, growing back-off, and remembers the
rate that failed. Successes then climb back quickly to just under that ceiling and probe past it
slowly, so a limiter told a too-high limit converges instead of oscillating.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]

_SAFETY = 0.985          # pace at 98.5 % of the stated limit
_MIN_PER_MINUTE = 1.0
_MAX_BACKOFF_S = 60.0


class RateLimiter:
    """Evenly paced, adaptive gate: ``await acquire()`` before each API request."""

    def __init__(self, per_minute: float, *, backoff: float = 0.25, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.target = float(per_minute)
        self.rate = float(per_minute)
        self.throttled = 0               # 429s seen, for the run report
        self._ceiling: float | None = None
        self._streak = 0                 # consecutive 429s, drives the back-off
        self._next = 0.0                 # earliest time the next slot may start
        self._backoff = backoff          # first pause after a 429, doubled per consecutive 429
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def interval(self) -> float:
        return 60.0 / (self.rate * _SAFETY)

    async def acquire(self) -> None:
        """Wait for this caller's slot. Slots are handed out in call order, one per interval."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def on_success(self) -> None:
        self._streak = 0
        if self.rate >= self.target:
            return
        if self._ceiling is not None and self.rate < 0.9 * self._ceiling:
            self.rate += max(0.1 * (0.9 * self._ceiling - self.rate), 0.01 * self.target)
        else:
            self.rate += 0.002 * self.target      # probe slowly past the last failing rate
            if self._ceiling is not None and self.rate > self._ceiling:
                self._ceiling = self.rate
        self.rate = min(self.rate, self.target)

    def on_throttled(self) -> float:
        """Record a 429: lower the rate, push every caller back, return the pause in seconds."""
        self.throttled += 1
        self._streak += 1
        if self._streak == 1:             # the rate that failed is the one before this streak began
            self._ceiling = self.rate
        self.rate = max(_MIN_PER_MINUTE, self.rate / 2)
        base = min(_MAX_BACKOFF_S, self._backoff * 2 ** min(self._streak, 8))
        pause = base * (0.5 + self._rng.random())   # jitter: callers sharing a key do not re-sync
        self._next = max(self._next, self._clock() + pause)
        return pause
