"""``margen-mirror status DEST``: what a destination holds, per cell and perturbation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mirror.cli.verbs import Subparsers, reader_verb

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    return reader_verb(subparsers, "status", "what a destination holds, per cell and perturbation", _status)


def _status(dest: Path, given: str) -> tuple[dict[str, Any], list[str]]:
    from mirror.inspect.status import read_status

    report = read_status(dest)
    return report.to_dict(), report.lines()
