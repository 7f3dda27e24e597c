"""``score --ray``: the same scoring run, its files spread over a Ray cluster's workers.

The driver (this process) decides what to score exactly as the in-process run does (the same
manifest selection, the same "already scored" check against ``DEST/scores``), makes a Ray
Dataset of the distinct files, and maps it through a pool of ``ScoreWorker`` actors (one model
per actor; ``gpus_per_worker`` reserves GPUs for each). It alone writes the verdicts, with the
same ``ScoresWriter`` into the same ``DEST/scores/<detector>/`` Parquet, every few seconds and on
the way out, whatever stops the run: ``report`` reads them unchanged, and either kind of run
resumes the other. A remote detector's submissions go through the run's one submission log (an
actor on this node) and its requests through the token's one pacer, shared by every worker.

A worker killed mid-batch is restarted by Ray and its batch retried: local verdicts are simply
computed again; remote ones consult the submission log first, so a file whose upload was
journaled is polled or reconciled, never sent twice. Workers that keep dying end the run as retryable.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mirror.cluster.session import ray_session
from mirror.config import Retries, Timeouts
from mirror.detectors.options import DetectorOptions, Pacing
from mirror.detectors.registry import load_detector, resolve_options
from mirror.detectors.scoring import ScoreReport, _Group, _to_score  # the in-process run's own selection
from mirror.engine.outcome import Failure
from mirror.errors import DestinationError, MirrorError, TransportError, UsageError
from mirror.store import Layout
from mirror.store.verdicts import SCORES_SCHEMA, ScoresWriter

__all__ = ["run_score_ray", "WorkerStopped"]

_FLUSH_EVERY_S = 2.0
_RESTARTS = 4                   # per worker: a model that kills its process every time ends the run


class WorkerStopped(MirrorError):
    """A worker's fatal error (a revoked token, a model that cannot load), with its exit code there."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]


def run_score_ray(dest: str | Path, detector: str, *, filters: dict[str, tuple[str, ...]] | None = None,
                  address: str | None = None, workers: int = 1, gpus_per_worker: float = 0.0,
                  batch_size: int = 64, concurrency: int = 8, rate_limit: float = 60.0,
                  options: DetectorOptions | None = None, timeouts: Timeouts = Timeouts(),
                  retries: Retries = Retries()) -> ScoreReport:
    """Score the mirrored items of ``dest`` matching ``filters`` with ``detector`` on a Ray cluster.

    ``address`` None starts a local cluster (or joins ``$RAY_ADDRESS``); a process already
    connected to Ray is used as it is. ``workers`` actors score ``batch_size`` files per task;
    a remote detector keeps ``concurrency`` files in flight per worker, all paced together at
    ``rate_limit`` requests per minute. Blocking: returns when every selected file has a row.
    """
    _check_numbers(workers, gpus_per_worker, batch_size, concurrency, rate_limit)
    started = time.monotonic()
    options = resolve_options(detector, options)
    for name in ("url_mode", "callback"):
        if getattr(options, name, False):
            raise UsageError(f"--{name.replace('_', '-')} does not work with --ray yet: drop one of them")
    det = load_detector(detector, options, Pacing(rate_limit=rate_limit, concurrency=concurrency))  # checks the name
    if not Layout(Path(dest)).manifest.is_dir():
        raise DestinationError(f"{dest} is not a mirror folder: run sync first")
    layout = Layout.prepare(dest)
    report = ScoreReport(detector=det.name, dest=str(layout.dest))
    todo = _to_score(layout, filters or {}, det, report)
    try:
        if todo:
            with ray_session(address):
                _score(layout, det.name, det.remote, todo, report, detector=detector, options=options,
                       workers=workers, gpus_per_worker=gpus_per_worker, batch_size=batch_size,
                       concurrency=concurrency, rate_limit=rate_limit, timeouts=timeouts, retries=retries)
    finally:
        report.elapsed_s = round(time.monotonic() - started, 3)
    report.status = "partial" if report.failed else "complete"
    return report


def _check_numbers(workers: int, gpus: float, batch_size: int, concurrency: int, rate_limit: float) -> None:
    if not 1 <= workers <= 4096:
        raise UsageError("--workers must be between 1 and 4096")
    if not 0 <= gpus <= 64:
        raise UsageError("--gpus-per-worker must be between 0 and 64 (fractions share a GPU)")
    if not 1 <= batch_size <= 100_000:
        raise UsageError("--batch-size must be between 1 and 100000")
    if not 1 <= concurrency <= 256:
        raise UsageError("--concurrency must be between 1 and 256")
    if rate_limit <= 0:
        raise UsageError("--rate-limit must be a positive number of requests per minute")


def _score(layout: Layout, name: str, remote: bool, todo: list[_Group], report: ScoreReport, *, detector: str,
           options: DetectorOptions, workers: int, gpus_per_worker: float, batch_size: int, concurrency: int,
           rate_limit: float, timeouts: Timeouts, retries: Retries) -> None:
    import ray
    import ray.data

    from mirror.cluster.actors import pacer_for, submission_keeper
    from mirror.cluster.worker import GROUPS_SCHEMA, ScoreWorker, WorkerSpec

    _check_resources(ray.cluster_resources(), workers, gpus_per_worker)
    keeper = pacer = None
    if remote:
        keeper = submission_keeper(str(layout.dest), name)
        token = getattr(options, "token", None)
        pacer = pacer_for(getattr(options, "url", name), token.reveal() if token is not None else "", rate_limit,
                          retries.backoff)
    try:
        spec = WorkerSpec(dest=str(layout.dest), detector=detector, options=options, rate_limit=rate_limit,
                          concurrency=concurrency, batch_size=batch_size, timeouts=timeouts, retries=retries,
                          pacer=pacer, submissions=keeper, sys_path=tuple(p or os.getcwd() for p in sys.path))
        table = pa.table({"sha256": [g.sha256 for g in todo], "path": [g.path for g in todo],
                          "ids": [list(g.ids) for g in todo], "benchmark": [g.benchmark for g in todo]},
                         schema=GROUPS_SCHEMA)
        blocks = [table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)]
        pool = {"fn_constructor_kwargs": {"spec": spec}, "batch_size": batch_size, "batch_format": "pyarrow",
                "compute": ray.data.ActorPoolStrategy(size=min(workers, len(blocks))), "num_cpus": 1,
                "num_gpus": gpus_per_worker or None}
        writer = ScoresWriter(layout, name, run_id=uuid.uuid4().hex[:12])
        _drain(_map(ray.data.from_arrow(blocks), ScoreWorker, pool), writer, report)
    finally:
        if keeper is not None:
            ray.get(keeper.close.remote())
            ray.kill(keeper)


def _map(dataset: Any, worker: type, pool: dict[str, Any]) -> Any:
    """``dataset.map_batches`` through an actor pool whose workers are restarted (and their batch
    retried) a few times, not forever: a model that kills its process every time ends the run,
    retryable. Ray deprecates the remote-argument keywords this takes and has no named one for it
    yet; a Ray without them gets its own default (restart without bound)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
            return dataset.map_batches(worker, **pool, max_restarts=_RESTARTS, max_task_retries=_RESTARTS)
    except TypeError:
        return dataset.map_batches(worker, **pool)


def _check_resources(resources: dict[str, Any], workers: int, gpus_per_worker: float) -> None:
    """Refuse, in one line, a pool the cluster can never place (Ray would wait for it forever)."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if cpus < workers:
        raise UsageError(f"the Ray cluster has {cpus:g} CPUs and each of --workers {workers} takes one: "
                         "lower --workers or add nodes")
    if gpus_per_worker and gpus < gpus_per_worker * workers:
        raise UsageError(f"the Ray cluster has {gpus:g} GPUs; --workers {workers} × --gpus-per-worker "
                         f"{gpus_per_worker:g} needs {gpus_per_worker * workers:g}: lower one or add GPU nodes")


def _drain(dataset: Any, writer: ScoresWriter, report: ScoreReport) -> None:
    """Take every batch's answer: rows into Parquet every few seconds and at the end, counts into ``report``."""
    import ray.exceptions

    pending: list[dict[str, Any]] = []
    flushed = time.monotonic()
    failed: dict[str, tuple[str, str]] = {}          # sha256 -> (first item id, error)
    try:
        for block in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            is_row = pc.equal(block.column("kind"), "row")
            rows = block.filter(is_row).select(SCORES_SCHEMA.names).to_pylist()
            pending.extend(rows)
            for row in rows:
                if row["status"] == "ok":
                    report.scored += 1
                elif row["status"] == "rejected":
                    report.rejected += 1
                else:
                    report.failed += 1
                    first = failed.get(row["sha256"])
                    if first is None or row["id"] < first[0]:
                        failed[row["sha256"]] = (row["id"], row["error"] or "")
            for stats in block.filter(pc.invert(is_row)).to_pylist():
                report.submissions += stats["submissions"] or 0
                report.resumed += stats["resumed"] or 0
                report.requests += stats["requests"] or 0
                if stats["stop_message"] is not None:
                    raise WorkerStopped(stats["stop_message"], stats["stop_code"])
            if time.monotonic() - flushed >= _FLUSH_EVERY_S:
                writer.write(pending)
                pending, flushed = [], time.monotonic()
    except ray.exceptions.RayError as exc:
        raise TransportError(f"the Ray cluster lost this run ({type(exc).__name__}): the verdicts it finished "
                             "are saved; run the same command again") from None
    finally:
        writer.write(pending)
        report.failures.extend(Failure(item_id, error, retryable=True) for item_id, error in failed.values())
