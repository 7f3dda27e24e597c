"""``margen-mirror releases``: a benchmark's bulk release versions (buys nothing), and the flags that
make ``plan`` and ``sync`` take a release (``--source``, ``--release``; see README, "Bulk releases")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mirror.cli.verbs import Subparsers, api_verb, ask_and_show

if TYPE_CHECKING:
    from mirror.api.client import MargenClient
    from mirror.api.models import Release

__all__ = ["add_release_flags", "register", "run"]


def add_release_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=("per-image", "release", "auto"), default="per-image",
                   help="per-image (default): image by image; release: buy and pull whole shard sets as a bulk "
                        "release; auto: the release when it covers the selection for no more credits")
    p.add_argument("--release", metavar="NAME", help="pin a release version (see: margen-mirror releases)")


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = api_verb(subparsers, "releases", "list a benchmark's bulk releases (buys nothing)", run)
    p.add_argument("--benchmark")
    return p


def run(args: argparse.Namespace) -> int:
    return ask_and_show(args, lambda client: _ask(client, args.benchmark), _show)


async def _ask(client: MargenClient, benchmark: str | None) -> tuple[str, Release | None]:
    from mirror.engine.release_plan import list_releases

    catalog = await client.catalog(benchmark)          # resolves an omitted benchmark, checks the key
    return catalog.benchmark.id, await list_releases(client, catalog.benchmark.id)


def _show(found: tuple[str, Release | None]) -> tuple[dict[str, Any], list[str]]:
    benchmark, listing = found
    if listing is None:
        return ({"benchmark": benchmark, "releases": None},
                [f"{benchmark}: the server does not list its releases without a purchase"])
    lines = [f"{name}{'  (newest, the default)' if name == listing.name else ''}" for name in listing.available]
    lines.append(f"coverage for this key: {listing.coverage}"
                 + ("" if listing.coverage == "full" else " (no whole shard sets: use --source per-image)"))
    return ({"benchmark": benchmark, "newest": listing.name, "releases": list(listing.available),
             "coverage": listing.coverage}, lines)
