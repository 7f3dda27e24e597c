"""What ``plan`` and ``sync`` select: a job file, KEY=V words and flags (``args.add_selection``), merged
into one ``SyncJob``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mirror.config import Limits
from mirror.errors import UsageError
from mirror.jobs import Selection, SyncJob, load_job_file, parse_filter_words
from mirror.store.destination import sync_dest

__all__ = ["job_from_args"]


def job_from_args(args: argparse.Namespace, *, need_dest: bool) -> SyncJob:
    """Merge a job file (if any) with flags and KEY=V words; flags and words win over the file."""
    files = [w for w in args.words if w.endswith(".toml") and "=" not in w]
    if len(files) > 1:
        raise UsageError("give at most one job file")
    job = load_job_file(files[0]) if files else None
    words = parse_filter_words(w for w in args.words if w not in files)
    base = job.selection if job else Selection()
    selection = Selection(benchmark=args.benchmark or base.benchmark, filters={**base.filters, **words},
                          lineage=args.lineage or base.lineage,
                          distinct_identities=args.distinct_identities or base.distinct_identities,
                          include_metadata=args.include_metadata or base.include_metadata)
    dest = sync_dest(args.dest) if args.dest else (job.dest if job else None)
    if dest is None:
        if need_dest:
            raise UsageError("sync needs --dest FOLDER (or a job file with dest = \"FOLDER\")")
        dest = Path(".")
    limits = job.limits if job else Limits()
    rate = getattr(args, "rate_limit", None)
    concurrency = getattr(args, "concurrency", None)
    limits = dataclasses.replace(limits, rate_limit=limits.rate_limit if rate is None else rate,
                                 concurrency=limits.concurrency if concurrency is None else concurrency)
    max_credits = args.max_credits if args.max_credits is not None else (job.max_credits if job else None)
    return SyncJob(selection=selection, dest=dest, max_credits=max_credits, limits=limits)
