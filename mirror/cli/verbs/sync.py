"""``margen-mirror sync``: mirror a selection (resumable; never pays twice)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from mirror.cli.args import add_selection, positive_float, positive_int
from mirror.cli.verbs import Subparsers, api_verb, plan
from mirror.cli.verbs.releases import add_release_flags

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = api_verb(subparsers, "sync", "mirror a selection (resumable; never pays twice)", run)
    add_selection(p, dest_required=True)
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    add_release_flags(p)
    p.add_argument("--rate-limit", type=positive_float, metavar="N",
                   help="API requests per minute for this key (default 60)")
    p.add_argument("--concurrency", type=positive_int, metavar="N", help="items in flight at once (default 128)")
    p.add_argument("--timeout", type=positive_float, metavar="S", help="total deadline of one request in seconds "
                                                                        "(default 30 for the API, 60 for storage)")
    p.add_argument("--retries", type=positive_int, metavar="N", help="attempts per request before an item counts "
                                                                     "as failed (default 6)")
    p.add_argument("--stats", metavar="DURATION", help="a status line every DURATION, e.g. 30s, 5m (0: none; "
                                                       "default 1m when stderr is not a terminal, none with -q)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every item's events to stderr (never the key)")
    p.add_argument("--log-file", metavar="FILE", help="append every item's events to FILE (never the key)")
    return p


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return plan.run(args)
    from mirror.cli.output import Progress, configure_logging, emit, say, stats_interval
    from mirror.cli.selection import job_from_args
    from mirror.cli.signals import stopped_by_signals
    from mirror.cli.tuning import tune_gc
    from mirror.config import Retries, Timeouts, load_api_key, resolve_base_url
    from mirror.engine import sync

    tune_gc()                       # again: what importing the engine added (see tune_gc)
    job = job_from_args(args, need_dest=True)
    key = load_api_key(args.api_key_file)
    stats = stats_interval(args.stats, quiet=args.quiet or args.json)
    retries = Retries() if args.retries is None else dataclasses.replace(Retries(), attempts=args.retries)
    timeouts = Timeouts() if args.timeout is None else Timeouts(api=args.timeout, storage=args.timeout,
                                                                 connect=min(args.timeout, Timeouts.connect))
    base_url = resolve_base_url(args.base_url)
    configure_logging(verbose=args.verbose, log_file=args.log_file)
    progress = Progress(enabled=not (args.quiet or args.json or args.verbose), stats=stats)
    try:               # SIGINT and SIGTERM stop it the same way: it flushes and reports (exit 130)
        report = asyncio.run(stopped_by_signals(lambda stop: sync.run_sync(
            job, api_key=key, base_url=base_url, progress=progress.advance, on_total=progress.set_total,
            retries=retries, timeouts=timeouts, stop=stop, source=args.source, release=args.release)))
    finally:
        progress.close()
    if args.json:
        emit(report.to_dict(), as_json=True)
    else:
        say(report.summary_line())
    return report.exit_code
