"""The submission log of one detector: every file ever sent to it, and its job handle.

This is what "never submit the same file twice" rests on. A ``submit`` record (the file's
sha256) is appended *before* the upload starts and a ``job`` record as soon as the service
returns a handle, on a ``RecordLog`` (``store.records``), so a record is whole or absent after a
kill. Entries are never forgotten unless the service certainly did not take the file
(``not_taken``): a later run that meets the sha256 again polls the recorded job, and one
that finds a ``submit`` without a ``job`` (killed mid-upload) must reconcile with the service, not
upload again. Only hashes, item ids and job handles are written: never a token, never a URL.

A ``FileLock`` on a per-detector lock file, held by the log while it is open, keeps two scoring
runs of the same detector apart (a sync or another detector's run may share DEST meanwhile).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mirror.errors import LockHeldError
from mirror.store import Layout
from mirror.store.lock import FileLock
from mirror.store.records import RecordLog, replay_records
from mirror.store.verdicts import detector_folder

__all__ = ["SubmissionLog", "Entry"]


@dataclass
class Entry:
    item_id: str
    job: str | None = None        # None: the upload started, its answer never arrived


class SubmissionLog:
    """The submission records of one detector on a ``RecordLog``; ``entries`` by sha256."""

    def __init__(self, layout: Layout, detector: str) -> None:
        folder = layout.state / "scores"
        stem = detector_folder(detector)
        lock = FileLock(folder / f"{stem}.lock")
        lock.acquire(lambda _: LockHeldError(f"another scoring run for {detector} is using {layout.dest}: wait for "
                                             "it to finish; the lock frees itself when that process exits"))
        try:
            self.path = folder / f"{stem}.jsonl"
            self.entries: dict[str, Entry] = _replay(self.path)
            self._log = RecordLog(self.path, _live(self.entries), lock=lock)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        self._log.close()

    def submitting(self, sha256: str, item_id: str) -> None:
        self.entries[sha256] = Entry(item_id)
        self._append({"op": "submit", "sha": sha256, "id": item_id})

    def submitted(self, sha256: str, job: str) -> None:
        entry = self.entries.setdefault(sha256, Entry(""))
        entry.job = job
        self._append({"op": "job", "sha": sha256, "job": job})

    def not_taken(self, sha256: str) -> None:
        """The service certainly did not keep this upload: a later run may send it."""
        self.entries.pop(sha256, None)
        self._append({"op": "forget", "sha": sha256})

    def _append(self, record: dict[str, object]) -> None:
        self._log.append(json.dumps({**record, "t": round(time.time(), 3)}, separators=(",", ":")) + "\n")


def _live(entries: dict[str, Entry]) -> Iterator[dict[str, object]]:
    """One or two records per entry: the log stays proportional to what was ever submitted."""
    for sha, entry in entries.items():
        yield {"op": "submit", "sha": sha, "id": entry.item_id}
        if entry.job is not None:
            yield {"op": "job", "sha": sha, "job": entry.job}


def _replay(path: Path) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for rec in replay_records(path, "op", "sha"):
        op, sha = rec["op"], rec["sha"]
        if op == "submit":
            entries[sha] = Entry(str(rec.get("id", "")))
        elif op == "job" and isinstance(rec.get("job"), str):
            entries.setdefault(sha, Entry("")).job = rec["job"]
        elif op == "forget":
            entries.pop(sha, None)
    return entries
