"""``margen-mirror score DEST --detector NAME [KEY=V ...]``: mirror a detector's verdicts on the mirror.

The verb knows no adapter's flags: each adapter declares its own (``mirror.detectors.options``)
and the registry adds them here. Tokens come from the environment only (``SYNTHETIQ_API_TOKEN``/
``SYNTHETIQ_URL``, ``DEEPFAKE_DETECTION_TOKEN``/``DEEPFAKE_DETECTION_URL``); no flag takes a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

from mirror.cli.args import positive_float, positive_int
from mirror.cli.verbs import Subparsers
from mirror.config import Retries, Timeouts
from mirror.detectors import registry
from mirror.detectors.options import DeepfakeDetectionOptions, DetectorOptions
from mirror.errors import EXIT_OK, UsageError
from mirror.jobs import parse_filter_words
from mirror.store.destination import check_local_dest

__all__ = ["register", "options_from_args", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("score", help="feed mirrored files to a detector and mirror its verdicts "
                                            "(resumable; never submits a file twice)")
    p.add_argument("dest", help="a folder mirrored by sync")
    p.add_argument("words", nargs="*", metavar="KEY=V1,V2", help="manifest filters, e.g. kind=fake skin_tone=dark")
    p.add_argument("--detector", required=True, metavar="NAME", help=registry.usage())
    p.add_argument("--concurrency", type=positive_int, default=8, metavar="N", help="files in flight (default 8)")
    p.add_argument("--rate-limit", type=positive_float, default=60.0, metavar="N",
                   help="detector requests per minute, polls included (default 60)")
    p.add_argument("--retries", type=positive_int, metavar="N", help="attempts per request (default 6)")
    p.add_argument("--timeout", type=positive_float, metavar="S", help="deadline of one request (default 30 s)")
    registry.add_arguments(p)             # each adapter's own flags (--pad, --url-mode, --pool...)
    p.add_argument("--import-history", action="store_true", help="deepfake-detection: instead of scoring, mirror "
                                                                 "every past detection of the account (List Detects) "
                                                                 "into DEST/detections/deepfake-detection/")
    ray = p.add_argument_group("scale out on Ray (pip install 'margen-mirror[ray]')")
    ray.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="score on Ray: alone, a local cluster on this machine (or $RAY_ADDRESS); with an "
                          "address (host:port, ray://host:port, auto), join that cluster")
    ray.add_argument("--workers", type=positive_int, metavar="N", help="--ray: detector actors (default 1)")
    ray.add_argument("--gpus-per-worker", type=float, metavar="G",
                     help="--ray: GPUs reserved per actor (default 0; 0.5 shares a GPU)")
    ray.add_argument("--batch-size", type=positive_int, metavar="N",
                     help="--ray: files per task, and per call of a batch detector (default 64)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON report on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="accepted for symmetry with sync; no progress bar")
    p.set_defaults(handler=run)
    return p


def options_from_args(args: argparse.Namespace) -> DetectorOptions:
    """The chosen detector's options from the flags given; each adapter keeps its own defaults."""
    return registry.options_from_args(args)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every verb builds this parser, and only `score` needs the
    # detector clients (aiohttp.web, the submission log); the other verbs never load them.
    from mirror.cli.output import emit, say
    from mirror.detectors.history import history_path, import_history
    from mirror.detectors.scoring import run_score

    check_local_dest(args.dest)
    retries = Retries() if args.retries is None else dataclasses.replace(Retries(), attempts=args.retries)
    timeouts = Timeouts() if args.timeout is None else dataclasses.replace(Timeouts(), api=args.timeout)
    if args.import_history:
        if args.detector != "deepfake-detection":
            raise UsageError("--import-history works with --detector deepfake-detection only")
        rows = asyncio.run(import_history(args.dest, options=DeepfakeDetectionOptions.from_args(args),
                                          rate_limit=args.rate_limit, timeouts=timeouts, retries=retries))
        emit({"rows": rows, "path": str(history_path(args.dest))}, as_json=args.json,
             lines=[f"{rows} detections mirrored into {history_path(args.dest)}"])
        return EXIT_OK
    filters = parse_filter_words(args.words)
    given = [f"--{name.replace('_', '-')}" for name in ("workers", "gpus_per_worker", "batch_size")
             if getattr(args, name) is not None]
    if given and args.ray is None:
        raise UsageError(f"{given[0]} works with --ray only: add --ray [ADDRESS] or drop it")
    if args.ray is not None:
        report = _score_on_ray(args, filters, timeouts, retries)
    else:
        report = asyncio.run(run_score(args.dest, args.detector, filters=filters, concurrency=args.concurrency,
                                       rate_limit=args.rate_limit, options=options_from_args(args),
                                       timeouts=timeouts, retries=retries))
    if args.json:
        emit(report.to_dict(), as_json=True)
    else:
        say(report.summary_line())
    return report.exit_code


def _score_on_ray(args: argparse.Namespace, filters: dict[str, tuple[str, ...]], timeouts: Timeouts,
                  retries: Retries) -> Any:
    """``score --ray``: Ray is imported only here; its own log goes to ``DEST/.state/ray.log``, not the terminal."""
    from mirror.cluster import require_ray
    require_ray()
    from mirror.cluster.score import run_score_ray
    from mirror.cluster.session import check_address, stderr_to
    from mirror.store import Layout

    address = check_address(args.ray) if args.ray else None
    state = Layout(Path(args.dest)).state
    with stderr_to(state / "ray.log" if state.is_dir() else Path(os.devnull)):
        return run_score_ray(args.dest, args.detector, filters=filters, address=address,
                             workers=1 if args.workers is None else args.workers,
                             gpus_per_worker=0.0 if args.gpus_per_worker is None else args.gpus_per_worker,
                             batch_size=64 if args.batch_size is None else args.batch_size,
                             concurrency=args.concurrency, rate_limit=args.rate_limit,
                             options=options_from_args(args), timeouts=timeouts, retries=retries)
