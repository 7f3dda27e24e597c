"""``margen-mirror catalog``: a benchmark's dimensions and their allowed values."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from mirror.cli.args import add_common
from mirror.cli.verbs import Subparsers, with_client

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("catalog", help="show a benchmark's dimensions and allowed values")
    add_common(p)
    p.add_argument("--benchmark")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.output import emit
    from mirror.errors import EXIT_OK

    catalog = asyncio.run(with_client(args, lambda c: c.catalog(args.benchmark)))
    lines = [f"{catalog.benchmark.id} ({catalog.tier} tier): {catalog.total} items"]
    for dim in catalog.dimensions:
        alias = f" (alias {dim.alias})" if dim.alias else ""
        values = ", ".join(dim.values) if dim.values is not None else "any id (lineage key)"
        lines.append(f"  {dim.key}{alias} [{dim.source}]: {values}")
    emit(dataclasses.asdict(catalog), as_json=args.json, lines=lines)
    return EXIT_OK
