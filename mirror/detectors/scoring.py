"""``score``: feed mirrored files to a detector and mirror its verdicts, resumable and submit-once.

Manifest rows (optionally filtered) are grouped by the file's sha256, the key of everything
here: identical bytes under two item ids are submitted once and get a row each. A file whose
newest row is ``ok`` (or ``rejected``, unless ``pad`` may now accept it) is skipped. For the
rest, the submission log decides: a recorded job is polled, an upload cut short by a kill is
reconciled with the service, and only a file the submission log has never seen is uploaded, after its
``submit`` record is on disk. The files go through the client's one worker pool
(``engine/workers.py``); rows are flushed as Parquet parts every few seconds and once more on the
way out, whatever stops the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mirror.api.client import MargenClient
from mirror.config import Retries, Timeouts, load_api_key, resolve_base_url
from mirror.detectors.base import Detector, Media, Rejected, SubmissionUnknown, Verdict
from mirror.detectors.http import DetectorHttpError
from mirror.detectors.options import DetectorOptions, Pacing, SignedUrls
from mirror.detectors.registry import load_detector, resolve_options
from mirror.engine.outcome import Failure, outcome_dict
from mirror.engine.reserve import idempotency_key, new_token
from mirror.engine.workers import Put, run_pool
from mirror.errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    DestinationError,
    TransportError,
    UsageError,
)
from mirror.ratelimit import RateLimiter
from mirror.store import MANIFEST_SCHEMA, Layout, open_manifest, resolve_inside
from mirror.store.submissions import SubmissionLog
from mirror.store.verdicts import ScoresWriter, latest_status

__all__ = ["run_score", "ScoreReport"]

_FLUSH_EVERY_S = 2.0
_FILTERABLE = [f.name for f in MANIFEST_SCHEMA if f.type == pa.string() and f.name not in ("path", "sha256")]


@dataclass
class ScoreReport:
    """Outcome of one ``score`` run; ``status`` is complete or partial (errors: run again)."""

    detector: str
    dest: str
    status: str = "complete"
    selected: int = 0               # manifest items matching the filters
    scored: int = 0                 # items given an ``ok`` row by this run
    skipped_already: int = 0        # items whose file already had a final row
    rejected: int = 0               # refused client-side: nothing was sent
    failed: int = 0
    submissions: int = 0            # uploads this run made (one per distinct file at most)
    resumed: int = 0                # jobs of an earlier run polled instead of uploaded again
    requests: int = 0
    elapsed_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.status == "partial" else EXIT_OK

    def summary_line(self) -> str:
        line = (f"margen-mirror score {self.detector} {self.status}: {self.selected} selected, {self.scored} scored, "
                f"{self.skipped_already} already scored, {self.rejected} rejected, {self.failed} failed, "
                f"{self.submissions} submitted, {self.resumed} resumed, in {self.elapsed_s:.1f} s")
        if self.failed:
            line += f" | first error: {self.failures[0].reason}; run the same command again to retry"
        return line

    def to_dict(self) -> dict[str, Any]:
        return outcome_dict(self)


@dataclass(frozen=True)
class _Group:
    """One distinct file: its sha256, path, and every item id that has these bytes."""

    sha256: str
    path: str
    ids: tuple[str, ...]
    benchmark: str | None


async def run_score(dest: str | Path, detector: str, *, filters: dict[str, tuple[str, ...]] | None = None,
                    concurrency: int = 8, rate_limit: float = 60.0, options: DetectorOptions | None = None,
                    timeouts: Timeouts = Timeouts(), retries: Retries = Retries()) -> ScoreReport:
    """Score the mirrored items of ``dest`` matching ``filters`` with ``detector``.

    ``detector`` is ``synthetiq``, ``deepfake-detection`` or ``python:package.module:function``;
    ``options`` is that adapter's options object (``SynthetiqOptions(pad=True, ...)``...); without
    it, the adapter's defaults with credentials from the environment.
    """
    if not 1 <= concurrency <= 256:
        raise UsageError("--concurrency must be between 1 and 256")
    if rate_limit <= 0:
        raise UsageError("--rate-limit must be a positive number of requests per minute")
    started = time.monotonic()
    options = resolve_options(detector, options)
    det = load_detector(detector, options, Pacing(rate_limit=rate_limit, concurrency=concurrency,
                                                  timeouts=timeouts, retries=retries))
    if not await asyncio.to_thread(Layout(Path(dest)).manifest.is_dir):    # checked, never created here
        raise DestinationError(f"{dest} is not a mirror folder: run sync first")
    layout = Layout.prepare(dest)
    report = ScoreReport(detector=det.name, dest=str(layout.dest))
    todo = await asyncio.to_thread(_to_score, layout, filters or {}, det, report)
    submission_log = SubmissionLog(layout, det.name) if det.remote else None
    try:
        async with det, _signer(options.signed_urls(), timeouts, retries) as signer:
            run = _Run(layout, det, submission_log, signer, report, concurrency)
            try:
                await run.run(todo)
            finally:
                report.requests = getattr(getattr(det, "http", None), "requests", 0)
    finally:
        if submission_log is not None:
            submission_log.close()
        report.elapsed_s = round(time.monotonic() - started, 3)
    report.status = "partial" if report.failed else "complete"
    return report


Signer = Callable[[str, str | None], Awaitable[str]]


@asynccontextmanager
async def _signer(source: SignedUrls | None, timeouts: Timeouts, retries: Retries) -> AsyncIterator[Signer | None]:
    """For URL mode: fresh Margen signed URLs. Free for items the key's account already owns."""
    if source is None:
        yield None
        return
    client = MargenClient(load_api_key(source.api_key_file), resolve_base_url(source.base_url),
                          limiter=RateLimiter(source.rate_limit), timeouts=timeouts, retries=retries)

    async def sign(item_id: str, benchmark: str | None) -> str:
        # A never-used key: the server replays old (expired) URLs for old keys.
        return (await client.download(item_id, idempotency_key=idempotency_key(benchmark, item_id, new_token()))).url

    async with client:
        yield sign


def _to_score(layout: Layout, filters: dict[str, tuple[str, ...]], det: Detector, report: ScoreReport) -> list[_Group]:
    """The selected files without a final row yet (``ok``, or ``rejected`` unless ``pad`` may now accept
    them); counts the selection and the skipped items into ``report``. ``score --ray`` decides with it too."""
    groups = _select(layout, filters)
    report.selected = sum(len(g.ids) for g in groups)
    final = latest_status(layout.dest, det.name)
    todo = []
    for group in groups:
        status = final.get(group.sha256)
        if status == "ok" or (status == "rejected" and not det.retry_rejected):
            report.skipped_already += len(group.ids)
        else:
            todo.append(group)
    return todo


def _select(layout: Layout, filters: dict[str, tuple[str, ...]]) -> list[_Group]:
    """The manifest's newest row per id, filtered (OR within a key, AND across), grouped by sha256."""
    unknown = sorted(set(filters) - set(_FILTERABLE))
    if unknown:
        raise UsageError(f"cannot filter on {unknown[0]!r}: use one of {', '.join(_FILTERABLE)}")
    columns = ["id", "sha256", "path", "benchmark", "downloaded_at", *[k for k in filters if k != "benchmark"]]
    table = open_manifest(layout.dest).to_table(columns=list(dict.fromkeys(columns)))
    newest: dict[str, dict[str, Any]] = {}
    for row in sorted(table.to_pylist(), key=lambda r: r["downloaded_at"] or datetime.min.replace(tzinfo=UTC)):
        newest[row["id"]] = row
    by_sha: dict[str, list[dict[str, Any]]] = {}
    for row in newest.values():
        if not row["sha256"] or not row["path"]:
            continue
        if all(row.get(key) in values for key, values in filters.items()):
            by_sha.setdefault(row["sha256"], []).append(row)
    return [_Group(sha, rows[0]["path"], tuple(sorted(r["id"] for r in rows)), rows[0]["benchmark"])
            for sha, rows in sorted(by_sha.items())]


class _Run:
    def __init__(self, layout: Layout, detector: Detector, submission_log: SubmissionLog | None, signer: Signer | None,
                 report: ScoreReport, concurrency: int,
                 write_rows: Callable[[list[dict[str, Any]]], object] | None = None) -> None:
        self.layout = layout
        self.detector = detector
        self.submission_log = submission_log
        self.signer = signer
        self.report = report
        self.concurrency = concurrency
        # a distributed run's worker hands its rows to the driver, which writes them (mirror.cluster)
        self._write = write_rows or ScoresWriter(layout, detector.name, run_id=uuid.uuid4().hex[:12]).write
        self._rows: list[dict[str, Any]] = []
        self._flush_lock = asyncio.Lock()

    async def run(self, groups: list[_Group]) -> None:
        async def feed(put: Put[_Group]) -> None:
            for group in groups:
                await put(group)

        await run_pool(feed, self._score, concurrency=self.concurrency, queue_size=self.concurrency,
                       flush=self._flush, last_flush=self._flush_sync, flush_every=_FLUSH_EVERY_S)

    async def _score(self, group: _Group) -> None:
        submitted_at = datetime.now(UTC)
        started = time.monotonic()
        verdict: Verdict | None = None
        status, error = "ok", None
        try:
            verdict = await self._verdict(group)
            self.report.scored += len(group.ids)
        except Rejected as exc:
            status, error = "rejected", str(exc)
            self.report.rejected += len(group.ids)
        except DetectorHttpError as exc:
            if exc.fatal:
                raise
            status, error = "error", str(exc)
        except (TransportError, DestinationError, OSError) as exc:
            status, error = "error", str(exc) if not isinstance(exc, OSError) else f"cannot read the file: {exc}"
        if status == "error":
            self.report.failed += len(group.ids)
            self.report.failures.append(Failure(group.ids[0], error or "", retryable=True))
        stamp = submitted_at.replace(microsecond=submitted_at.microsecond // 1000 * 1000)
        latency = round((time.monotonic() - started) * 1000, 1) if verdict is not None else None
        for item_id in group.ids:
            self._rows.append({
                "id": item_id, "sha256": group.sha256, "detector": self.detector.name,
                "label": verdict.label if verdict else None, "p_fake": verdict.p_fake if verdict else None,
                "raw": verdict.raw if verdict else None, "faces": verdict.faces if verdict else None,
                "status": status, "error": error, "latency_ms": latency, "submitted_at": stamp,
            })

    async def _verdict(self, group: _Group) -> Verdict:
        path = resolve_inside(self.layout.dest, group.path)
        actual = await asyncio.to_thread(_sha256_file, path)
        if actual != group.sha256:
            raise DestinationError(f"{group.path} no longer matches the manifest: run verify --repair first")
        signer = self.signer
        signed_url = (lambda: signer(group.ids[0], group.benchmark)) if signer is not None else None
        media = Media(group.ids[0], group.sha256, path, signed_url)
        det, submission_log = self.detector, self.submission_log
        entry = submission_log.entries.get(group.sha256) if submission_log is not None else None
        if submission_log is not None and entry is not None:
            job = entry.job or await det.reconcile(media)
            if job is None:
                raise SubmissionUnknown("an earlier run was stopped while uploading this file and the service "
                                        "cannot say whether it arrived; it is not sent again")
            if entry.job is None:
                submission_log.submitted(group.sha256, job)
            self.report.resumed += 1
            return await det.wait(job, media)
        prepared = await asyncio.to_thread(det.prepare, media)
        if submission_log is None:
            self.report.submissions += 1
            return await det.wait(await det.submit(prepared), media)
        submission_log.submitting(group.sha256, group.ids[0])
        try:
            job = await det.submit(prepared)
        except SubmissionUnknown:
            found = await det.reconcile(media)
            if found is None:
                raise
            job = found
        except (DetectorHttpError, TransportError):
            submission_log.not_taken(group.sha256)        # refused or never connected: nothing was kept
            raise
        submission_log.submitted(group.sha256, job)
        self.report.submissions += 1
        return await det.wait(job, media)

    async def _flush(self) -> None:
        """Run to its end by the pool, even when cancelled: a part half-counted would be scored again."""
        async with self._flush_lock:
            rows, self._rows = self._rows, []
            if rows:
                await asyncio.to_thread(self._write, rows)

    def _flush_sync(self) -> None:
        rows, self._rows = self._rows, []
        self._write(rows)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
