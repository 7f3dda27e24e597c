"""One pacing gate per API key, shared by every API call the mirror makes.

The server allows each key N requests in any rolling minute and answers 429 past that with no
Retry-After header, so the client has to know the limit and stay under it by itself. Requests
are paced evenly (one slot every 60/N s, slightly slower than the limit so clock jitter and
network delay cannot push a window over N) rather than burst: a burst of N would be followed by a
full minute of silence, and a sliding-window server would answer the next request with 429.

When 429s arrive anyway (another script shares the key, the key's real limit is lower than
configured, or the server is shedding load):
- the first 429 of a run of them halves the rate, but never below the rate the server accepted
  over the last minute (it accepted that much, so it can again);
- every 429 pauses all callers for a jittered back-off that doubles while they continue; callers
  holding a slot when a pause begins wait it out too, and the 429s of requests already in flight
  when it began do not double it again (32 parallel callers must not turn one 429 into 32);
- a lockout (five 429s in a row, seconds apart) after a minute in which we sent about as fast as
  our pacing allowed means the server's window is full: the successes of that minute are then its
  real limit, and the rate settles just under that instead of being cut again. One lockout cuts
  the estimate by at most 4x, and 429s that arrive while pauses held us back are read as load
  shedding, not as a limit, so spurious bursts cannot talk the limiter down to a crawl;
- a full window has room again when its oldest success leaves it, which the limiter knows: from
  the lockout on, a pause ends then (plus a little jitter) if the doubled back-off would run past
  it (rather than idling well past the reopening: docs/design.md). This shortcut is taken once per
  streak: a 429 after it means someone else fills the window, and the back-off goes on doubling;
- successes climb back quickly to just under the estimated limit, then probe past it by about
  5 % a minute, so a limiter told too high a limit converges in one episode and rarely meets it
  again, and one hit by a passing burst of 429s recovers within seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]

_SAFETY = 0.985          # pace at 98.5 % of the stated limit
_SETTLE = 0.95           # sit at this share of the estimated limit
_PROBE = 0.05            # past it: climb this share of the rate per minute of successes
_LOCKOUT = 5             # consecutive 429s that mean the server's window is full
_MAX_CUT = 4.0           # one lockout lowers the limit estimate by at most this factor
_WINDOW_S = 60.0
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
        self.limit = float(per_minute)   # the best estimate of the server's real limit for this key
        self._streak = 0                 # consecutive 429s, drives the back-off
        self._let_through = 0            # successes in the minute before the current streak began
        self._paced = 0.0                # how many our pacing allowed in that time
        self._window_full = False        # this streak's lockout was our own successes filling the window
        self._reopen_waited = False      # a pause of this streak already ended when the window reopened
        self._first_success: float | None = None
        self._next = 0.0                 # earliest time the next slot may start
        self._paused_until = 0.0         # the end of the current 429 pause
        self._backoff = backoff          # first pause after a 429, doubled per consecutive 429
        self._successes: deque[float] = deque()   # times of the successes in the last minute
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def interval(self) -> float:
        return 60.0 / (self.rate * _SAFETY)

    async def acquire(self) -> None:
        """Wait for this caller's slot. Slots are handed out in call order, one per interval."""
        while True:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._paused_until <= slot:
                return
            # A 429 pause began after this slot was handed out: wait for a slot after it instead.

    def on_success(self) -> None:
        now = self._clock()
        if self._first_success is None:
            self._first_success = now
        self._successes.append(now)
        self._forget_before(now - _WINDOW_S)
        self._streak = 0
        self._window_full = self._reopen_waited = False
        settled = _SETTLE * self.limit
        if self.rate < settled:
            self.rate += max(0.1 * (settled - self.rate), _PROBE)      # back quickly to just under the limit
        else:
            self.rate += _PROBE                     # ~5 % of the rate per minute of successes at that rate
            self.limit = max(self.limit, self.rate / _SETTLE)
        self.rate = min(self.rate, self.target)

    def on_throttled(self) -> float:
        """Record a 429: settle under the server's real limit, push every caller back, return the pause."""
        self.throttled += 1
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now         # sent before the pause began: already answered
        self._streak += 1
        if self._streak == 1:
            self._forget_before(now - _WINDOW_S)
            self._let_through = len(self._successes)
            covered = min(_WINDOW_S, now - self._first_success) if self._first_success is not None else 0.0
            accepted = self._let_through * _WINDOW_S / covered if covered > 0.2 else 0.0   # per minute
            self._paced = self.rate * _SAFETY * covered / _WINDOW_S
            self.rate = max(_MIN_PER_MINUTE, min(self.rate, max(self.rate / 2, accepted)))
        elif self._streak == _LOCKOUT and self._let_through >= 0.5 * self._paced:
            # A full window: we sent about as fast as our pacing allowed and the server stopped us at
            # its count. (Had we been held back by pauses, the 429s would be load shedding instead.)
            self.limit = max(float(self._let_through), self.limit / _MAX_CUT)
            self.rate = max(_MIN_PER_MINUTE, min(self.rate, _SETTLE * self.limit))
            self._window_full = True
        base = min(_MAX_BACKOFF_S, self._backoff * 2 ** min(self._streak, 8))
        pause = base * (0.5 + self._rng.random())   # jitter: callers sharing a key do not re-sync
        if self._window_full and not self._reopen_waited:
            reopens = self._window_reopens_in(now)
            if reopens is not None and reopens < pause:
                pause, self._reopen_waited = reopens, True
        self._paused_until = now + pause
        self._next = max(self._next, self._paused_until)
        return pause

    def _window_reopens_in(self, now: float) -> float | None:
        """Seconds until the oldest success of the last minute leaves the server's window, plus a
        little jitter; None when none is left in it (then it is not our successes that fill it)."""
        self._forget_before(now - _WINDOW_S)
        if not self._successes:
            return None
        return self._successes[0] + _WINDOW_S - now + self._backoff * self._rng.random()

    def _forget_before(self, horizon: float) -> None:
        while self._successes and self._successes[0] < horizon:
            self._successes.popleft()
