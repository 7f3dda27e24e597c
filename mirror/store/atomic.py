"""The one way a durable file is written: a temp file, fsync, rename over the target, fsync of its folder.

A reader (or the next run after a kill or a power cut) sees the old file or the new one, never
a mix or a half: the data is on disk before the rename makes it visible, and the rename itself
is on disk before the writer goes on. A failure anywhere removes the temp file and leaves the
target as it was. Manifest parts, compacted manifests, detector scores, reservation and submission logs
when compacted, selection records, reports and detector outputs all go through ``atomic_file``.

The temp file is created in ``temp_dir`` (default: beside the target; it must be on the same
file system, which ``.state/tmp`` is for anything in DEST) under a fresh name from ``prefix``,
or at ``temp`` when a writer keeps one fixed name (it is then overwritten, so a kill leaves at
most one behind). OSError propagates as it is: callers that write into DEST turn it into their
one-line ``DestinationError`` (``mirror.store.destination_error``).

Image placement (``mirror.engine.place``) is the same protocol specialised for thousands of
files a second: see its docstring.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "write_atomic", "replace_durably", "fsync_dir"]


@contextlib.contextmanager
def atomic_file(target: Path, *, temp_dir: Path | None = None, prefix: str | None = None, suffix: str = ".tmp",
                temp: Path | None = None) -> Iterator[BinaryIO]:
    """A binary file that becomes ``target`` (flush, fsync, rename, fsync of the folder) only if
    the block succeeds; on any failure the temp file is removed and ``target`` is untouched."""
    target = Path(target)
    if temp is not None:
        fd, tmp = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644), Path(temp)
    else:
        fd, name = tempfile.mkstemp(dir=temp_dir or target.parent, prefix=prefix or f".{target.name}.", suffix=suffix)
        tmp = Path(name)
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        replace_durably(tmp, target)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes | str, *, temp_dir: Path | None = None, prefix: str | None = None,
                 temp: Path | None = None) -> None:
    """``atomic_file`` for content already in memory (text is written as UTF-8)."""
    with atomic_file(target, temp_dir=temp_dir, prefix=prefix, temp=temp) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def replace_durably(source: Path, target: Path) -> None:
    """Rename a complete, already fsynced file over ``target`` and make the rename durable."""
    os.replace(source, target)
    fsync_dir(Path(target).parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or delete durable; some file systems cannot fsync a directory, which is fine."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
