"""A bought release's parts become files and manifest rows: fetch, verify, explode.

Each part is one unit of the engine's worker pool (``workers.run_pool``, ``DOWNLOADS +
EXPLODERS`` workers: that many parts in hand at most). It is fetched by at most ``DOWNLOADS`` at
once, into memory up to ``SPILL_BYTES`` and streamed to a temp file in ``.state/tmp`` past that,
then verified and exploded in a worker thread by at most ``EXPLODERS`` at once, a record batch of
at most ``BATCH_BYTES`` of images at a time: memory is bounded by those numbers, whatever the size
of the release.

Verified means: the Parquet footer reads, the row count is the one announced, every row has a
string id and its image is a complete JPEG (``place``'s check, the same as for a fetched image).
Files are placed by ``place.Placer``, exactly as fetched images are (temp file beside the final
path, rename); a part's rows go to the ``ManifestWriter`` only once every file of the part is in
place, and the part is marked placed in the journal only once those rows are in a flushed
manifest part. Items already in the manifest are not written again.

A dropped or truncated part, a 5xx or a deadline is retried with back-off; an expired URL (403)
renews every URL with one new ``/release`` call (free: the account owns the release), shared by
all the parts that found theirs expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from mirror.api.models import Release, ReleasePart, usable_id
from mirror.api.retry import Retry, attempt_loop
from mirror.config import Retries, Timeouts
from mirror.engine.outcome import Failure, SyncReport
from mirror.engine.place import Body, Placer
from mirror.engine.seen import SeenIds
from mirror.engine.tasks import to_the_end
from mirror.engine.workers import Put, run_pool
from mirror.errors import IntegrityError, RateLimited, ServerError, TransportError
from mirror.store import FileRow, Layout, ManifestIndex, ManifestWriter, destination_error, image_relpath
from mirror.store.reservations import ReservationLog

__all__ = ["PartsRun", "DOWNLOADS", "EXPLODERS", "BATCH_BYTES"]

DOWNLOADS = 8                  # parts downloading at once
SPILL_BYTES = 1 * 2**20        # a part announced no bigger than this is read into memory, else streamed to disk
EXPLODERS = 2                  # parts being exploded at once (worker threads)
BATCH_BYTES = 4 * 2**20       # images of one record batch held in memory by one exploder
MAX_PART_BYTES = 16 * 2**30    # a part bigger than this is refused, not written to disk
_CHUNK = 1 * 2**20
_MIN_RATE = 1 * 2**20          # bytes/s: a part's total deadline is storage + its size at this rate
_EXPIRY_MARGIN_S = 5.0
_MAX_RENEWALS = 5
_FLUSH_EVERY_S = 2.0


class _Expired(Exception):
    """The part URL is expired (or refused with 403)."""


@dataclass
class _Exploded:
    rows: list[FileRow] = field(default_factory=list)
    bytes: int = 0


class PartsRun:
    """Fetch, verify and explode the parts of one bought release that are not placed yet."""

    def __init__(self, *, layout: Layout, pool: aiohttp.BaseConnector, journal: ReservationLog, index: ManifestIndex,
                 report: SyncReport, timeouts: Timeouts, retries: Retries, key: str, rows_charged: bool | None,
                 renew: Callable[[], Awaitable[Release]], seen: SeenIds,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.layout = layout
        self.journal = journal
        self.index = index
        self.report = report
        self.timeouts = timeouts
        self.retries = retries
        self.key = key                          # the purchase in the journal
        self.rows_charged = rows_charged        # what each row's ``charged`` says (None: unknown)
        self.progress = progress
        self._pool = pool
        self._renew_call = renew
        self._release: Release | None = None
        self._parts: dict[str, ReleasePart] = {}     # the current URLs, by part key
        self._threads: ThreadPoolExecutor | None = None
        self._spilled: set[str] = set()               # temp files of parts streamed to disk, to remove
        self._renewing: asyncio.Lock = asyncio.Lock()
        self._placer = Placer(layout)
        self._token = uuid.uuid4().hex[:12]
        self._serial = itertools.count()         # temp names: this run's token and a serial number
        self._writer = ManifestWriter(layout, run_id=self._token)
        self._unflushed: list[str] = []         # parts whose rows the writer holds
        self._unflushed_ids: list[str] = []     # ids of those rows that the journal has pending
        self._flush_lock = asyncio.Lock()
        self._seen = seen                       # ids given a row by this run (any purchase): never twice
        self.failed_parts = 0

    async def run(self, release: Release) -> bool:
        """Place every part of ``release`` not placed yet; True when all of them are."""
        self._use(release)
        done = self.journal.purchases[self.key].parts_done
        todo = [part for part in release.parts if part.key not in done]
        downloads, explodes = asyncio.Semaphore(DOWNLOADS), asyncio.Semaphore(EXPLODERS)

        async def feed(put: Put[ReleasePart]) -> None:
            for part in todo:
                await put(part)

        # sock_read: no byte for that long fails the fetch; the total deadline is set per part.
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeouts.connect, sock_read=self.timeouts.storage)
        # No key in this session at all (signed URLs need none), no redirects, the bytes as sent.
        # Exploding runs on threads of its own: the allocator keeps an arena per thread that touched the
        # batches, so the same few threads keep the peak where it is whatever the size of the release.
        with ThreadPoolExecutor(EXPLODERS, thread_name_prefix="explode") as self._threads:
            async with aiohttp.ClientSession(connector=self._pool, connector_owner=False, timeout=timeout,
                                             auto_decompress=False, skip_auto_headers=("Accept-Encoding",)) as http:
                # One worker per part in hand, from its download's start to its explode's end: at most
                # that many bodies exist (in memory or as temp files), however far downloads run ahead.
                await run_pool(feed, functools.partial(self._one, http, downloads, explodes),
                               concurrency=DOWNLOADS + EXPLODERS, queue_size=DOWNLOADS + EXPLODERS,
                               flush=self._flush, last_flush=self._flush_sync, flush_every=_FLUSH_EVERY_S)
        return self.failed_parts == 0

    def _use(self, release: Release) -> None:
        self._release = release
        self._parts = {part.key: part for part in release.parts}

    # -- one part ---------------------------------------------------------------------------------
    async def _one(self, http: aiohttp.ClientSession, downloads: asyncio.Semaphore, explodes: asyncio.Semaphore,
                   part: ReleasePart) -> None:
        exploded = await self._fetch_and_explode(http, part, downloads, explodes)
        if exploded is None:
            return
        self._add(part, exploded)
        if self._writer.should_flush:
            await to_the_end(self._flush())

    async def _fetch_and_explode(self, http: aiohttp.ClientSession, part: ReleasePart, downloads: asyncio.Semaphore,
                                 explodes: asyncio.Semaphore) -> _Exploded | None:
        """The part's rows, its files in place; None (a failure reported) when it never worked.

        Each attempt fetches and explodes the part, under the one retry policy (``api.retry``): a
        drop, a truncation, a 5xx or a body that fails verification (a torn transfer, likely) is
        tried again; an expired URL renews every URL first."""
        spill = self.layout.tmp / f"release-{self._token}-{next(self._serial)}.parquet"
        renewals = 0
        try:
            while True:
                release = self._release
                assert release is not None
                current = self._parts.get(part.key)
                if current is None:
                    self._fail(part, "the renewed release no longer lists this part")
                    return None
                try:
                    attempt = functools.partial(self._attempt, http, current, release, spill, downloads, explodes)
                    return await attempt_loop(attempt, self.retries, what=f"release part {part.key}")
                except _Expired:
                    renewals += 1
                    if renewals > _MAX_RENEWALS:
                        self._fail(part, "its signed URL kept expiring before it could be fetched")
                        return None
                    try:
                        await self._renew(release)
                    except (TransportError, ServerError, RateLimited) as exc:
                        self._fail(part, f"its URL could not be renewed ({exc})")
                        return None
                except (TransportError, IntegrityError) as exc:     # refused for good, or retried in vain
                    self._fail(part, str(exc))
                    return None
        finally:
            if spill.name in self._spilled:
                self._spilled.discard(spill.name)
                spill.unlink(missing_ok=True)

    async def _attempt(self, http: aiohttp.ClientSession, part: ReleasePart, release: Release, spill: Path,
                       downloads: asyncio.Semaphore, explodes: asyncio.Semaphore) -> _Exploded:
        async with downloads:
            if time.monotonic() > release.expires_at - min(_EXPIRY_MARGIN_S, 0.2 * release.ttl):
                raise _Expired              # checked once the fetch can start: waiting for a slot takes time
            body = await self._download(http, part, spill)
        async with explodes:
            try:
                # to the end: no worker thread may outlive the run (and its DEST lock) on a stop
                exploding = asyncio.get_running_loop().run_in_executor(
                    self._threads, self._explode, part, body if body is not None else spill)
                return await to_the_end(exploding)
            except IntegrityError as exc:
                raise Retry(str(exc), exc) from None

    async def _download(self, http: aiohttp.ClientSession, part: ReleasePart, spill: Path) -> bytes | None:
        """The part's bytes: in memory when it announces at most ``SPILL_BYTES``, else streamed into
        ``spill`` (then None). Its total deadline is the storage deadline plus its announced size at
        ``_MIN_RATE``; a part without Content-Length is bounded by the idle deadline alone."""
        async with asyncio.timeout(self.timeouts.storage) as deadline:
            async with http.get(part.url, allow_redirects=False) as resp:
                if resp.status == 403:
                    raise _Expired
                if 300 <= resp.status < 400:
                    raise TransportError("storage answered a part with a redirect; refused (signed URLs are "
                                         "fetched directly)")
                if resp.status >= 500:
                    raise Retry(f"HTTP {resp.status}")
                if resp.status != 200:
                    raise TransportError(f"storage answered HTTP {resp.status} for part {part.key}")
                declared = resp.content_length
                if declared is not None and declared > MAX_PART_BYTES:
                    raise TransportError(f"part {part.key} is {declared} bytes, more than the {MAX_PART_BYTES} cap")
                deadline.reschedule(None if declared is None else
                                    asyncio.get_running_loop().time() + self.timeouts.storage + declared / _MIN_RATE)
                if declared is not None and declared <= SPILL_BYTES:
                    data = await resp.read()
                    if len(data) != declared:
                        raise aiohttp.ClientPayloadError(f"part of {len(data)} bytes, Content-Length {declared}")
                    return data
                size = 0
                self._spilled.add(spill.name)
                with _temp_file(spill) as fh:
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if size > MAX_PART_BYTES:
                            raise TransportError(f"part {part.key} is larger than the {MAX_PART_BYTES}-byte cap")
                        try:
                            fh.write(chunk)
                        except OSError as exc:      # DEST itself refuses (full, read-only): stop the run
                            raise destination_error(exc, spill) from None
                if declared is not None and size != declared:
                    raise aiohttp.ClientPayloadError(f"part of {size} bytes, Content-Length {declared}")
                return None

    async def _renew(self, stale: Release) -> None:
        """New URLs for every part, from one free re-pull, shared by all parts that saw ``stale`` expire."""
        async with self._renewing:
            if self._release is stale:
                self._use(await self._renew_call())

    # -- explode (in a worker thread) -----------------------------------------------------------
    def _explode(self, part: ReleasePart, body: bytes | Path) -> _Exploded:
        """Verify the part and place the file of every row not mirrored yet (IntegrityError if the part
        fails a check: the files this attempt placed are removed again, none has a row)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(pa.BufferReader(body) if isinstance(body, bytes) else body)
        except Exception as exc:
            raise IntegrityError(f"part {part.key} has no readable Parquet footer ({exc})") from None
        out = _Exploded()
        placed: list[str] = []
        try:
            with reader:
                _check_footer(part, reader.metadata)
                self._explode_rows(part, reader, out, placed)
        except BaseException:
            for relpath in placed:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.layout.dest, relpath))
            raise
        return out

    def _explode_rows(self, part: ReleasePart, reader: Any, out: _Exploded, placed: list[str]) -> None:
        name = self._release.name if self._release else None
        columns = [c for c in reader.schema_arrow.names if c != "image"]
        meta = reader.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        per_row = max(1, size // max(1, meta.num_rows))
        now = datetime.now(UTC)
        for batch in reader.iter_batches(batch_size=max(1, BATCH_BYTES // per_row), use_threads=False):
            ids = batch.column("id").to_pylist()
            bad = next((i for i in ids if not (i and usable_id(i))), False)
            if bad is not False:
                raise IntegrityError(f"part {part.key} has a row without a usable id ({bad!r})")
            fresh = [i for i, here in enumerate(self.index.contains_many(ids)) if not here]
            if not fresh:
                continue
            rows = list(zip(*(batch.column(c).to_pylist() for c in columns), strict=True))   # a tuple a row
            images = batch.column("image").to_pylist()
            jobs: list[tuple[str, Body]] = []
            items: list[dict[str, Any]] = []
            for i in fresh:
                item = dict(zip(columns, rows[i], strict=True))
                attributes = item.get("attributes")
                if attributes == "{}":
                    item["attributes"] = {}
                elif isinstance(attributes, str):
                    with contextlib.suppress(ValueError):
                        item["attributes"] = json.loads(attributes)
                item["release"] = name
                data = images[i]
                if not isinstance(data, bytes):
                    raise IntegrityError(f"part {part.key}: item {ids[i]} has no image")
                items.append(item)
                jobs.append((image_relpath(item.get("benchmark") or "_", item.get("source_real_id"), ids[i]),
                             Body(size=len(data), data=data)))
            for (relpath, body), item, stored in zip(jobs, items, self._placer.place_now(jobs), strict=True):
                if isinstance(stored, OSError):     # DEST refuses files (full, read-only): stop the run
                    raise destination_error(stored, self.layout.dest)
                if isinstance(stored, Exception):
                    raise IntegrityError(f"part {part.key}: item {item['id']}: {stored}")
                placed.append(relpath)
                out.rows.append(FileRow(item, relpath, stored.bytes, stored.sha256, stored.width, stored.height,
                                        self.rows_charged, now))     # type: ignore[arg-type]
                out.bytes += body.size

    # -- rows and the manifest (on the event loop) ------------------------------------------------
    def _add(self, part: ReleasePart, exploded: _Exploded) -> None:
        """The part's rows, all at once now that every file is in place; an id another part gave is skipped."""
        rows = exploded.rows
        firsts = self._seen.first_sightings([row.item["id"] for row in rows])
        added = 0
        for row, first in zip(rows, firsts, strict=True):
            if not first:
                continue
            self._writer.add_file(row)
            added += 1
            if row.item["id"] in self.journal.pending:
                self._unflushed_ids.append(row.item["id"])
        self._unflushed.append(part.key)
        self.report.mirrored += added
        if self.rows_charged is False:          # a free pull (a re-pull, or all owned already)
            self.report.free += added
        self.report.bytes += exploded.bytes
        if self.progress is not None and added:
            self.progress(added, exploded.bytes)

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._writer.seal()
            parts, self._unflushed = self._unflushed, []
            ids, self._unflushed_ids = self._unflushed_ids, []
            try:
                await asyncio.to_thread(self._writer.write_sealed)
            except BaseException:
                self._unflushed, self._unflushed_ids = parts + self._unflushed, ids + self._unflushed_ids
                raise
            self._written(parts, ids)

    def _flush_sync(self) -> None:
        """The last flush, also after a cancellation: no awaiting allowed here."""
        self._writer.seal()
        parts, self._unflushed = self._unflushed, []
        ids, self._unflushed_ids = self._unflushed_ids, []
        self._writer.write_sealed()
        self._written(parts, ids)

    def _written(self, parts: list[str], ids: list[str]) -> None:
        self.journal.parts_placed(self.key, parts)
        self.journal.done(ids)

    def _fail(self, part: ReleasePart, reason: str) -> None:
        self.failed_parts += 1
        self.report.failed += 1
        if len(self.report.failures) < 1000:
            self.report.failures.append(Failure(f"part {part.key}", reason, True))


@contextlib.contextmanager
def _temp_file(path: Path) -> Iterator[BinaryIO]:
    try:
        fh = open(path, "wb")
    except OSError as exc:
        raise destination_error(exc, path) from None
    with fh:
        yield fh


def _check_footer(part: ReleasePart, meta: Any) -> None:
    """IntegrityError unless the footer holds the announced rows and the id and image columns."""
    if part.rows is not None and meta.num_rows != part.rows:
        raise IntegrityError(f"part {part.key} holds {meta.num_rows} rows, {part.rows} announced")
    if not {"id", "image"} <= set(meta.schema.names):
        raise IntegrityError(f"part {part.key} has no id and image columns")


