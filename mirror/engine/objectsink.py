"""Stage 4 for a DEST in a bucket: verified bytes become one object, by a single complete PUT.

The same contract as ``Placer`` (``place(relpath, body) -> StoredFile``, ``temp_path``,
``on_loop``), so the fetcher does not know where the bytes go: each body is checked (size, JPEG
markers, width and height) and hashed as on disk, then PUT whole to ``prefix/relpath``. S3 makes a
PUT atomic: the object appears complete or not at all, so there is no temp object to clean up and
no multipart upload to leave dangling (a single PUT takes up to 5 GiB; the corpus's images are
kilobytes). A spilled body is read back from ``.state/tmp`` of the local working folder and removed.

A store that refuses the credentials or the write stops the run with one line (exit 2); one that
cannot be reached after obstore's retries stops it as retryable (exit 5). Either way the items
already reserved stay pending in the journal and are fetched, free, by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import os
import uuid
from pathlib import Path

from mirror.engine.place import Body, StoredFile, check_jpeg
from mirror.store.objectstore import classify
from mirror.store.remote import RemoteDest

__all__ = ["ObjectSink"]

_HEADER_SCAN = 64 * 1024


class ObjectSink:
    """Puts verified images into a remote DEST's bucket."""

    on_loop = True              # never "slow disk": uploads are awaited, never block the loop

    def __init__(self, remote: RemoteDest) -> None:
        self.remote = remote
        self._tmp = str(remote.layout.tmp)
        self._token = uuid.uuid4().hex[:12]
        self._serial = itertools.count()

    def temp_path(self) -> Path:
        """A local temp file for a body too big to hold in memory while it streams."""
        return Path(f"{self._tmp}/{self._token}-{next(self._serial)}.part")

    async def place(self, relpath: str, body: Body) -> StoredFile:
        import obstore
        if body.spill is not None:
            data = await asyncio.to_thread(body.spill.read_bytes)
        else:
            data = body.data
        try:
            width, height = check_jpeg(memoryview(data)[:_HEADER_SCAN], data[-2:], lambda: io.BytesIO(data))
            sha256 = body.sha256 or hashlib.sha256(data).hexdigest()
            try:
                await obstore.put_async(self.remote.store, self.remote.url.key(relpath), data, use_multipart=False)
            except Exception as exc:
                raise classify(self.remote.url, "write an image", exc) from None
        finally:
            if body.spill is not None:
                await asyncio.to_thread(_unlink, body.spill)
        return StoredFile(relpath, len(data), sha256, width, height)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

