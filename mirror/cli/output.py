"""How the CLI talks: a tqdm bar for humans on a TTY, nothing but the summary for cron and pipes.

Everything goes to stderr except the result (tables, ``--json``), which goes to stdout, so
``margen-mirror sync --json > report.json`` works while a human still sees the progress bar.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["Progress", "emit", "say"]


class Progress:
    """Counts mirrored items and bytes; draws a bar only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: tqdm | None = None

    def set_total(self, total: int | None) -> None:
        if self.enabled and self._bar is None:
            self._bar = tqdm(total=total, unit="img", desc="mirroring", dynamic_ncols=True, file=sys.stderr)

    def advance(self, items: int, nbytes: int) -> None:
        if self._bar is not None:
            self._bar.update(items)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def emit(data: Any, *, as_json: bool, lines: list[str] | None = None) -> None:
    """Print a command's result: JSON for machines, or the given human lines."""
    if as_json:
        print(json.dumps(data, indent=2, default=str, sort_keys=True))
    else:
        for line in lines or []:
            print(line)


def say(message: str) -> None:
    print(message, file=sys.stderr)
