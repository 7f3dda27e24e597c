"""A whole sync or plan: preflight, the no-op shortcut, the pipeline, compaction, the report.

Order matters for money and for DEST: the selection is validated against ``/catalog`` (which also
checks the key and the benchmark) before a new destination is created, and the destination is
locked and checked before anything is reserved. A refused run leaves no folder behind. A
selection whose last walk completed and whose server-side count has not moved is answered in two
API calls (``/catalog`` and one ``exclude_owned`` probe) without walking a single page.

A run given a ``stop`` event (the CLI sets it on SIGINT and SIGTERM) stops taking work when it is
set, flushes the rows of the files already in place, and returns its report as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mirror.api.client import MargenClient
from mirror.api.models import Catalog, Page
from mirror.config import ApiKey, Limits, Retries, Timeouts
from mirror.engine.fetch import Fetcher
from mirror.engine.objectsink import ObjectSink
from mirror.engine.outcome import PlanReport, RepairReport, SyncReport
from mirror.engine.outlook import Outlook
from mirror.engine.pages import Probe, page_params, probe, unowned
from mirror.engine.place import Sink
from mirror.engine.release import Decision, ReleaseRun, check_source, decide, evaluate
from mirror.engine.reserve import Budget, Reserver, new_token
from mirror.engine.run import Pipeline, ProgressHook
from mirror.engine.tasks import alongside, to_the_end, until_stopped
from mirror.errors import MirrorError
from mirror.inspect.local import count_local
from mirror.inspect.verify import RepairTarget
from mirror.jobs import Selection, SyncJob
from mirror.ratelimit import RateLimiter
from mirror.store import DestLock, Layout, ManifestIndex, compact, recover
from mirror.store.destination import shown_dest, url_scheme
from mirror.store.remote import RemoteDest
from mirror.store.reservations import ReservationLog
from mirror.store.selections import SelectionRecord, SelectionStates

__all__ = ["run_sync", "run_plan", "run_repair", "resolve_selection", "SyncRun", "TotalHook"]

TotalHook = Callable[[Outlook], None]     # told once what the run has ahead of it (see Outlook)
log = logging.getLogger(__name__)


async def resolve_selection(client: MargenClient, selection: Selection) -> tuple[Selection, Catalog]:
    """Ask ``/catalog`` (which also resolves an omitted benchmark) and validate every filter."""
    catalog = await client.catalog(selection.benchmark)
    canonical = catalog.validate({k: list(v) for k, v in selection.filters.items()})
    resolved = Selection(benchmark=catalog.benchmark.id, filters=canonical, lineage=selection.lineage,
                         distinct_identities=selection.distinct_identities,
                         include_metadata=selection.include_metadata)
    return resolved, catalog


async def run_plan(job: SyncJob, *, api_key: ApiKey, base_url: str, timeouts: Timeouts = Timeouts(),
                   source: str = "per-image", release: str | None = None) -> PlanReport:
    """What ``sync`` would spend, per image and as a release (three API calls, and one or two for
    the release, none of which buys); touches nothing on disk."""
    check_source(job.dest, source, release)
    layout = Layout(job.dest)
    async with _client(job, api_key, base_url, timeouts, Retries()) as client:
        selection, _ = await resolve_selection(client, job.selection)
        found = await probe(client, selection)
        usage = await client.usage()
        where = shown_dest(job.dest) if url_scheme(job.dest) else layout    # a bucket: read where it is
        here = await asyncio.to_thread(count_local, where, selection) if found is not None else None
        ways, _ = await evaluate(client, where, selection, source=source, release=release, counted=found,
                                 here=here, tier=usage.tier, balance=usage.balance, limits=job.limits,
                                 max_credits=job.max_credits)
        return PlanReport(selection=selection.describe(), dest=shown_dest(job.dest), tier=usage.tier,
                          matching=found.total_matching if found else None, mirrored_here=here,
                          owned=found.owned if found else None,
                          to_charge=(0 if usage.tier == "test" else found.remaining) if found else None,
                          balance=usage.balance, max_credits=job.max_credits, api_calls=client.api_calls,
                          rate_limit=job.limits.rate_limit, ways=ways)


@contextlib.asynccontextmanager
async def _open_dest(dest: Path) -> AsyncIterator[tuple[Layout, ManifestIndex, ReservationLog, Sink | None]]:
    """Lock DEST, finish whatever a killed run left half-done, and load what is already here.

    A DEST in a bucket (``s3://…``, see ``store.remote``) is locked in the bucket too, its manifest
    pulled into the local working folder first and pushed back at the end; the sink puts images there."""
    remote = RemoteDest.open(dest) if url_scheme(dest) else None
    layout = Layout.prepare(remote.layout.dest if remote else dest)
    with DestLock(layout), (remote.locked() if remote else contextlib.nullcontext()):
        journal = ReservationLog(layout.state / "journal.jsonl")
        try:
            if remote is None:
                cut_short = bool(journal.pending or journal.purchases)
                index = await to_the_end(asyncio.to_thread(_load_dest, layout, cut_short=cut_short))
                yield layout, index, journal, None
                return
            index = await to_the_end(asyncio.to_thread(_load_remote, remote))
            try:
                yield layout, index, journal, ObjectSink(remote)
            except BaseException:
                with contextlib.suppress(MirrorError):    # what is placed is pushed by the next run
                    await to_the_end(asyncio.to_thread(remote.push_manifest))
                raise
            await to_the_end(asyncio.to_thread(remote.push_manifest))
        finally:
            journal.close()


def _load_remote(remote: RemoteDest) -> ManifestIndex:
    """A remote DEST's manifest (the bucket's and the working copy's), less rows whose object is gone."""
    recover(remote.layout)
    remote.layout.clean_tmp()
    remote.pull_manifest()
    index = ManifestIndex.load(remote.layout)
    index.drop_missing_files(remote.layout, exists=remote.present_images().__contains__)
    return index


def _load_dest(layout: Layout, *, cut_short: bool) -> ManifestIndex:
    """Reading DEST, in one worker thread: each hop to a thread costs a wait for the GIL on the way back.

    ``cut_short``: an earlier run left items pending, so it may have left images half-written too."""
    recover(layout)
    layout.clean_tmp()
    if cut_short:
        layout.clean_partial_images()
    index = ManifestIndex.load(layout)
    index.drop_missing_files(layout)        # those items are re-fetched (free) by the walk
    return index


async def run_sync(job: SyncJob, *, api_key: ApiKey, base_url: str, progress: ProgressHook | None = None,
                   on_total: TotalHook | None = None, timeouts: Timeouts = Timeouts(),
                   retries: Retries = Retries(), stop: asyncio.Event | None = None, source: str = "per-image",
                   release: str | None = None) -> SyncReport:
    """Mirror ``job.selection`` into ``job.dest``; see ``mirror.sync`` for the public face.

    ``stop``: once set, the run stops taking work, flushes what is finished and returns with
    status ``interrupted`` (exit code 130); the next run resumes it. ``source``: per-image, release
    or auto (see ``engine/release.py``); ``release`` pins one.
    """
    check_source(job.dest, source, release)
    started = time.monotonic()
    report = SyncReport(selection=job.selection.describe(), dest=shown_dest(job.dest))
    try:
        run = SyncRun(job, api_key=api_key, base_url=base_url, report=report, timeouts=timeouts, retries=retries,
                      progress=progress, on_total=on_total, source=source, release=release)
        if await until_stopped(run.run(), stop):
            report.status = "interrupted"
            report.message = "interrupted; finished work is saved: run the same command again to resume"
    except BaseException as exc:
        if log.isEnabledFor(logging.INFO):
            log.info("sync of %s into %s stopped: %s", report.selection, report.dest,
                     exc if isinstance(exc, MirrorError) else type(exc).__name__)
        raise
    finally:
        report.elapsed_s = round(time.monotonic() - started, 3)
    if log.isEnabledFor(logging.INFO):
        log.info("%s", report.summary_line())
    return report


class SyncRun:
    """One sync's state from preflight to report, in one place (rclone's ``sync`` struct); its phases
    are the methods, in the order they run: ``run`` (preflight and DEST), ``mirror`` (shortcut,
    walk, compaction, verdict), ``count`` and ``outlook`` (what the progress display is told)."""

    def __init__(self, job: SyncJob, *, api_key: ApiKey, base_url: str, report: SyncReport, timeouts: Timeouts,
                 retries: Retries, progress: ProgressHook | None, on_total: TotalHook | None,
                 source: str = "per-image", release: str | None = None) -> None:
        self.job = job                  # the selection, DEST, the credit cap and the limits
        self.api_key = api_key          # never logged, never printed
        self.base_url = base_url        # the API host
        self.report = report            # what the run did, filled in as it goes; run_sync returns it
        self.timeouts = timeouts        # total deadline of one request (API, storage)
        self.retries = retries          # attempts and backoff of the one retry policy
        self.progress = progress        # told of every file placed (items, bytes)
        self.on_total = on_total        # told once what the run has ahead of it (see Outlook)
        self.source = source            # per-image, release or auto (engine/release.py)
        self.release = release          # a pinned release version, or None for the newest
        self.decided: Decision | None = None    # the release decision, when asked before DEST existed
        # Set by ``run`` once DEST is open (``mirror`` runs only then):
        self.client: MargenClient       # the API client of this run (its limiter, its connection pool)
        self.layout: Layout             # DEST's folders, locked for the run
        self.index: ManifestIndex       # what DEST already holds, by item id
        self.journal: ReservationLog    # the reservations paid for and not yet in the manifest
        self.states: SelectionStates    # each selection's last complete walk (the shortcut's record)
        self.sink: Sink | None          # where a bucket DEST's images go (None: the local Placer)

    async def run(self) -> None:
        """``/catalog`` and (on a first walk) the first page are asked for together. A new DEST is
        created only once ``/catalog`` has accepted the key, the benchmark and the filters; an existing
        one is opened (locked, recovered, its manifest loaded) while the answer is on its way. The walk
        waits for ``/catalog`` to accept the selection before anything is reserved."""
        job, report = self.job, self.report
        state = RemoteDest.open(job.dest).layout.state if url_scheme(job.dest) else Layout(job.dest).state
        known = SelectionStates(state / "selections.json") if state.is_dir() else None     # read only, not locked
        async with _client(job, self.api_key, self.base_url, self.timeouts, self.retries) as client:
            self.client = client
            try:
                async with alongside(resolve_selection(client, job.selection)) as resolving, \
                        alongside(_first_page_early(client, job.selection, known)
                                  if self.source == "per-image" else None) as early:
                    assert resolving is not None
                    if known is None:
                        await resolving          # not a mirror yet: a refused run creates nothing
                        if self.source != "per-image":      # nor one --source release cannot serve
                            self.decided = await decide(client, Layout(job.dest), resolving.result()[0],
                                                        source=self.source, release=self.release, counted=None,
                                                        limits=job.limits, max_credits=job.max_credits)
                    async with _open_dest(job.dest) as (self.layout, self.index, self.journal, self.sink):
                        here, finished = len(self.index), False
                        self.states = SelectionStates(self.layout.state / "selections.json")
                        try:
                            await self.mirror(resolving, early)
                            finished = True
                        finally:
                            report.left = _left(report, here, finished=finished)
            finally:
                report.api_calls = client.api_calls
                report.throttled = client.limiter.throttled

    async def mirror(self, resolving: asyncio.Task[tuple[Selection, Catalog]],
                     early: asyncio.Task[Page] | None) -> None:
        """The shortcut when nothing can have changed, else the walk (from the last watermark when only
        appended items are new), compaction, and the verdict: complete, partial or budget."""
        job, report, client, index = self.job, self.report, self.client, self.index
        selection, _ = await resolving
        report.selection = selection.describe()
        releases = ReleaseRun.of(self)
        if self.journal.purchases and not await releases.finish_purchases():     # paid for earlier: first
            return
        record = self.states.get(selection.key)
        if early is not None and (record is not None or selection.query() != job.selection.query()):
            early = None        # /catalog renamed a filter, or a record is kept under the canonical name
        start = ""
        found: Probe | None = None
        if record is not None:                            # walked to the end before: maybe nothing to do
            found = await probe(client, selection)
            if found is not None:
                report.matching = found.total_matching
                if _up_to_date(found, record, self.journal, index):
                    report.already_mirrored = found.total_matching
                    report.status = "up-to-date"
                    report.message = "nothing new to mirror"
                    return
                if found.total_matching > record.total_matching and not _rows_lost(record, index):
                    start = record.watermark              # only appended items are new
        if self.source != "per-image" and await releases.pull(selection, source=self.source, release=self.release,
                                                               counted=found, decided=self.decided):
            return
        if self.on_total is not None and record is not None:
            self.on_total(self.outlook(found))
        budget = Budget(job.max_credits)
        reserver = Reserver(client, self.journal, budget)
        budget.spent, reserver.free = report.charged, report.free       # what a release took earlier in the run
        async with Fetcher(self.layout, job.limits, self.timeouts, self.retries, pool=client.pool,
                           sink=self.sink) as fetcher:
            pipeline = Pipeline(layout=self.layout, client=client, fetcher=fetcher, journal=self.journal, index=index,
                                reserver=reserver, report=report, concurrency=job.limits.concurrency,
                                progress=self.progress)
            # A first walk has nothing to shortcut or resume from, so its probe (which only counts) runs
            # alongside it instead of costing a round trip before the first page.
            counter = self.count(selection) if record is None else None
            async with alongside(counter) as counting:
                try:
                    await pipeline.run(selection, start_cursor=start, first_page=early)
                finally:
                    report.charged = budget.spent
                    report.free = reserver.free
                    report.balance = reserver.balance
                    report.slow_disk = fetcher.slow_disk
                if counting is not None:
                    found = await counting
        rows = await to_the_end(asyncio.to_thread(compact, self.layout))
        pa.default_memory_pool().release_unused()      # compaction's buffers: give them back to the OS
        if budget.exhausted:
            report.status = "budget"
            report.message = (f"stopped: {budget.exhausted_reason}; top up or raise --max-credits, then run the same "
                              "command again to resume")
        elif report.failed or not pipeline.walk_complete:
            report.status = "partial"
            report.message = f"{report.failed} item(s) failed; run the same command again to retry them"
        else:
            report.status = "complete"
            if found is not None and pipeline.last_cursor is not None:
                self.states.put(selection.key, SelectionRecord(found.total_matching, pipeline.last_cursor,
                                                               datetime.now(UTC).isoformat(timespec="seconds"), rows))
        report.message = report.message or f"{rows} rows in the manifest"
        report.balance = reserver.balance

    async def count(self, selection: Selection) -> Probe | None:
        """A first walk's probe: it only counts, so a failure costs the count (and the next run's
        shortcut, as no record is saved without it), never the walk."""
        try:
            found = await probe(self.client, selection)
        except MirrorError:
            found = None
        self.report.matching = found.total_matching if found is not None else None
        if self.on_total is not None:
            self.on_total(self.outlook(found))
        return found

    def outlook(self, found: Probe | None) -> Outlook:
        """What the run has ahead of it. What DEST holds is counted as this selection's: exact for a
        DEST that holds one selection, the usual case."""
        total = found.total_matching if found is not None else None
        here = len(self.index) if total is None else min(len(self.index), total)
        return Outlook(total=total, here=here, rate_limit=self.job.limits.rate_limit, report=self.report)


def _left(report: SyncReport, here: int, *, finished: bool) -> int | None:
    """Items of the selection not here yet: what it matches less what was here and what came. ``here``
    counts all of DEST, so with other selections in the same DEST this can only err low."""
    if report.matching is None:
        return None
    if finished and report.status in ("complete", "up-to-date"):
        return 0
    return max(0, report.matching - max(here, report.already_mirrored) - report.mirrored)


async def run_repair(dest: Path, bad: dict[str, RepairTarget], *, limits: Limits, api_key: ApiKey, base_url: str,
                     timeouts: Timeouts = Timeouts(), retries: Retries = Retries()) -> RepairReport:
    """Re-fetch the given items for free: they are queued as journal-pending.

    Only items the account owns are free, and a DEST may have been filled by another account (or
    copied from one). Ownership is asked first (``exclude_owned``, per base image); an item that is
    not owned is left as it is and reported, never bought: buying is what ``sync`` is for.
    """
    started = time.monotonic()
    job = SyncJob(selection=Selection(), dest=dest, limits=limits)
    report = RepairReport(selection=f"repair of {len(bad)} item(s)", dest=shown_dest(dest))
    async with _open_dest(dest) as (layout, index, journal, sink), \
            _client(job, api_key, base_url, timeouts, retries) as client:
        refused = await _not_owned(client, bad)
        report.not_owned = sorted(refused)
        owned = {item_id: target for item_id, target in bad.items() if item_id not in refused}
        # damaged copies go first, so the index forgets them too (in a bucket the new PUT replaces each whole)
        damaged = {entry.path for item_id in owned if (entry := index.get(item_id)) is not None}
        if sink is None:
            for relpath in damaged:
                (layout.dest / relpath).unlink(missing_ok=True)
            index.drop_missing_files(layout)
        else:
            index.drop_missing_files(layout, exists=lambda relpath: relpath not in damaged)
        for item_id, target in owned.items():
            if item_id not in journal.pending:
                journal.reserving(item_id, target.benchmark, new_token())   # pending: its reservation is free
        reserver = Reserver(client, journal, Budget(None))   # owned items: free
        # An interrupted sync's reservation whose answer never came may not have reached the server:
        # finishing it could buy it, so it is left pending for the next sync.
        answered = {item_id for item_id, entry in journal.pending.items() if entry.charged is not None}
        async with Fetcher(layout, limits, timeouts, retries, pool=client.pool, sink=sink) as fetcher:
            pipeline = Pipeline(layout=layout, client=client, fetcher=fetcher, journal=journal, index=index,
                                reserver=reserver, report=report, concurrency=limits.concurrency,
                                pending_only=answered | owned.keys())
            await pipeline.run(None)
        report.repaired = sum(item_id not in journal.pending for item_id in owned)    # its row is written
        report.api_calls = client.api_calls
        await asyncio.to_thread(compact, layout)
    report.status = "partial" if report.failed or report.not_owned else "complete"
    report.elapsed_s = round(time.monotonic() - started, 3)
    return report


async def _not_owned(client: MargenClient, bad: dict[str, RepairTarget]) -> set[str]:
    """The items among ``bad`` a reservation would charge: all of them unless ownership is confirmed
    (a row without a base_id cannot be asked about). A test-tier key is never charged."""
    if (await client.usage()).tier == "test":
        return set()
    refused: set[str] = set()
    by_benchmark: dict[str | None, set[str]] = {}
    for item_id, target in bad.items():
        if target.base_id:
            by_benchmark.setdefault(target.benchmark, set()).add(target.base_id)
        else:
            refused.add(item_id)
    for benchmark, base_ids in by_benchmark.items():
        refused |= await unowned(client, benchmark, base_ids) & bad.keys()
    return refused


def _first_page_early(client: MargenClient, selection: Selection,
                      states: SelectionStates | None) -> Coroutine[Any, Any, Page] | None:
    """A first walk's first page, to ask for alongside ``/catalog``: one round trip less before the
    first download. Only for a plain selection naming its benchmark and with no saved record (which
    means a probe first, and maybe no walk at all). ``/items`` costs no credit, and the page is used
    only if ``/catalog`` accepts the selection exactly as given."""
    if not selection.benchmark or selection.lineage or selection.distinct_identities \
            or (states is not None and states.get(selection.key) is not None):
        return None
    return client.items(page_params(selection, ""))


def _up_to_date(found: Probe, record: SelectionRecord | None, journal: ReservationLog, index: ManifestIndex) -> bool:
    """True when nothing can have changed since the last complete walk of this selection."""
    if record is None or journal.pending or _rows_lost(record, index) or found.remaining:
        return False
    return found.total_matching == record.total_matching


def _rows_lost(record: SelectionRecord, index: ManifestIndex) -> bool:
    """Whether DEST may hold less than when the selection's last walk ended: files gone, or fewer
    manifest rows (a manifest file moved away, as an unreadable one must be). The server's counts
    cannot tell: the account still owns those items. A record from before rows were counted: maybe."""
    return bool(index.dropped) or record.rows_here is None or len(index) < record.rows_here


def _client(job: SyncJob, api_key: ApiKey, base_url: str, timeouts: Timeouts, retries: Retries) -> MargenClient:
    limiter = RateLimiter(job.limits.rate_limit, backoff=retries.backoff)
    return MargenClient(api_key, base_url, limiter=limiter, timeouts=timeouts, retries=retries,
                        connections=job.limits.connections)
