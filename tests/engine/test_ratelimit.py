"""The per-key limiter, against a simulated sliding-window server on a simulated clock.

The server's rule is the emulator's: at most N accepted requests in any rolling 60 s, 429s do
not count. The simulation is one caller doing what the client does: wait for a slot, send,
report the outcome (and sleep out the pause on a 429).
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import deque

from mirror.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class WindowServer:
    def __init__(self, limit: int, *, spurious: float = 0.0, seed: int = 0) -> None:
        self.limit = limit
        self.accepted: deque[float] = deque()
        self.spurious = spurious
        self.rng = random.Random(seed)
        self.rejected = 0

    def allow(self, now: float) -> bool:
        while self.accepted and self.accepted[0] <= now - 60.0:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit or self.rng.random() < self.spurious:
            self.rejected += 1
            return False
        self.accepted.append(now)
        return True


def simulate(monkeypatch, *, told: float, server: WindowServer, successes: int) -> tuple[float, RateLimiter]:
    clock = Clock()

    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = RateLimiter(told, clock=clock, rng=random.Random(1))

    async def run() -> None:
        done = 0
        while done < successes:
            await limiter.acquire()
            clock.now += 0.002                   # the request's own time on the wire
            if server.allow(clock.now):
                limiter.on_success()
                done += 1
            else:
                limiter.on_throttled()

    asyncio.run(run())
    return clock.now, limiter


class SimLoop:
    """Simulated time for several concurrent callers: sleeps wake in time order, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._real_sleep = asyncio.sleep

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), self._seq, fut))
        self._seq += 1
        await fut

    async def drive(self, tasks: list[asyncio.Task[None]]) -> None:
        while not all(t.done() for t in tasks):
            for _ in range(4):                        # let every runnable caller reach its next sleep
                await self._real_sleep(0)
            if self._sleepers:
                wake, _, fut = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                fut.set_result(None)
        for t in tasks:
            t.result()


def simulate_callers(monkeypatch, *, told: float, server: WindowServer, successes: int,
                     callers: int) -> tuple[float, RateLimiter]:
    """``callers`` tasks sharing one limiter, as the mirror's reservers do; 10 ms per request."""
    sim = SimLoop()
    limiter = RateLimiter(told, clock=sim, rng=random.Random(3))
    done = 0

    async def caller() -> None:
        nonlocal done
        while done < successes:
            await limiter.acquire()
            await sim.sleep(0.010)
            if server.allow(sim.now):
                limiter.on_success()
                done += 1
            else:
                await sim.sleep(limiter.on_throttled())

    async def run() -> None:
        monkeypatch.setattr(asyncio, "sleep", sim.sleep)
        tasks = [asyncio.get_running_loop().create_task(caller()) for _ in range(callers)]
        await sim.drive(tasks)

    asyncio.run(run())
    return sim.now, limiter


def test_many_callers_told_the_right_limit_never_meet_a_429(monkeypatch):
    server = WindowServer(600)
    elapsed, _ = simulate_callers(monkeypatch, told=600, server=server, successes=3000, callers=16)
    assert server.rejected == 0
    assert 3000 / (elapsed / 60) >= 0.975 * 600, "paced at 98.5 % of the limit, less the run's last slot"


def test_many_callers_told_twice_the_limit_converge_without_a_long_stall(monkeypatch):
    server = WindowServer(600)
    elapsed, limiter = simulate_callers(monkeypatch, told=1200, server=server, successes=3000, callers=32)
    assert limiter.throttled <= 60, "in-flight 429s do not multiply"
    assert elapsed <= (3000 / 600) * 60 * 1.15, f"{elapsed:.0f} s: the pause did not balloon"


def test_told_the_right_limit_it_never_meets_a_429_and_uses_98_percent(monkeypatch):
    server = WindowServer(600)
    elapsed, limiter = simulate(monkeypatch, told=600, server=server, successes=2000)
    assert server.rejected == 0 and limiter.throttled == 0
    assert 2000 / (elapsed / 60) >= 0.98 * 600


def test_told_twice_the_limit_it_converges_in_one_episode(monkeypatch):
    server = WindowServer(600)
    elapsed, limiter = simulate(monkeypatch, told=1200, server=server, successes=3000)
    assert limiter.throttled <= 25, "a handful of 429s, not a storm"
    assert elapsed <= (3000 / 600) * 60 * 1.1, "within 10 % of the best possible time"


def test_told_twice_the_limit_it_resumes_when_the_window_reopens(monkeypatch):
    """The server's window fills ~30 s in and has room again 60 s after the first success. The
    limiter knows that moment, so the key must not sit idle long past it waiting out a back-off
    that has doubled to 16-48 s by then."""
    server = WindowServer(600)
    accepted: list[float] = []
    allow = server.allow

    def recording(now: float) -> bool:
        ok = allow(now)
        if ok:
            accepted.append(now)
        return ok

    server.allow = recording
    elapsed, limiter = simulate_callers(monkeypatch, told=1200, server=server, successes=1500, callers=32)
    assert limiter.throttled >= 5, "the window filled and the lockout happened"
    reopened = accepted[0] + 60.0
    assert all(not reopened - 29 < t < reopened for t in accepted), "nothing got through a full window"
    resumed = min(t for t in accepted if t >= reopened)
    assert resumed <= reopened + 1.0, f"idle {resumed - reopened:.1f} s after the window reopened"
    late = [t for t in accepted if t >= resumed]
    assert len(late) / ((elapsed - resumed) / 60) >= 0.9 * 600, "and then it ran at the settled rate"


def test_told_ten_times_the_limit_still_converges(monkeypatch):
    server = WindowServer(300)
    elapsed, limiter = simulate(monkeypatch, told=3000, server=server, successes=1500)
    assert limiter.throttled <= 40
    assert elapsed <= (1500 / 300) * 60 * 1.15


def test_spurious_429s_are_backed_off_but_do_not_collapse_the_rate(monkeypatch):
    server = WindowServer(1_000_000, spurious=0.3, seed=5)
    elapsed, limiter = simulate(monkeypatch, told=100_000, server=server, successes=3000)
    assert limiter.throttled > 1000, "the storm happened"
    assert limiter.limit >= 100_000 / 4, "load shedding was not mistaken for a tiny limit"
    assert limiter.rate >= 10_000
    assert 0.25 * limiter.throttled <= elapsed <= 1.5 * limiter.throttled, "every 429 paused; never a hot loop"


def test_pauses_grow_while_429s_continue_and_carry_jitter():
    clock = Clock()
    limiter = RateLimiter(600, backoff=0.25, clock=clock, rng=random.Random(1))
    pauses = [limiter.on_throttled() for _ in range(4)]
    assert pauses == sorted(pauses) and 0.25 <= pauses[0] <= 0.75
    assert len({round(p / (0.25 * 2 ** (i + 1)), 6) for i, p in enumerate(pauses)}) > 1, "jittered"
