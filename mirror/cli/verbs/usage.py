"""``margen-mirror usage``: the key's tier and credit balance."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from mirror.cli.args import add_common
from mirror.cli.verbs import Subparsers, with_client

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("usage", help="show the key's tier and credit balance")
    add_common(p)
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.output import emit
    from mirror.errors import EXIT_OK

    usage = asyncio.run(with_client(args, lambda c: c.usage()))
    emit(dataclasses.asdict(usage), as_json=args.json,
         lines=[f"tier {usage.tier}, balance {usage.balance}, owner {usage.owner or '-'}"])
    return EXIT_OK
