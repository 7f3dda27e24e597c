"""``margen-mirror score DEST --detector NAME [KEY=V ...]``: mirror a detector's verdicts on the mirror.

Tokens come from the environment only (``SYNTHETIQ_API_TOKEN``/``SYNTHETIQ_URL``,
``DEEPFAKE_DETECTION_TOKEN``/``DEEPFAKE_DETECTION_URL``); no flag takes a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from mirror.cli.output import emit, say
from mirror.config import Retries, Timeouts
from mirror.errors import EXIT_OK, UsageError
from mirror.jobs import parse_filter_words

__all__ = ["add_score_parser", "run_score_verb"]

_DFD_FLAGS = {  # flag -> (request option, help)
    "--zero-retention": ("zero_retention_mode", "ask the service to delete the media after analysis"),
    "--visualize": ("visualize", "ask for heatmaps / visualizations"),
    "--use-ood-detector": ("use_ood_detector", "enable the out-of-distribution detector"),
    "--intelligence": ("intelligence", "ask for the intelligence description"),
    "--use-reverse-search": ("use_reverse_search", "reverse image search (images only)"),
    "--audio-source-tracing": ("audio_source_tracing", "audio source tracing (audio/video)"),
}
_DFD_NUMBERS = {"--frame-length": ("frame_length", int), "--start-region": ("start_region", float),
                "--end-region": ("end_region", float), "--max-video-fps": ("max_video_fps", float),
                "--max-video-secs": ("max_video_secs", float)}


def add_score_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("score", help="feed mirrored files to a detector and mirror its verdicts "
                                            "(resumable; never submits a file twice)")
    p.add_argument("dest", help="a folder mirrored by sync")
    p.add_argument("words", nargs="*", metavar="KEY=V1,V2", help="manifest filters, e.g. kind=fake skin_tone=dark")
    p.add_argument("--detector", required=True, metavar="NAME",
                   help="synthetiq | deepfake-detection | python:package.module:function")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="files in flight (default 8)")
    p.add_argument("--rate-limit", type=float, default=60.0, metavar="N",
                   help="detector requests per minute, polls included (default 60)")
    p.add_argument("--retries", type=int, metavar="N", help="attempts per request (default 6)")
    p.add_argument("--timeout", type=float, metavar="S", help="deadline of one request (default 30 s)")
    p.add_argument("--deadline", type=float, metavar="S", help="give up waiting for one verdict after S s "
                                                               "(default 600; the next run keeps polling)")
    p.add_argument("--poll-interval", type=float, metavar="S", help="seconds between progress polls (default 1)")
    p.add_argument("--pad", action="store_true", help="synthetiq: centre images below 360x270 on a neutral grey "
                                                      "border instead of rejecting them (scores stay keyed by the "
                                                      "original file)")
    p.add_argument("--processed-movie", action="store_true", help="synthetiq: also fetch the fake-detected video, "
                                                                  "saved beside its source")
    for flag, (_, text) in _DFD_FLAGS.items():
        p.add_argument(flag, action="store_true", help=f"deepfake-detection: {text}")
    for flag, (_, kind) in _DFD_NUMBERS.items():
        p.add_argument(flag, type=kind, metavar="N", help="deepfake-detection request option")
    p.add_argument("--url-mode", action="store_true", help="deepfake-detection: send a fresh Margen signed URL "
                                                           "instead of the file (needs MARGEN_API_KEY; free for "
                                                           "items the account owns)")
    p.add_argument("--base-url", help="Margen API host for --url-mode (default: $MARGEN_BASE_URL)")
    p.add_argument("--api-key-file", metavar="FILE", help="Margen key file for --url-mode")
    p.add_argument("--callback", action="store_true", help="deepfake-detection: receive verdicts on a local "
                                                           "callback listener (polling stays the fallback)")
    p.add_argument("--callback-port", type=int, default=0, metavar="P", help="listener port (default: any)")
    p.add_argument("--callback-public-url", metavar="URL", help="the listener's address as the service sees it")
    p.add_argument("--import-history", action="store_true", help="deepfake-detection: instead of scoring, mirror "
                                                                 "every past detection of the account (List Detects) "
                                                                 "into DEST/detections/deepfake-detection/")
    p.add_argument("--pool", choices=("thread", "process"), default="thread", help="local detector: worker pool")
    p.add_argument("--input", choices=("path", "bytes"), help="local detector: what the function receives "
                                                              "(default: from its annotation, else a path)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON report on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="accepted for symmetry with sync; no progress bar")
    return p


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Adapter options from flags; only what was given, so each adapter keeps its own defaults."""
    options: dict[str, Any] = {"pad": args.pad, "processed_movie": args.processed_movie, "pool": args.pool,
                               "url_mode": args.url_mode, "callback": args.callback,
                               "callback_port": args.callback_port}
    for name, value in (("input", args.input), ("deadline", args.deadline), ("poll_interval", args.poll_interval),
                        ("callback_public_url", args.callback_public_url), ("margen_base_url", args.base_url),
                        ("margen_api_key_file", args.api_key_file)):
        if value is not None:
            options[name] = value
    for flag, (name, _) in _DFD_FLAGS.items():
        if getattr(args, flag[2:].replace("-", "_")):
            options[name] = True
    for flag, (name, _) in _DFD_NUMBERS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            options[name] = value
    return options


def run_score_verb(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every verb builds this parser, and only `score` needs the
    # detector clients (aiohttp.web, the detectors' ledger): ~50 ms and several MB for the others.
    from mirror.detectors.history import history_path, import_history
    from mirror.detectors.score import run_score

    retries = Retries() if args.retries is None else dataclasses.replace(Retries(), attempts=args.retries)
    timeouts = Timeouts() if args.timeout is None else dataclasses.replace(Timeouts(), api=args.timeout)
    if args.import_history:
        if args.detector != "deepfake-detection":
            raise UsageError("--import-history works with --detector deepfake-detection only")
        rows = asyncio.run(import_history(args.dest, rate_limit=args.rate_limit, timeouts=timeouts,
                                          retries=retries))
        emit({"rows": rows, "path": str(history_path(args.dest))}, as_json=args.json,
             lines=[f"{rows} detections mirrored into {history_path(args.dest)}"])
        return EXIT_OK
    filters = parse_filter_words(args.words)
    report = asyncio.run(run_score(args.dest, args.detector, filters=filters, concurrency=args.concurrency,
                                   rate_limit=args.rate_limit, options=options_from_args(args),
                                   timeouts=timeouts, retries=retries))
    if args.json:
        emit(report.to_dict(), as_json=True)
    else:
        say(report.summary_line())
    return report.exit_code
