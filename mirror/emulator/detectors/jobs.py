"""The asynchronous job store shared by both detector services, and their counters.

Both real services answer a submission at once and finish the analysis later, so clients must
poll (or wait, or take a callback). Here the analysis itself runs in a worker thread as soon as
the job is accepted, and the job becomes visible as finished only after ``processing_seconds``
have passed since submission, so a client sees a real ``processing`` phase of a known length.
Jobs live in memory: nothing submitted is written to disk unless a service asks for it.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Counters:
    """What tests and the scoring engine's checks read through ``/_admin/counters``.

    ``submissions`` counts accepted analysis requests (one per file in a batch), keyed again by the
    sha256 of the analysed bytes so "never submits the same file twice" is checkable; ``polls``
    counts status reads of unfinished or finished jobs; ``results_served`` counts responses that
    carried a finished result; ``rejected`` counts 4xx answers other than auth failures.
    ``api_requests`` counts API requests let through, ``rate_limited`` those answered 429 by the
    ``rate_limit``, and ``max_in_window`` the most let through in one rolling window.
    """

    submissions: int = 0
    submissions_by_sha256: Counter[str] = field(default_factory=Counter)
    polls: int = 0
    results_served: int = 0
    rejected: int = 0
    auth_failures: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    injected_failures: int = 0
    api_requests: int = 0
    rate_limited: int = 0
    max_in_window: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["submissions_by_sha256"] = dict(self.submissions_by_sha256)
        return out


@dataclass
class Job:
    """One accepted analysis. ``result`` is whatever the service's analysis returned."""

    id: str
    seq: int
    sha256: str
    submitted: float
    ready_at: float
    meta: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    finished_at: float | None = None
    deleted: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.done.is_set()


class JobStore:
    """Accepts jobs, runs their analysis off the event loop, releases them after the processing time.

    ``on_done`` (if given) is awaited once per job after it finishes or fails: the DFD service
    delivers ``callback_url`` from there. Background tasks are tracked and cancelled on close.
    """

    def __init__(self, processing_seconds: float,
                 on_done: Callable[[Job], Awaitable[None]] | None = None) -> None:
        self.processing_seconds = processing_seconds
        self.counters = Counters()
        self.jobs: dict[str, Job] = {}
        self._on_done = on_done
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0

    def submit(self, job_id: str, sha256: str, work: Callable[[], Any], **meta: Any) -> Job:
        """Register a job, count the submission and start its analysis."""
        now = time.time()
        self._seq += 1
        job = Job(job_id, self._seq, sha256, now, now + self.processing_seconds, dict(meta))
        self.jobs[job_id] = job
        self.counters.submissions += 1
        self.counters.submissions_by_sha256[sha256] += 1
        task = asyncio.get_running_loop().create_task(self._run(job, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job, work: Callable[[], Any]) -> None:
        try:
            job.result = await asyncio.get_running_loop().run_in_executor(None, work)
        except Exception as err:  # the analysis failed: the job fails, the server does not
            job.error = str(err) or type(err).__name__
            if not isinstance(err, ValueError):
                traceback.print_exc()
        await asyncio.sleep(max(job.ready_at - time.time(), 0.0))
        job.finished_at = time.time()
        job.done.set()
        if self._on_done is not None and not job.deleted:
            await self._on_done(job)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a fire-and-forget coroutine that close() will cancel (e.g. a batch callback)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return None if job is None or job.deleted else job

    def delete(self, job_id: str) -> bool:
        job = self.get(job_id)
        if job is None:
            return False
        job.deleted = True
        del self.jobs[job_id]
        return True

    def live(self) -> list[Job]:
        """Jobs newest first (submission order, so paging is stable while nothing new arrives)."""
        return sorted(self.jobs.values(), key=lambda j: j.seq, reverse=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


JOBS_KEY: web.AppKey[JobStore] = web.AppKey("detector_jobs", JobStore)
