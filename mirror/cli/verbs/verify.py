"""``margen-mirror verify DEST [--repair]``: re-hash every file against the manifest; repair for free."""

from __future__ import annotations

import argparse
import asyncio
import shlex

from mirror.cli.args import positive_float
from mirror.cli.verbs import Subparsers, api_verb

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = api_verb(subparsers, "verify", "re-hash every file against the manifest (and --repair for free)", run)
    p.add_argument("dest")
    p.add_argument("--repair", action="store_true", help="re-fetch missing or damaged files (free: already owned)")
    p.add_argument("--rate-limit", type=positive_float, metavar="N", help="API requests per minute for the repair")
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.args import mirrored_dest
    from mirror.cli.output import emit
    from mirror.config import Limits, load_api_key, resolve_base_url
    from mirror.errors import EXIT_OK, EXIT_PARTIAL
    from mirror.inspect.verify import verify_files
    from mirror.store.destination import url_scheme

    dest = mirrored_dest(args.dest)
    if url_scheme(dest):
        from mirror.inspect.verify_remote import verify_objects
        report = asyncio.run(verify_objects(dest))
    else:
        report = verify_files(dest)
    if args.repair and report.bad:
        from mirror.engine.sync import run_repair

        limits = Limits() if args.rate_limit is None else Limits(rate_limit=args.rate_limit)
        repair = asyncio.run(run_repair(dest, report.targets, limits=limits,
                                        api_key=load_api_key(args.api_key_file),
                                        base_url=resolve_base_url(args.base_url)))
        report.repaired = repair.repaired
        report.not_owned = len(repair.not_owned)
    line = report.line()
    if report.bad and not args.repair:
        line += (f"; run margen-mirror verify {shlex.quote(args.dest)} --repair to fetch them again "
                 "(free for what this account owns; it never buys)")
    emit(report.to_dict(), as_json=args.json, lines=[line])
    unrepaired = len(report.bad) - report.repaired
    return EXIT_OK if unrepaired <= 0 else EXIT_PARTIAL
