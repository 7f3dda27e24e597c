"""Stage 4: fetched bytes become a verified file at its final path, by atomic rename.

``Placer`` places a body of up to ``INLINE_BYTES`` on the event loop (cheaper than a thread hop)
and times the file system's part of it (create, write, rename): once most recent files took
longer than ``SLOW_FILE_S`` (a network mount, a throttled disk), every later file of the run goes
to a worker thread, as do bodies too big to place inline, so a slow disk never stalls the
requests in flight. Most, not one: a system call also waits whenever another thread holds the
GIL, and a burst of those is not a slow disk.

Both ways ``Placer`` group-commits: each ``place`` call queues its file and awaits a future. On the
loop, one callback at the next loop turn places every file queued meanwhile, so those workers
send their next reservations together (one wake-up and one ledger transaction on the server).
Off the loop, one drain task hands everything queued so far to a thread as a single batch.

Either way each body is checked (size, JPEG start and end markers, width and height from the
frame header, with Pillow as the fallback), hashed if the fetcher has not hashed it already,
written to a hidden temp file in its own folder (``partial_image_path``) and renamed into place.
A body spilled to ``.state/tmp`` while it streamed is renamed from there. Invariant: a file
appears at its final path whole or not at all; a failure is that item's alone and never stops
the rest of its batch. What a kill leaves half-written is removed at the next sync's start.

This is the protocol of ``mirror.store.atomic`` specialised for images, deliberately without its
fsyncs: a kill cannot tear an image; a power cut can leave one whose row says it is whole, which
``verify`` finds by its hash and ``verify --repair`` fetches again, free.

Figures behind these choices: docs/design.md, "Performance decisions".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from mirror.errors import IntegrityError
from mirror.store import Layout, partial_image_path, resolve_inside

__all__ = ["Placer", "Sink", "StoredFile", "Body", "check_jpeg", "INLINE_BYTES", "SLOW_FILE_S"]

INLINE_BYTES = 2**20      # hashing 1 MiB takes ~0.7 ms: the most one file may hold up the loop
SLOW_FILE_S = 0.0003      # a small file's create+write+rename slower than this is slow (local disk: ~0.03 ms)
_SLOW_PER_MIB_S = 0.0005  # ... plus this much per MiB of the file
_RECENT = 128             # files the share of slow ones is averaged over (exponentially)
_MOST = 0.5               # share of slow files that moves placement to a thread

_HEADER_SCAN = 64 * 1024
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}     # start-of-frame markers (DHT, JPG, DAC excluded)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Body:
    """A fetched image: in memory (``data``) or spilled to a temp file (``spill``, already hashed)."""

    size: int
    data: bytes = b""
    spill: Path | None = None
    sha256: str | None = None      # None: hashed when it is placed


@dataclass(frozen=True)
class StoredFile:
    relpath: str
    bytes: int
    sha256: str
    width: int
    height: int


class Sink(Protocol):
    """Where verified bytes go: the local folder (``Placer``) or a bucket (``engine.objectsink``)."""

    on_loop: bool

    def temp_path(self) -> Path: ...

    async def place(self, relpath: str, body: Body) -> StoredFile: ...


class Placer:
    """Writes files in batches: on the event loop while the disk keeps up, else on worker threads.

    ``slow_file_s``: seconds past which a small file's file-system work counts as slow (0: always).
    """

    def __init__(self, layout: Layout, *, slow_file_s: float = SLOW_FILE_S) -> None:
        self.layout = layout
        self.on_loop = True                    # False once the disk was too slow to write from the loop
        self._slow_file_s = slow_file_s
        self._slow_share = 0.0                 # of recent files, exponentially weighted
        self._ready: dict[str, str] = {}       # folders already checked and created, by relative name
        self._tmp = str(layout.tmp)
        self._token = uuid.uuid4().hex[:12]    # temp names: this placer's token and a serial number
        self._serial = itertools.count()
        self._soon: list[tuple[str, Body, asyncio.Future[StoredFile]]] = []     # to place on the loop
        self._queue: list[tuple[str, Body, asyncio.Future[StoredFile]]] = []    # to place in a thread
        self._drain_task: asyncio.Task[None] | None = None

    def temp_path(self) -> Path:
        """A temp file in ``.state/tmp``, for a body too big to hold in memory."""
        return Path(f"{self._tmp}/{self._token}-{next(self._serial)}.part")

    async def place(self, relpath: str, body: Body) -> StoredFile:
        """Verify ``body`` and put it at ``relpath``; raises IntegrityError or OSError for this item only."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("fetched %s: %d bytes", relpath, body.size)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredFile] = loop.create_future()
        if self.on_loop and body.spill is None and body.size <= INLINE_BYTES:
            self._soon.append((relpath, body, future))
            if len(self._soon) == 1:
                loop.call_soon(self._place_soon)
        else:
            self._queue.append((relpath, body, future))
            if self._drain_task is None:
                self._drain_task = asyncio.create_task(self._drain())
        return await future

    def place_now(self, jobs: list[tuple[str, Body]]) -> list[StoredFile | Exception]:
        """Place ``jobs`` in the calling thread (a caller already off the event loop: a release part's
        explode), each checked exactly as ``place`` checks it; a failure is that file's alone."""
        return [result if isinstance(result, BaseException) else result[0]     # type: ignore[misc]
                for result in self._place_batch(jobs)]

    def _place_soon(self) -> None:
        """On the loop: every file queued since the last turn (see the module docstring). A file
        whose fetch was cancelled before its turn is not written."""
        batch, self._soon = [job for job in self._soon if not job[2].done()], []
        results = self._place_batch([(relpath, body) for relpath, body, _ in batch])
        for (_, body, _), result in zip(batch, results, strict=True):
            if not isinstance(result, BaseException):
                slow = result[1] >= self._slow_file_s + _SLOW_PER_MIB_S * body.size / 2**20
                self._slow_share += (slow - self._slow_share) / _RECENT
                self.on_loop = self.on_loop and self._slow_share <= _MOST
        _settle(batch, results)

    async def _drain(self) -> None:
        batch: list[tuple[str, Body, asyncio.Future[StoredFile]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                _settle(batch, await asyncio.to_thread(self._place_batch, [(rel, body) for rel, body, _ in batch]))
                batch = []
        finally:
            self._drain_task = None
            for _, _, future in batch + self._queue:    # only when the drain itself was cancelled
                future.cancel()
            self._queue = []

    def _place_batch(self, jobs: list[tuple[str, Body]]) -> list[tuple[StoredFile, float] | BaseException]:
        results: list[tuple[StoredFile, float] | BaseException] = []
        for relpath, body in jobs:
            try:
                results.append(self._place_one(relpath, body))
            except Exception as exc:        # handed to that item's awaiting fetch
                results.append(exc)
        return results

    def _place_one(self, relpath: str, body: Body) -> tuple[StoredFile, float]:
        """The stored file, and the seconds its file-system work took (for an in-memory body)."""
        # Plain strings, not Paths: pathlib cost more per file (~10 us) than hashing the JPEG's header.
        # The file name is one safe_component (no "/", never "." or ".."): checking its folder suffices.
        folder = self._folder(relpath)
        tmp = str(body.spill) if body.spill is not None else partial_image_path(folder, self._token, next(self._serial))
        try:
            if body.spill is None:
                data = body.data
                width, height = check_jpeg(memoryview(data)[:_HEADER_SCAN], data[-2:], lambda: io.BytesIO(data))
                sha256 = body.sha256 or hashlib.sha256(data).hexdigest()
                started = time.perf_counter()
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            else:
                with open(tmp, "rb") as fh:
                    head = fh.read(_HEADER_SCAN)
                    fh.seek(max(0, body.size - 2))
                    end = fh.read(2)
                    fh.seek(0)
                    width, height = check_jpeg(head, end, lambda: fh)
                assert body.sha256 is not None, "a spilled body is hashed while it streams"
                sha256 = body.sha256
                started = time.perf_counter()
            os.replace(tmp, folder + relpath.rpartition("/")[2])
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return StoredFile(relpath, body.size, sha256, width, height), time.perf_counter() - started

    def _folder(self, relpath: str) -> str:
        """The item's folder (with a trailing "/"), checked to be inside DEST and created once per
        lineage, not per file."""
        parent = relpath.rpartition("/")[0]
        folder = self._ready.get(parent)
        if folder is None:
            resolve_inside(self.layout.dest, parent).mkdir(parents=True, exist_ok=True)
            folder = self._ready[parent] = f"{self.layout.dest}/{parent}/"
        return folder


def _settle(batch: list[tuple[str, Body, asyncio.Future[StoredFile]]],
            results: list[tuple[StoredFile, float] | BaseException]) -> None:
    """Hand each placed file (or its own error) to the fetch awaiting it."""
    for (_, _, future), result in zip(batch, results, strict=True):
        if future.done():            # its fetch was cancelled meanwhile; the file is in place regardless
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result[0])


def check_jpeg(head: bytes | memoryview, end: bytes, whole: Callable[[], BinaryIO]) -> tuple[int, int]:
    """Width and height of a complete JPEG, or IntegrityError (the body is retried on the next run).

    ``head``: the body's first ``_HEADER_SCAN`` bytes (or all of it), ``end``: its last two bytes,
    ``whole``: the whole body as a file, for Pillow, only for a header the frame scan cannot read.
    """
    if head[:3] != b"\xff\xd8\xff" or end != b"\xff\xd9":
        raise IntegrityError("the body is not a complete JPEG (start/end markers missing)")
    found = _frame_size(head)
    if found is not None:
        return found
    from PIL import Image, UnidentifiedImageError  # rarely needed: imported here, not by every sync (~13 MB)

    try:
        with Image.open(whole()) as img:   # a header the scan above does not know: let Pillow read it
            return img.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise IntegrityError("the body is not a readable JPEG") from None


def _frame_size(head: bytes | memoryview) -> tuple[int, int] | None:
    """Width and height from the JPEG frame header: a walk over marker segments, ~50x cheaper than Pillow."""
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:                       # fill byte
            i += 1
            continue
        if marker in _SOF:
            height, width = int.from_bytes(head[i + 5:i + 7], "big"), int.from_bytes(head[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        if marker == 0xDA:                       # scan data before any frame header: not a usable JPEG header
            return None
        i += 2 + int.from_bytes(head[i + 2:i + 4], "big")
    return None
