"""Wires the stages: pages -> reservations -> fetches -> files -> manifest rows.

The page walker feeds ``concurrency`` workers through a bounded queue, so memory stays flat for
any corpus size. Each worker takes one item through the remaining stages itself
(reserve, fetch, place, row): a signed URL is fetched by the worker that just reserved it, never
after waiting in a queue, and an item costs no hand-off between tasks. Rows are written to the
manifest in parts by a single flusher, and only after a part is on disk are its items marked
done in the journal. Whatever stops the run (the end, a budget, Ctrl-C, a fatal error), the
final ``finally`` flushes the rows whose files are in place, so no finished work is lost and no
row names a missing file.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from mirror.api.client import MargenClient
from mirror.api.models import Download, Item, Page
from mirror.engine.fetch import Fetcher, UrlExpired
from mirror.engine.outcome import Failure, SyncReport
from mirror.engine.pages import walk
from mirror.engine.reserve import Reserver
from mirror.engine.seen import SeenIds
from mirror.engine.tasks import to_the_end
from mirror.engine.workers import Put, run_pool
from mirror.errors import (
    BudgetExhausted,
    ForbiddenScope,
    ForbiddenTier,
    IntegrityError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from mirror.jobs import Selection
from mirror.store import FileRow, Layout, ManifestIndex, ManifestWriter, destination_error, image_relpath
from mirror.store.reservations import ReservationLog

__all__ = ["Pipeline", "ProgressHook"]

ProgressHook = Callable[[int, int], None]   # (items done, bytes) increments
log = logging.getLogger(__name__)
_DEBUG = logging.DEBUG
_FLUSH_EVERY_S = 2.0
_MAX_RENEWALS = 3
_RETRYABLE = (TransportError, IntegrityError, ServerError, RateLimited)
_ITEM_REFUSED = (NotFound, ForbiddenTier, ForbiddenScope)
# A file DEST itself refuses (full, read-only, gone, a size limit) means every later file would
# fail too: the run stops at the first, spending no more, with one line saying what to do.
_DEST_WIDE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                        errno.ENOENT, errno.ENOTDIR, errno.EFBIG})


@dataclass
class _Work:
    item_id: str
    benchmark: str | None
    listed: Item | None       # the item as /items listed it (has metadata when asked for)


class Pipeline:
    """One run's moving parts; ``run`` mirrors what ``selection`` and the journal ask for."""

    def __init__(self, *, layout: Layout, client: MargenClient, fetcher: Fetcher, journal: ReservationLog,
                 index: ManifestIndex, reserver: Reserver, report: SyncReport, concurrency: int,
                 progress: ProgressHook | None = None, pending_only: Collection[str] | None = None) -> None:
        self.layout = layout
        self.client = client
        self.fetcher = fetcher
        self.journal = journal
        self.index = index
        self.reserver = reserver
        self.report = report
        self.concurrency = concurrency
        self.progress = progress
        self.pending_only = pending_only    # the journal-pending items to finish; None: every one
        self.walk_complete = False
        self.last_cursor: str | None = None
        self._writer = ManifestWriter(layout, run_id=uuid.uuid4().hex[:12])
        self._row_ids: list[str] = []       # items whose rows the writer holds, not yet sealed
        self._sealed_ids: list[str] = []    # items whose rows are sealed, not yet in a part
        self._flush_lock = asyncio.Lock()
        self._seen = SeenIds()

    async def run(self, selection: Selection | None, start_cursor: str = "",
                  first_page: Awaitable[Page] | None = None) -> None:
        """Finish the journal's pending items, then mirror ``selection`` (if given).

        ``first_page``: the walk's page at ``start_cursor``, when the caller has already asked for it.
        """
        try:
            await run_pool(lambda put: self._produce(selection, start_cursor, first_page, put), self._work,
                           concurrency=self.concurrency, queue_size=1000, flush=self._flush_now,
                           last_flush=self._flush_sync, flush_every=_FLUSH_EVERY_S)
        finally:
            self._seen = SeenIds()      # freed before compaction

    # -- stage 1: pages ----------------------------------------------------------------------
    async def _produce(self, selection: Selection | None, start_cursor: str, first_page: Awaitable[Page] | None,
                       put: Put[_Work]) -> None:
        """Hand the pool the journal's pending items, then each new item of the walk."""
        pending = list(self.journal.pending)
        self.journal.done([i for i, done in zip(pending, self.index.contains_many(pending), strict=True)
                           if done])                                  # their rows were written after all
        self._seen.add_all(self.journal.pending)
        for entry in list(self.journal.pending.values()):
            if self.pending_only is None or entry.item_id in self.pending_only:
                await put(_Work(entry.item_id, entry.benchmark, None))
        if selection is None:
            return
        try:
            async for page in walk(self.client, selection, start_cursor=start_cursor, first=first_page):
                self.last_cursor = page.cursor
                if page.malformed:
                    self._fail("(listing)", f"skipped {page.malformed} item(s) the server sent without an id that "
                               "is a string of valid Unicode", retryable=False)
                ids = [item["id"] for item in page.items]
                firsts = self._seen.first_sightings(ids)   # False: a duplicate across pages, or pending
                mirrored = self.index.contains_many(ids)   # one search a page
                if log.isEnabledFor(_DEBUG):
                    log.debug("page of %d item(s), %d already here", len(ids), sum(mirrored))
                for item, first, already in zip(page.items, firsts, mirrored, strict=True):
                    item_id = item["id"]
                    if not first:
                        continue
                    if already:
                        self.report.already_mirrored += 1
                        continue
                    if self.reserver.budget.exhausted:
                        return
                    await put(_Work(item_id, item.get("benchmark") or selection.benchmark, item))
            self.walk_complete = True
        except (TransportError, ServerError, RateLimited) as exc:
            self._fail("(listing)", f"walk stopped: {exc}")

    # -- stages 2 to 4, one item at a time per worker -----------------------------------------
    async def _work(self, work: _Work) -> None:
        download = await self._reserve_one(work)
        if download is not None:
            await self._fetch_one(work, download)

    # -- stage 2: reservations ---------------------------------------------------------------
    async def _reserve_one(self, work: _Work, *, renewal: bool = False) -> Download | None:
        try:
            download = await self.reserver.reserve(work.item_id, work.benchmark, renewal=renewal)
        except BudgetExhausted:
            return None
        except _ITEM_REFUSED as exc:
            self._fail(work.item_id, str(exc), retryable=False)
            return None
        except _RETRYABLE as exc:
            self._fail(work.item_id, str(exc))
            return None
        report, reserver = self.report, self.reserver       # live counts, for a progress display
        report.charged = reserver.budget.spent
        report.free = reserver.free
        report.balance = reserver.balance
        if log.isEnabledFor(_DEBUG):
            log.debug("reserved %r: %s%s", work.item_id, "charged" if download.charged else "free",
                      " (renewal of an expired URL)" if renewal else "")
        return download

    # -- stages 3 and 4: fetch and place, then the row -------------------------------------------
    async def _fetch_one(self, work: _Work, download: Download) -> None:
        item = work.listed or download.item
        relpath = image_relpath(item.get("benchmark") or work.benchmark or "_", item.get("source_real_id"),
                                work.item_id)
        for _ in range(_MAX_RENEWALS + 1):
            try:
                stored = await self.fetcher.fetch(download, relpath)
                break
            except UrlExpired:       # its message is the signed URL: never logged nor reported
                if log.isEnabledFor(_DEBUG):
                    log.debug("signed URL of %r expired before it was fetched; reserving it again", work.item_id)
                renewed = await self._reserve_one(work, renewal=True)     # free: the account owns it
                if renewed is None:
                    return
                download = renewed
            except (IntegrityError, TransportError) as exc:
                self._fail(work.item_id, str(exc))
                return
            except OSError as exc:
                if exc.errno in _DEST_WIDE:
                    raise destination_error(exc, self.layout.dest) from None
                self._fail(work.item_id, f"could not write {relpath}: {exc.strerror or exc}")
                return
        else:
            self._fail(work.item_id, "signed URL kept expiring before it could be fetched")
            return
        charged = self.journal.was_charged(work.item_id)
        if work.listed is None:
            self.report.recovered += 1
        self._writer.add_file(FileRow(item, relpath, stored.bytes, stored.sha256, stored.width, stored.height,
                                      charged, datetime.now(UTC)))
        self._row_ids.append(work.item_id)
        self.report.mirrored += 1
        self.report.bytes += stored.bytes
        if log.isEnabledFor(_DEBUG):
            log.debug("placed %r at %s: %d bytes, sha256 %s", work.item_id, relpath, stored.bytes, stored.sha256)
        if self.progress:
            self.progress(1, stored.bytes)
        if self._writer.should_flush:
            await self._flush()

    # -- the manifest --------------------------------------------------------------------------
    async def _flush(self) -> None:
        # Shielded: a part on disk whose items are not marked done would be fetched again next run.
        await to_the_end(self._flush_now())

    async def _flush_now(self) -> None:
        async with self._flush_lock:
            self._seal()                 # on the loop: see ManifestWriter.seal
            if self._sealed_ids:
                await asyncio.to_thread(self._writer.write_sealed)
                self._written()

    def _flush_sync(self) -> None:
        """Last flush on the way out, also after a cancellation: no awaiting allowed here."""
        self._seal()
        if self._sealed_ids:
            self._writer.write_sealed()
            self._written()

    def _seal(self) -> None:
        self._writer.seal()
        self._sealed_ids += self._row_ids
        self._row_ids = []

    def _written(self) -> None:
        """The sealed rows are in a part on disk: their items are done."""
        ids, self._sealed_ids = self._sealed_ids, []
        self.journal.done(ids)

    def _fail(self, item_id: str, reason: str, *, retryable: bool = True) -> None:
        reason = self.client.redact(reason)
        self.report.failed += 1
        if len(self.report.failures) < 1000:
            self.report.failures.append(Failure(item_id, reason, retryable))
        if log.isEnabledFor(_DEBUG):
            # %r: a reason may quote what a server sent, and a log line stays one line
            log.debug("failed %r (%s): %r", item_id, "retryable" if retryable else "not retryable", reason)

