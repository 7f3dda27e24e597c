"""Append-only JSON-lines records in ``.state``: one ``RecordLog``, two record types on it.

A record is written *before* the act it announces (a reservation, an upload), so after any kill
the next run knows what may have happened. The reservations (``store/reservations.py``) and
each detector's submissions (``store/submissions.py``) are the two kinds; each says how its
records replay into what is still live, and the log does the rest:

* ``append`` writes a batch of lines with one ``os.write`` on an ``O_APPEND`` descriptor, so after
  a kill a record is whole or absent, except a torn last line; a short write (a full disk) or any
  OSError becomes a one-line DestinationError before the act is done;
* opening and (optionally) closing a log leave only the live records in it: rewritten through the
  one atomic write (``store.atomic``), or emptied in place when nothing is live (no fsync needed:
  whether a crash leaves the old records or none, they replay to the same thing, nothing live);
* ``replay_records`` reads line by line, so a long log left by a killed big run is replayed in
  flat memory, and skips what does not parse;
* a log may hold a ``FileLock`` of its own (``store.lock``) for as long as it is open.

The line format is each kind's own (``{"op": ..., ...}``) and unchanged across versions: a log
written by an older version replays.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mirror.store.atomic import write_atomic
from mirror.store.layout import destination_error
from mirror.store.lock import FileLock

__all__ = ["RecordLog", "replay_records"]


class RecordLog:
    """An open append-only log at ``path`` that starts with only ``live`` in it (see the module docstring).

    ``lock``: a lock already taken, released when the log is closed.
    """

    def __init__(self, path: Path, live: Iterable[dict[str, Any]], *, lock: FileLock | None = None) -> None:
        self.path = path
        self._lock = lock
        self._fd = -1
        try:
            kept = _lines(live)
            if kept:
                write_atomic(path, kept, temp=path.with_suffix(".rewrite"))
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if not kept:
                os.ftruncate(self._fd, 0)
        except OSError as exc:
            self.close()
            raise destination_error(exc, path) from None

    def append(self, lines: str) -> None:
        """Write ``lines`` (whole records, each ending in a newline) with one system call."""
        data = lines.encode()
        try:
            if os.write(self._fd, data) != len(data):       # a short write: the disk filled up in it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            raise destination_error(exc, self.path) from None

    def close(self, live: Iterable[dict[str, Any]] | None = None) -> None:
        """Stop appending (and release the lock). With ``live``, leave only those records: a
        long-lived log would otherwise make the next run replay everything it ever held. That is
        best effort: on a full disk the log is left long, but whole, and compacted next time."""
        if self._fd >= 0:
            kept = _lines(live) if live is not None else None
            try:
                if kept == "":
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)
                self._fd = -1
            if kept:
                with contextlib.suppress(OSError):
                    write_atomic(self.path, kept, temp=self.path.with_suffix(".rewrite"))
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def replay_records(path: Path, *keys: str) -> Iterator[dict[str, Any]]:
    """Each JSON object of ``path`` that has every one of ``keys``; nothing if the file is absent."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue                # a torn last line from a killed run
            if isinstance(record, dict) and all(key in record for key in keys):
                yield record


def _lines(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)
