"""``margen-mirror catalog``: a benchmark's dimensions and their allowed values."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from mirror.cli.verbs import Subparsers, api_verb, ask_and_show

if TYPE_CHECKING:
    from mirror.api.models import Catalog

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = api_verb(subparsers, "catalog", "show a benchmark's dimensions and allowed values", run)
    p.add_argument("--benchmark")
    return p


def run(args: argparse.Namespace) -> int:
    return ask_and_show(args, lambda c: c.catalog(args.benchmark), _show)


def _show(catalog: Catalog) -> tuple[dict[str, Any], list[str]]:
    lines = [f"{catalog.benchmark.id} ({catalog.tier} tier): {catalog.total} items"]
    for dim in catalog.dimensions:
        alias = f" (alias {dim.alias})" if dim.alias else ""
        values = ", ".join(dim.values) if dim.values is not None else "any id (lineage key)"
        lines.append(f"  {dim.key}{alias} [{dim.source}]: {values}")
    return dataclasses.asdict(catalog), lines
