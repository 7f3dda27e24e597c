"""One function per verb: turn parsed flags into library calls and print the result."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shlex
from pathlib import Path
from typing import Any

from mirror.api.client import MargenClient
from mirror.cli.output import Progress, configure_logging, emit, say, stats_interval
from mirror.cli.signals import stopped_by_signals
from mirror.config import Limits, Retries, Timeouts, load_api_key, resolve_base_url
from mirror.engine.status import read_status
from mirror.engine.sync import run_plan, run_repair, run_sync
from mirror.engine.verify import verify_files
from mirror.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from mirror.jobs import Selection, SyncJob, load_job_file, parse_filter_words
from mirror.ratelimit import RateLimiter
from mirror.store import Layout, compact
from mirror.store.destination import local_dest, sync_dest, url_scheme
from mirror.store.objectstore import remote_mirror
from mirror.store.remote import RemoteDest

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    handler = {"benchmarks": _benchmarks, "usage": _usage, "catalog": _catalog, "plan": _plan, "sync": _sync,
               "status": _status, "compact": _compact, "verify": _verify, "demo": _demo,
               "score": _score, "report": _report}[args.verb]
    return handler(args)


def _score(args: argparse.Namespace) -> int:
    from mirror.cli.score import run_score_verb  # the detector clients load only for this verb
    return run_score_verb(args)


def _report(args: argparse.Namespace) -> int:
    from mirror.cli.report import run_report_verb
    return run_report_verb(args)


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


async def _with_client(args: argparse.Namespace, fn: Any) -> Any:
    client = MargenClient(load_api_key(args.api_key_file), resolve_base_url(args.base_url),
                          limiter=RateLimiter(60), timeouts=Timeouts(), retries=Retries())
    async with client:
        return await fn(client)


def _benchmarks(args: argparse.Namespace) -> int:
    found = asyncio.run(_with_client(args, lambda c: c.benchmarks()))
    emit([dataclasses.asdict(b) for b in found], as_json=args.json,
         lines=[f"{b.id:<28} {b.product:<10} {b.title}" for b in found])
    return EXIT_OK


def _usage(args: argparse.Namespace) -> int:
    usage = asyncio.run(_with_client(args, lambda c: c.usage()))
    emit(dataclasses.asdict(usage), as_json=args.json,
         lines=[f"tier {usage.tier}, balance {usage.balance}, owner {usage.owner or '-'}"])
    return EXIT_OK


def _catalog(args: argparse.Namespace) -> int:
    catalog = asyncio.run(_with_client(args, lambda c: c.catalog(args.benchmark)))
    lines = [f"{catalog.benchmark.id} ({catalog.tier} tier): {catalog.total} items"]
    for dim in catalog.dimensions:
        alias = f" (alias {dim.alias})" if dim.alias else ""
        values = ", ".join(dim.values) if dim.values is not None else "any id (lineage key)"
        lines.append(f"  {dim.key}{alias} [{dim.source}]: {values}")
    emit(dataclasses.asdict(catalog), as_json=args.json, lines=lines)
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    job = job_from_args(args, need_dest=False)
    report = asyncio.run(run_plan(job, api_key=load_api_key(args.api_key_file),
                                  base_url=resolve_base_url(args.base_url)))
    emit(report.to_dict(), as_json=args.json, lines=report.lines())
    return EXIT_OK


def _sync(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _plan(args)
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
        report = asyncio.run(stopped_by_signals(lambda stop: run_sync(
            job, api_key=key, base_url=base_url, progress=progress.advance, on_total=progress.set_total,
            retries=retries, timeouts=timeouts, stop=stop)))
    finally:
        progress.close()
    if args.json:
        emit(report.to_dict(), as_json=True)
    else:
        say(report.summary_line())
    return report.exit_code


def _mirrored_dest(dest: str) -> Path:
    """DEST of a verb that reads a mirror (status, verify, compact): a typo must not read as "all ok"."""
    path = local_dest(dest)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise UsageError(f"{dest} {what}: nothing is mirrored there; check the path (sync creates a destination)")
    return path


def _status(args: argparse.Namespace) -> int:
    report = read_status(remote_mirror(args.dest) if url_scheme(args.dest) else _mirrored_dest(args.dest))
    emit(report.to_dict(), as_json=args.json, lines=report.lines())
    return EXIT_OK


def _compact(args: argparse.Namespace) -> int:
    if url_scheme(args.dest):
        rows = RemoteDest.open(remote_mirror(args.dest)).compact()
    else:
        rows = compact(Layout(_mirrored_dest(args.dest)))
    emit({"dest": args.dest, "rows": rows}, as_json=args.json, lines=[f"{args.dest}: manifest compacted, {rows} rows"])
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    if url_scheme(args.dest):
        from mirror.engine.verify_remote import verify_objects
        dest = Path(remote_mirror(args.dest))
        report = asyncio.run(verify_objects(dest))
    else:
        dest = _mirrored_dest(args.dest)
        report = verify_files(dest)
    if args.repair and report.bad:
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


def _demo(args: argparse.Namespace) -> int:
    from mirror.cli.demo import run_demo
    return run_demo(Path(args.dest), items=args.items, quiet=args.quiet, detectors=args.detectors)
