"""Where the emulator serves images from: a memory LRU (bounded in bytes), then an optional disk
cache, then a fresh render (``images.render_jpeg``). A cached file appears by rename, whole."""

from __future__ import annotations

import os
import pathlib
import tempfile
import threading
from collections import OrderedDict

from mirror.emulator.images import ImageSpec, render_jpeg, spec_digest

__all__ = ["ImageStore"]


class ImageStore:
    """Serving cache: memory LRU (bounded bytes), then optional disk cache dir, then render."""

    def __init__(self, cache_dir: pathlib.Path | None = None, max_memory_bytes: int = 256 * 2**20) -> None:
        self._dir = pathlib.Path(cache_dir) if cache_dir is not None else None
        self._max = max_memory_bytes
        self._lock = threading.Lock()
        self._memory: OrderedDict[ImageSpec, bytes] = OrderedDict()
        self._size = 0
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)

    def cached(self, spec: ImageSpec) -> bytes | None:
        """Memory hit only, never renders: lets an event loop answer warm requests without a thread hop."""
        with self._lock:
            data = self._memory.get(spec)
            if data is not None:
                self._memory.move_to_end(spec)
            return data

    def get(self, spec: ImageSpec) -> bytes:
        """The item's bytes from memory, else disk, else a fresh render (which fills both caches)."""
        data = self.cached(spec)
        if data is not None:
            return data
        path = self._dir / f"{spec_digest(spec)}.jpg" if self._dir is not None else None
        if path is not None and path.is_file():
            data = path.read_bytes()
        else:
            data = render_jpeg(spec)
            if path is not None:
                self._write(path, data)
        self._remember(spec, data)
        return data

    def _remember(self, spec: ImageSpec, data: bytes) -> None:
        """Insert into the memory LRU, evicting the oldest entries beyond the byte budget."""
        if len(data) > self._max:
            return
        with self._lock:
            if spec in self._memory:
                return
            self._memory[spec] = data
            self._size += len(data)
            while self._size > self._max:
                self._size -= len(self._memory.popitem(last=False)[1])

    @staticmethod
    def _write(path: pathlib.Path, data: bytes) -> None:
        """Write atomically (temp file, then rename) so a reader never sees a partial JPEG."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise
