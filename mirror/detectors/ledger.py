"""The submission ledger: every file ever sent to a remote detector, and its job handle.

This is what "never submit the same file twice" rests on. A ``submit`` record (the file's
sha256) is appended *before* the upload starts and a ``job`` record as soon as the service
returns a handle; both with one ``os.write`` on an ``O_APPEND`` descriptor, so a record is whole
or absent after a kill. Entries are never forgotten unless the service certainly did not take
the file (``not_taken``): a later run that meets the sha256 again polls the recorded job, and one
that finds a ``submit`` without a ``job`` (killed mid-upload) must reconcile with the service, not
upload again. Only hashes, item ids and job handles are written: never a token, never a URL.

A flock on a per-detector lock file keeps two scoring runs of the same detector apart (a sync or
another detector's run may share DEST meanwhile).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mirror.detectors.scores import detector_folder
from mirror.errors import LockHeldError
from mirror.store import Layout, destination_error, write_atomic
from mirror.store.records import replay_records

__all__ = ["Ledger", "Entry"]


@dataclass
class Entry:
    item_id: str
    job: str | None = None        # None: the upload started, its answer never arrived


class Ledger:
    def __init__(self, layout: Layout, detector: str) -> None:
        folder = layout.state / "scores"
        stem = detector_folder(detector)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(folder / f"{stem}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise destination_error(exc, folder) from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise LockHeldError(f"another scoring run for {detector} is using {layout.dest}: wait for it to "
                                "finish; the lock frees itself when that process exits") from None
        self.path = folder / f"{stem}.jsonl"
        self.entries: dict[str, Entry] = _replay(self.path)
        self._rewrite()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1

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
        line = json.dumps({**record, "t": round(time.time(), 3)}, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())

    def _rewrite(self) -> None:
        """One or two lines per entry: the file stays proportional to what was ever submitted."""
        lines = []
        for sha, entry in self.entries.items():
            lines.append(json.dumps({"op": "submit", "sha": sha, "id": entry.item_id}))
            if entry.job is not None:
                lines.append(json.dumps({"op": "job", "sha": sha, "job": entry.job}))
        write_atomic(self.path, "".join(line + "\n" for line in lines), temp=self.path.with_suffix(".rewrite"))


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
