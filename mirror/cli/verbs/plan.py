"""``margen-mirror plan``: what a sync would cost, before spending anything (``sync --dry-run`` too)."""

from __future__ import annotations

import argparse
import asyncio

from mirror.cli.args import add_selection, positive_float
from mirror.cli.verbs import Subparsers, api_verb
from mirror.cli.verbs.releases import add_release_flags

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = api_verb(subparsers, "plan", "what a sync would cost, before spending anything", run)
    add_selection(p, dest_required=False)
    p.add_argument("--rate-limit", type=positive_float, metavar="N",
                   help="API requests per minute the sync would run at (default 60; set when the key is created)")
    add_release_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.output import emit
    from mirror.cli.selection import job_from_args
    from mirror.config import load_api_key, resolve_base_url
    from mirror.engine import sync
    from mirror.errors import EXIT_OK

    job = job_from_args(args, need_dest=False)
    report = asyncio.run(sync.run_plan(job, api_key=load_api_key(args.api_key_file),
                                       base_url=resolve_base_url(args.base_url), source=args.source,
                                       release=args.release))
    emit(report.to_dict(), as_json=args.json, lines=report.lines())
    return EXIT_OK
