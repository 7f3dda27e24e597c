"""Finding this session's Ray worker processes (to kill one): they descend from the test process."""

from __future__ import annotations

import os
from pathlib import Path


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (by /proc parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def score_workers() -> list[int]:
    """The pids of this session's live ScoreWorker actors."""
    pids = []
    for pid in descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::MapWorker(MapBatches(ScoreWorker))"):
            pids.append(pid)
    return pids
