"""The two actors a distributed score run shares: one pacer per token, one keeper of the submission log.

``Pacer`` holds the project's own ``RateLimiter`` (``mirror.ratelimit``): every worker's request
waits for a slot from it, reports its success or 429 to it, so the cluster as a whole paces
evenly under the service's limit and backs off together. It is a named, detached actor keyed
by a digest of the service URL and token (never the token itself), so runs on one cluster that
use the same token share one budget; it ends itself after ``_IDLE_S`` without a request.

``SubmissionKeeper`` holds the run's ``SubmissionLog`` (``mirror.store.submissions``), on the
driver's node where DEST is: workers journal through it with blocking calls, so a ``submit`` record
is on disk before the upload starts, exactly as in-process. There is one log and one writer of it.

The proxies (``SharedLimiter``, ``SubmissionClient``) give a worker the interfaces the in-process
code already calls (``limiter.acquire``..., ``submission_log.entries``, ``.submitting``...).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import ray

from mirror.cluster.session import NAMESPACE
from mirror.errors import MirrorError
from mirror.ratelimit import RateLimiter
from mirror.store import Layout
from mirror.store.submissions import Entry, SubmissionLog

__all__ = ["Pacer", "SubmissionKeeper", "SharedLimiter", "SubmissionClient", "pacer_for", "submission_keeper",
           "budget_name"]

_IDLE_S = 600.0


def budget_name(service_url: str, secret: str) -> str:
    """The pacer's actor name for one token of one service: a digest, so no listing shows the token."""
    digest = hashlib.sha256(f"margen-mirror pacer\0{service_url}\0{secret}".encode()).hexdigest()
    return f"pacer-{digest[:24]}"


class Pacer:
    """One rate budget for every worker of every run that uses the same token (an async actor)."""

    def __init__(self, per_minute: float, backoff: float) -> None:
        self._limiter = RateLimiter(per_minute, backoff=backoff)
        self._granted = 0
        self._used = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    async def configure(self, per_minute: float, backoff: float) -> None:
        """The latest run's ``--rate-limit`` applies from now on."""
        self._touch()
        if per_minute != self._limiter.target:
            self._limiter = RateLimiter(per_minute, backoff=backoff)

    async def acquire(self) -> None:
        self._touch()
        await self._limiter.acquire()
        self._granted += 1

    async def on_success(self) -> None:
        self._limiter.on_success()

    async def on_throttled(self) -> float:
        return self._limiter.on_throttled()

    async def stats(self) -> dict[str, float]:
        return {"granted": self._granted, "throttled": self._limiter.throttled, "rate": self._limiter.rate}

    def _touch(self) -> None:
        self._used.set()
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._end_when_idle())

    async def _end_when_idle(self) -> None:
        while True:
            self._used.clear()
            try:
                await asyncio.wait_for(self._used.wait(), _IDLE_S)
            except TimeoutError:
                break
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


class SubmissionKeeper:
    """The run's submission log, in one actor on the driver's node; calls are handled one at a time."""

    def __init__(self, dest: str, detector: str) -> None:
        self._log: SubmissionLog | None = None
        self._refused: MirrorError | None = None
        try:
            self._log = SubmissionLog(Layout(Path(dest)), detector)
        except MirrorError as exc:               # lock held, DEST unwritable: said by ``refused``
            self._refused = exc

    def refused(self) -> MirrorError | None:
        """Why the log could not be opened (``LockHeldError``, ``DestinationError``), or None."""
        return self._refused

    def entries_for(self, shas: list[str]) -> dict[str, Entry]:
        assert self._log is not None
        return {sha: self._log.entries[sha] for sha in shas if sha in self._log.entries}

    def submitting(self, sha256: str, item_id: str) -> None:
        assert self._log is not None
        self._log.submitting(sha256, item_id)

    def submitted(self, sha256: str, job: str) -> None:
        assert self._log is not None
        self._log.submitted(sha256, job)

    def not_taken(self, sha256: str) -> None:
        assert self._log is not None
        self._log.not_taken(sha256)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class SharedLimiter:
    """A worker's limiter: ``DetectorHttp`` and ``MargenClient`` call it as they call a ``RateLimiter``."""

    def __init__(self, pacer: Any) -> None:
        self._pacer = pacer

    async def acquire(self) -> None:
        await self._pacer.acquire.remote()

    def on_success(self) -> None:
        self._pacer.on_success.remote()         # nobody waits for it

    def on_throttled(self) -> float:
        return float(ray.get(self._pacer.on_throttled.remote()))

    def __repr__(self) -> str:
        return "SharedLimiter()"


class SubmissionClient:
    """A worker's submission log: ``entries`` of the current batch, and records on disk before each call returns."""

    def __init__(self, keeper: Any) -> None:
        self._keeper = keeper
        self.entries: dict[str, Entry] = {}

    def load(self, shas: list[str]) -> None:
        """What the log says now about these files (a retried batch sees its dead attempt's records)."""
        self.entries = ray.get(self._keeper.entries_for.remote(shas))

    def submitting(self, sha256: str, item_id: str) -> None:
        ray.get(self._keeper.submitting.remote(sha256, item_id))
        self.entries[sha256] = Entry(item_id)

    def submitted(self, sha256: str, job: str) -> None:
        ray.get(self._keeper.submitted.remote(sha256, job))
        self.entries.setdefault(sha256, Entry("")).job = job

    def not_taken(self, sha256: str) -> None:
        ray.get(self._keeper.not_taken.remote(sha256))
        self.entries.pop(sha256, None)


def pacer_for(service_url: str, secret: str, per_minute: float, backoff: float) -> Any:
    """The cluster's pacer for this token (created on first use), set to ``per_minute``."""
    actor = ray.remote(Pacer).options(name=budget_name(service_url, secret), namespace=NAMESPACE,
                                      get_if_exists=True, lifetime="detached", num_cpus=0,
                                      max_concurrency=10_000).remote(per_minute, backoff)
    ray.get(actor.configure.remote(per_minute, backoff))
    return actor


def submission_keeper(dest: str, detector: str) -> Any:
    """The submission log's actor on this (the driver's) node; raises the log's own error if it cannot open."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    keeper = ray.remote(SubmissionKeeper).options(num_cpus=0, scheduling_strategy=here).remote(dest, detector)
    refused = ray.get(keeper.refused.remote())
    if refused is not None:
        ray.kill(keeper)
        raise refused
    return keeper
