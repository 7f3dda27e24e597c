"""``margen-mirror benchmarks``: the benchmarks the key can query, one per line (or a JSON list)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from mirror.cli.verbs import Shown, Subparsers, api_verb, ask_and_show

if TYPE_CHECKING:
    from mirror.api.models import Benchmark

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    return api_verb(subparsers, "benchmarks", "list the benchmarks the key can query",
                    lambda args: ask_and_show(args, lambda client: client.benchmarks(), _show))


def _show(found: list[Benchmark]) -> Shown:
    return [dataclasses.asdict(b) for b in found], [f"{b.id:<28} {b.product:<10} {b.title}" for b in found]
