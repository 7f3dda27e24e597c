"""Exclusive ``flock`` locks: one run per DEST (``DEST/.state/lock``), one scoring run per detector.

``flock`` is released by the kernel when the holding process exits for any reason, SIGKILL and
power loss included, so there is no stale-lock cleanup and no "remove the lock file if you are
sure" advice.  The DEST lock's content (pid, host, start time) is only there to tell the user who
holds the lock; the lock itself is the kernel's.  The file is never deleted: unlinking a flock'd
file lets a second process lock a fresh inode while the first still holds the old one.

The lock belongs to the open file description, so a child created with ``fork`` (not
``subprocess``, whose children do not inherit it) keeps DEST locked until it exits too.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from mirror.errors import DestinationError, LockHeldError
from mirror.store.layout import Layout, destination_error

__all__ = ["DestLock", "FileLock"]


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (created if need be, never deleted).

    The one lock implementation: ``DestLock`` holds one on ``DEST/.state/lock`` for a run, and a
    record log can hold one of its own (a detector's submission log, see ``store.records``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, busy: Callable[[int], LockHeldError]) -> int:
        """Take the lock without waiting and return its descriptor; when another process holds it,
        raise ``busy(descriptor)`` (which may read the file to name the holder)."""
        if self._fd is not None:
            raise RuntimeError(f"the lock on {self.path} is already held by this object")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise destination_error(exc, self.path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = busy(fd)
            os.close(fd)
            raise error from None
        except OSError as exc:  # e.g. a file system without flock support
            os.close(fd)
            raise DestinationError(f"cannot lock {self.path} ({exc.strerror}): use a local destination folder") from exc
        self._fd = fd
        return fd

    def release(self, *, blank: bool = False) -> None:
        """Drop the lock (``blank``: empty the file first); closing the only descriptor releases it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if blank:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)


class DestLock:
    """Context manager holding the exclusive lock on a destination for the life of a run."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._lock = FileLock(layout.lock_path)

    def __enter__(self) -> DestLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._lock.held

    def acquire(self) -> None:
        """Take the lock without waiting; LockHeldError names the holder if another run has it."""
        if self._lock.held:
            raise RuntimeError("DestLock is already held by this object")
        fd = self._lock.acquire(lambda fd: LockHeldError(
            f"{self.layout.dest} is in use by another margen-mirror run ({_describe_holder(fd)}): "
            "wait for it or stop it; the lock frees itself when that process exits"))
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)

    def release(self) -> None:
        """Drop the lock; blank the file first so it never names a run that has ended cleanly."""
        self._lock.release(blank=True)


def _describe_holder(fd: int) -> str:
    """Who holds the lock, from the file's content; it may be empty if the holder just started."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        return "pid unknown"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"
