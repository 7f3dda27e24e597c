"""Append-only JSON-lines records in ``.state`` (the reservation journal, the detector ledgers).

Writers append one record per ``os.write`` on an ``O_APPEND`` descriptor, so after a kill a record
is whole or absent, except a torn last line. Replay reads line by line, so a long journal left by
a killed big run is replayed in flat memory, and skips what does not parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["replay_records"]


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
