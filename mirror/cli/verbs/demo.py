"""``margen-mirror demo``: the whole product in one command, on the embedded emulators.

Starts the local Margen emulator on a free loopback port, mirrors its corpus into ``./margen-demo``
with the emulator's ready-made live key, runs the same sync again to show that a complete mirror
costs two API calls and no credit, and prints what to look at next. With ``--detectors`` it goes
on through the whole loop: the two detector-service emulators and the reference local detector
score every file, and a report shows where each detector collapses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from mirror.cli.verbs import Subparsers

__all__ = ["register", "run", "run_demo"]

_DEMO_KEY = "mgn_live_demo"      # a key the emulator creates for itself; it opens nothing real
REFERENCE_DETECTOR = "python:mirror.detectors.reference:spectral_peakiness"


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="start the embedded emulator and mirror a sample into ./margen-demo")
    p.add_argument("--dest", default="margen-demo")
    p.add_argument("--items", type=int, default=1500,
                   help="corpus size of the embedded emulator (the default has reals and fakes in every "
                        "skin tone × gender cell)")
    p.add_argument("--detectors", action="store_true", help="go on through the whole loop: score with both detector "
                                                            "emulators and a local detector, then build the report")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    return run_demo(Path(args.dest), items=args.items, quiet=args.quiet, detectors=args.detectors)


def run_demo(dest: Path, *, items: int, quiet: bool, detectors: bool = False) -> int:
    from mirror.cli.output import Progress, say
    from mirror.config import ApiKey, Limits
    from mirror.emulator import EmulatorConfig, start_emulator_thread
    from mirror.engine.sync import run_sync
    from mirror.inspect.status import read_status
    from mirror.jobs import Selection, SyncJob

    with tempfile.TemporaryDirectory(prefix="margen-emulator-") as data_dir, \
            start_emulator_thread(EmulatorConfig(items=items, data_dir=Path(data_dir))) as emulator:
        say(f"emulator listening on {emulator.url} ({items} items, key {_DEMO_KEY})")
        job = SyncJob(selection=Selection(benchmark="synthetic-face-v1", include_metadata=True), dest=dest,
                      limits=Limits(rate_limit=6000, concurrency=32))
        progress = Progress(enabled=not quiet)
        try:
            first = asyncio.run(run_sync(job, api_key=ApiKey(_DEMO_KEY), base_url=emulator.url,
                                         progress=progress.advance, on_total=progress.set_total))
        finally:
            progress.close()
        say(first.summary_line())
        again = asyncio.run(run_sync(job, api_key=ApiKey(_DEMO_KEY), base_url=emulator.url))
        say(again.summary_line())
        scored = _score_and_report(dest) if detectors else 0
    for line in read_status(dest).lines()[:12]:
        print(line)
    print(f"""
Look at:
  {dest}/images/synthetic-face-v1/    one folder per lineage (a real source and everything derived from it)
  {dest}/manifest/                    the Parquet manifest, one row per image
  {sys.executable} -c "import mirror; print(mirror.open_manifest('{dest}').to_table().slice(0, 5))"
  margen-mirror status {dest}         counts per cell and perturbation
  margen-mirror verify {dest}         re-hash every file against the manifest""")
    if detectors:
        print(f"  {dest}/reports/demo/report.html  where each detector collapses (open it in a browser)")
    return max(first.exit_code, again.exit_code, scored)


def _score_and_report(dest: Path) -> int:
    """Score the mirror with both detector-service emulators and the reference detector; build the report."""
    from mirror.cli.output import say
    from mirror.detectors import DeepfakeDetectionOptions, DetectorOptions, SynthetiqOptions, Token, run_score
    from mirror.emulator.detectors import DetectorEmulatorConfig, start_detector_thread
    from mirror.evaluation import build_report

    worst = 0
    with start_detector_thread(DetectorEmulatorConfig(service="synthetiq", processing_seconds=0.05)) as stq, \
            start_detector_thread(DetectorEmulatorConfig(service="deepfake-detection",
                                                         processing_seconds=0.05)) as dfd:
        # The emulators' URLs and tokens go straight into each adapter's options, never into the
        # environment. SYNTHETIQ refuses images under 360x270 px: the corpus's 256 px faces are
        # padded (--pad). The emulators answer in ~50 ms; a real service wants the default poll.
        synthetiq = SynthetiqOptions(url=stq.url, token=Token(stq.token), pad=True, poll_interval=0.05)
        dfd_options = DeepfakeDetectionOptions(url=dfd.url, token=Token(dfd.token), poll_interval=0.05)
        runs: list[tuple[str, DetectorOptions | None]] = [
            ("synthetiq", synthetiq), ("deepfake-detection", dfd_options), (REFERENCE_DETECTOR, None)]
        for name, options in runs:
            report = asyncio.run(run_score(dest, name, concurrency=32, rate_limit=60_000, options=options))
            say(report.summary_line())
            worst = max(worst, report.exit_code)
    folder = build_report(dest, name="demo")
    say(f"report: {folder / 'report.html'}")
    return worst
