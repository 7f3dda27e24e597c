"""The scoring actor of a distributed run: the in-process per-file path, over one batch at a time.

Ray Data constructs ``ScoreWorker`` once per actor, so the detector (and a detector class's
model) loads once per worker, and calls it with batches of distinct files. Each batch runs
through the same ``_Run`` as an in-process ``score`` (hash check, submission-log decisions,
rejection and error rows), so both runs decide and record alike; its rows go back to the driver,
which alone writes them. A remote detector's requests are paced by the token's shared ``Pacer``
and journaled through the ``SubmissionKeeper`` before they are sent.

A fatal error (a revoked token) does not raise through Ray, which would keep only its text: the
batch answers with the rows it finished and a ``stop`` row carrying the message and exit code.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mirror.cluster.actors import SharedLimiter, SubmissionClient
from mirror.config import Retries, Timeouts
from mirror.detectors.base import Detector
from mirror.detectors.options import DetectorOptions, Pacing
from mirror.detectors.registry import load_detector
from mirror.detectors.scoring import ScoreReport, _Group, _Run  # the in-process run's own per-file path
from mirror.errors import EXIT_INTERNAL, MirrorError
from mirror.store import Layout
from mirror.store.verdicts import SCORES_SCHEMA

__all__ = ["ScoreWorker", "WorkerSpec", "GROUPS_SCHEMA", "OUTPUT_SCHEMA"]

# One distinct file to score: what the driver's selection hands the workers.
GROUPS_SCHEMA = pa.schema([pa.field("sha256", pa.string()), pa.field("path", pa.string()),
                           pa.field("ids", pa.list_(pa.string())), pa.field("benchmark", pa.string())])

# What a batch answers: its score rows (kind "row"), then one "stats" row with its counts and,
# after a fatal error, the message and exit code that stop the run.
OUTPUT_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in SCORES_SCHEMA] + [
    pa.field("kind", pa.string()), pa.field("submissions", pa.int64()), pa.field("resumed", pa.int64()),
    pa.field("requests", pa.int64()), pa.field("stop_message", pa.string()), pa.field("stop_code", pa.int32())])


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to open the detector; tokens stay inside ``options`` (never in a repr)."""

    dest: str
    detector: str
    options: DetectorOptions = field(repr=False)
    rate_limit: float = 60.0          # requests per minute for the whole run (held by the pacer)
    concurrency: int = 8              # a remote detector's files in flight per worker
    batch_size: int = 64              # a batch detector's largest call
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    pacer: Any = field(default=None, repr=False)         # the token's Pacer (remote detectors)
    submissions: Any = field(default=None, repr=False)   # the run's SubmissionKeeper (remote detectors)
    sys_path: tuple[str, ...] = ()                       # the driver's import path, for local clusters


class ScoreWorker:
    """A callable class for ``Dataset.map_batches``: a GROUPS_SCHEMA table in, an OUTPUT_SCHEMA table out."""

    def __init__(self, spec: WorkerSpec) -> None:
        self._spec = spec
        self._layout = Layout(Path(spec.dest))
        self._loop = asyncio.new_event_loop()
        self._stop: tuple[str, int] | None = None
        self._submissions = SubmissionClient(spec.submissions) if spec.submissions is not None else None
        self._concurrency = spec.concurrency
        try:
            self._detector = self._open(spec)
        except MirrorError as exc:          # e.g. the model's constructor failed: said by the first batch
            self._stop = (str(exc), exc.exit_code)
        except Exception as exc:            # the detector's module failed to import: not retried by Ray
            self._stop = _internal(exc)

    def _open(self, spec: WorkerSpec) -> Detector:
        for entry in spec.sys_path:
            if entry not in sys.path:
                sys.path.append(entry)
        pacing = Pacing(rate_limit=spec.rate_limit, concurrency=spec.concurrency, timeouts=spec.timeouts,
                        retries=spec.retries)
        detector = load_detector(spec.detector, spec.options, pacing)
        if not detector.remote:
            # A local model is this worker's one unit of work: one call at a time (a batch one gets
            # the whole batch), while two files are read ahead of it.
            batched = getattr(detector, "batch_input", None) is not None
            self._concurrency = spec.batch_size if batched else 2
            detector = load_detector(spec.detector, spec.options,
                                     Pacing(concurrency=spec.batch_size if batched else 1))
        elif spec.pacer is not None:
            detector.http.limiter = SharedLimiter(spec.pacer)  # type: ignore[attr-defined]
        self._loop.run_until_complete(detector.__aenter__())
        return detector

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._stop is not None:
            return _answer([], 0, 0, 0, self._stop)
        detector = self._detector
        groups = [_Group(row["sha256"], row["path"], tuple(row["ids"]), row["benchmark"])
                  for row in batch.to_pylist()]
        if self._submissions is not None:
            self._submissions.load([g.sha256 for g in groups])
        rows: list[dict[str, Any]] = []
        report = ScoreReport(detector=detector.name, dest=self._spec.dest)
        run = _Run(self._layout, detector, self._submissions, None, report, self._concurrency,
                   write_rows=rows.extend)
        http = getattr(detector, "http", None)
        requests_before = getattr(http, "requests", 0)
        stop: tuple[str, int] | None = None
        try:
            self._loop.run_until_complete(run.run(groups))
        except MirrorError as exc:              # a fatal error (a refused token): the run stops
            stop = (str(exc), exc.exit_code)
        except Exception as exc:
            stop = _internal(exc)
        self._stop = stop
        return _answer(rows, report.submissions, report.resumed, getattr(http, "requests", 0) - requests_before,
                       stop)


def _internal(exc: BaseException) -> tuple[str, int]:
    return f"a Ray worker failed: {type(exc).__name__}: {str(exc)[:200]}", EXIT_INTERNAL


def _answer(rows: list[dict[str, Any]], submissions: int, resumed: int, requests: int,
            stop: tuple[str, int] | None) -> pa.Table:
    stats = {"kind": "stats", "submissions": submissions, "resumed": resumed, "requests": requests,
             "stop_message": stop[0] if stop else None, "stop_code": stop[1] if stop else None}
    return pa.Table.from_pylist([{**row, "kind": "row"} for row in rows] + [stats], schema=OUTPUT_SCHEMA)
