"""Where each selection's last complete walk ended, so a re-run can be a handful of calls.

Cursor paging is stable while the server appends items, so after a complete walk the cursor that
fetched the last page is a valid place to resume: a later run that sees more matching items walks
only from there. A run that did not finish never updates its record, so the next run walks the
whole selection again (skipping what is already mirrored).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mirror.store import write_atomic

__all__ = ["SelectionRecord", "SelectionStates"]


@dataclass(frozen=True)
class SelectionRecord:
    total_matching: int
    watermark: str            # the cursor of the last page of the last complete walk
    completed_at: str
    rows_here: int | None = None   # manifest rows in DEST when it ended (None: a record from before)


class SelectionStates:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):      # none yet (or no DEST yet): no record
            raw = {}
        self._records: dict[str, SelectionRecord] = {}
        for key, rec in raw.items() if isinstance(raw, dict) else ():
            try:
                self._records[key] = SelectionRecord(**rec)
            except TypeError:
                continue

    def get(self, key: str) -> SelectionRecord | None:
        return self._records.get(key)

    def put(self, key: str, record: SelectionRecord) -> None:
        self._records[key] = record
        write_atomic(self.path, json.dumps({k: asdict(v) for k, v in self._records.items()}, indent=1),
                     temp=self.path.with_suffix(".tmp"))
