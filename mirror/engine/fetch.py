"""Stage 3: a signed URL becomes verified bytes, handed to stage 4 (``place``) to become a file.

Signed URLs are fetched by a session that has no API key at all (not a header removed per
request: the key is simply not there), does not follow redirects, and has a total deadline (see
``mirror.api.deadlines``). A URL made only of the characters RFC 3986 allows is sent exactly as the
server wrote it, not parsed and re-quoted. It may share the API client's connection pool
(``MargenClient.pool``): a connection holds no credentials, and where storage is on the API's
origin each worker's fetch reuses the connection its reservation released.
A body with a Content-Length up to ``SPILL_BYTES`` is read in one call and hashed where it is
placed (see ``place``); a bigger or unsized body is hashed as it streams and spilled to a temp
file (aiofiles), so no body holds more than ``SPILL_BYTES`` of memory. Size is checked against
Content-Length and the cap before anything is placed. Figures: docs/design.md.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import aiofiles
import aiohttp
from yarl import URL

from mirror.api.deadlines import TimedSession
from mirror.api.models import Download
from mirror.api.retry import attempt_loop
from mirror.config import Limits, Retries, Timeouts
from mirror.engine.place import Body, Placer, Sink, StoredFile
from mirror.errors import IntegrityError
from mirror.store import Layout

__all__ = ["Fetcher", "UrlExpired"]

SPILL_BYTES = 4 * 2**20
_EXPIRY_MARGIN_S = 5.0      # do not start a fetch this close to the URL's expiry (or a fifth of a short TTL)
_CHUNK = 256 * 1024
_PLAIN_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")   # RFC 3986's characters, nothing to escape


class UrlExpired(Exception):
    """The signed URL is expired (or refused with 403): reserve again, which is free."""


class Fetcher:
    def __init__(self, layout: Layout, limits: Limits, timeouts: Timeouts, retries: Retries,
                 pool: aiohttp.BaseConnector | None = None, sink: Sink | None = None) -> None:
        self.layout = layout
        self.limits = limits
        self.timeouts = timeouts
        self.retries = retries
        self._pool = pool           # borrowed (its owner closes it) or None: a pool of our own
        self._session: aiohttp.ClientSession | None = None
        self._http = TimedSession()
        self._placer: Sink = sink if sink is not None else Placer(layout)    # a bucket's sink, or the disk

    async def __aenter__(self) -> Fetcher:
        self._session = await self._http.open(
            self.timeouts.connect, connector=self._pool or aiohttp.TCPConnector(limit=self.limits.connections),
            connector_owner=self._pool is None,
            # The bytes are stored as sent: ask for no Content-Encoding, rather than get a gzipped JPEG.
            auto_decompress=False, skip_auto_headers=("Accept-Encoding",))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._session = None
        await self._http.close()

    @property
    def slow_disk(self) -> bool:
        """True once files became slow to create and placement left the event loop (see ``place``)."""
        return not self._placer.on_loop

    async def fetch(self, download: Download, relpath: str) -> StoredFile:
        """Fetch, verify and place one image; retries drops and truncations while the URL lives."""
        body = await attempt_loop(lambda: self._attempt(download), self.retries, what="storage fetch",
                                  deadlines=self._http.deadlines, seconds=self.timeouts.storage)
        return await self._placer.place(relpath, body)     # the connection is back in the pool by now

    async def _attempt(self, download: Download) -> Body:
        if time.monotonic() > download.expires_at - min(_EXPIRY_MARGIN_S, 0.2 * download.ttl):
            raise UrlExpired(download.item["id"])
        return await self._download(download.url)

    async def _download(self, url: str) -> Body:
        assert self._session is not None
        cap = self.limits.max_image_bytes
        async with self._session.get(URL(url, encoded=True) if _PLAIN_URL.fullmatch(url) else url,
                                     allow_redirects=False) as resp:
            if resp.status == 403:
                raise UrlExpired(url)
            if 300 <= resp.status < 400:
                raise IntegrityError("storage answered with a redirect; refused (signed URLs are fetched directly)")
            if resp.status >= 500:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
            if resp.status != 200:
                raise IntegrityError(f"storage answered HTTP {resp.status}")
            declared = resp.content_length
            if declared is not None and declared > cap:
                raise IntegrityError(f"image of {declared} bytes is larger than the {cap}-byte cap")
            if declared is not None and declared <= SPILL_BYTES:
                data = await resp.read()          # one call, no per-chunk awaits
                if len(data) != declared:
                    raise aiohttp.ClientPayloadError(f"body of {len(data)} bytes, Content-Length {declared}")
                return Body(size=declared, data=data)
            return await self._stream(resp, declared, cap)

    async def _stream(self, resp: aiohttp.ClientResponse, declared: int | None, cap: int) -> Body:
        """A big or unsized body: hashed while it streams, spilled to a temp file past SPILL_BYTES."""
        digest = hashlib.sha256()
        buffer = bytearray()
        spill: Path | None = None
        size = 0
        try:
            async for chunk in resp.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise IntegrityError(f"image larger than the {cap}-byte cap")
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= SPILL_BYTES:
                    spill = spill or self._placer.temp_path()
                    async with aiofiles.open(spill, "ab") as fh:
                        await fh.write(bytes(buffer))
                    buffer.clear()
            if declared is not None and size != declared:
                raise aiohttp.ClientPayloadError(f"body of {size} bytes, Content-Length {declared}")
            if spill is not None and buffer:
                async with aiofiles.open(spill, "ab") as fh:
                    await fh.write(bytes(buffer))
        except BaseException:
            if spill is not None:
                spill.unlink(missing_ok=True)
            raise
        return Body(size=size, data=bytes(buffer) if spill is None else b"", spill=spill, sha256=digest.hexdigest())
