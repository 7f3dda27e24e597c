"""``margen-mirror benchmarks``: the benchmarks the key can query."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from mirror.cli.args import add_common
from mirror.cli.verbs import Subparsers, with_client

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("benchmarks", help="list the benchmarks the key can query")
    add_common(p)
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.output import emit
    from mirror.errors import EXIT_OK

    found = asyncio.run(with_client(args, lambda c: c.benchmarks()))
    emit([dataclasses.asdict(b) for b in found], as_json=args.json,
         lines=[f"{b.id:<28} {b.product:<10} {b.title}" for b in found])
    return EXIT_OK
