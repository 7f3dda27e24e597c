"""``margen-mirror``: verbs named for what the user wants, exit codes a cron job can branch on.

    0 complete · 1 internal error · 2 bad usage or input · 3 auth · 4 budget or 402
    5 partial (retryable failures; run again) · 6 destination locked · 130 interrupted

The API key is read from ``--api-key-file FILE``, else the file ``$MARGEN_API_KEY_FILE`` names, else
``$MARGEN_API_KEY``; there is deliberately no flag that takes the key itself, because command lines
end up in shell history and process lists (one that holds a key-shaped word is refused unprinted).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from mirror.cli.args import Parser, positive_float, positive_int, refuse_key_shaped, unrecognized
from mirror.cli.signals import sigterm_as_ctrl_c
from mirror.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, MirrorError

# Arrow's default allocator (mimalloc) keeps freed pages for reuse, so a long sync's peak stays
# resident; the C library's malloc hands them back (``release_unused``). Set before pyarrow is
# imported, the choice covers Arrow's C++ internals too, which ``pa.set_memory_pool`` does not
# reach (measured: 18 MB less resident in the middle of a 20k-item sync). A value the user set wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__all__ = ["main", "build_parser"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="API host (default: $MARGEN_BASE_URL or https://www.margensoftware.com)")
    p.add_argument("--api-key-file", metavar="FILE", help="read the key from FILE, a file only you can read "
                   "(default: $MARGEN_API_KEY_FILE, else the key in $MARGEN_API_KEY)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON result on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_selection(p: argparse.ArgumentParser, *, dest_required: bool) -> None:
    p.add_argument("words", nargs="*", metavar="JOB.toml | KEY=V1,V2",
                   help="a job file and/or filters (OR within a key, AND across keys), e.g. kind=fake")
    p.add_argument("--benchmark", help="benchmark id (optional when the key sees exactly one)")
    p.add_argument("--dest", required=False, help="destination folder" + (" (required)" if dest_required else ""))
    p.add_argument("--lineage", action="store_true", help="whole lineages of the matching items")
    p.add_argument("--distinct-identities", action="store_true", help="one representative item per person")
    p.add_argument("--include-metadata", action="store_true", help="store the full label object in the manifest")
    p.add_argument("--max-credits", type=int, metavar="N", help="never spend more than N credits in this run")


def _add_release_flags(p: argparse.ArgumentParser) -> None:
    """Bulk releases: which way a sync takes (see README, "Bulk releases")."""
    p.add_argument("--source", choices=("per-image", "release", "auto"), default="per-image",
                   help="per-image (default): image by image; release: buy and pull whole shard sets as a bulk "
                        "release; auto: the release when it covers the selection for no more credits")
    p.add_argument("--release", metavar="NAME", help="pin a release version (see: margen-mirror releases)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("margen-mirror")
    except PackageNotFoundError:      # run from a source tree that was never installed
        from mirror import __version__
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="margen-mirror", description="Mirror the Margen attack-data corpus to "
                    "local disk, keep it in sync, and stress-test detectors with it.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="exit codes: 0 complete, 1 internal, 2 usage, 3 auth, 4 budget/402, "
                           "5 partial (run again), 6 locked, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, text in (("benchmarks", "list the benchmarks the key can query"),
                       ("usage", "show the key's tier and credit balance")):
        _add_common(sub.add_parser(verb, help=text))
    p = sub.add_parser("catalog", help="show a benchmark's dimensions and allowed values")
    _add_common(p)
    p.add_argument("--benchmark")
    p = sub.add_parser("releases", help="list a benchmark's bulk releases (buys nothing)")
    _add_common(p)
    p.add_argument("--benchmark")
    p = sub.add_parser("plan", help="what a sync would cost, before spending anything")
    _add_common(p)
    _add_selection(p, dest_required=False)
    p.add_argument("--rate-limit", type=positive_float, metavar="N",
                   help="API requests per minute the sync would run at (default 60; set when the key is created)")
    _add_release_flags(p)
    p = sub.add_parser("sync", help="mirror a selection (resumable; never pays twice)")
    _add_common(p)
    _add_selection(p, dest_required=True)
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    _add_release_flags(p)
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
    for verb, text in (("status", "what a destination holds, per cell and perturbation"),
                       ("compact", "merge the manifest's parts into one file")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("dest")
        p.add_argument("--json", action="store_true")
    p = sub.add_parser("verify", help="re-hash every file against the manifest (and --repair for free)")
    _add_common(p)
    p.add_argument("dest")
    p.add_argument("--repair", action="store_true", help="re-fetch missing or damaged files (free: already owned)")
    p.add_argument("--rate-limit", type=positive_float, metavar="N", help="API requests per minute for the repair")
    from mirror.cli.report import add_report_parser
    from mirror.cli.score import add_score_parser
    add_score_parser(sub)
    add_report_parser(sub)
    p = sub.add_parser("demo", help="start the embedded emulator and mirror a sample into ./margen-demo")
    p.add_argument("--dest", default="margen-demo")
    p.add_argument("--items", type=int, default=1500,
                   help="corpus size of the embedded emulator (the default has reals and fakes in every "
                        "skin tone × gender cell)")
    p.add_argument("--detectors", action="store_true", help="go on through the whole loop: score with both detector "
                                                            "emulators and a local detector, then build the report")
    p.add_argument("-q", "--quiet", action="store_true")
    sub.add_parser("emulator", help="run the local Margen API emulator (see: margen-mirror emulator --help)",
                   add_help=False)
    sub.add_parser("detector-emulator", help="run a local detector service emulator: --service synthetiq | "
                                              "deepfake-detection (see its --help)", add_help=False)
    p = sub.add_parser("completion", help="print a shell completion script: "
                                          "margen-mirror completion bash > ~/.local/share/bash-completion/"
                                          "completions/margen-mirror")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    return parser


def _completion(parser: argparse.ArgumentParser, shell: str) -> int:
    """The completion script for ``shell``, generated by shtab from the parser itself (so it never
    falls behind a new flag); nothing of margen-mirror runs when the shell completes."""
    import shtab
    try:
        print(shtab.complete(parser, shell=shell))
    except BrokenPipeError:         # ``| head``: like every verb, no traceback
        return EXIT_USAGE
    return EXIT_OK


def _tune_gc() -> None:
    """Fewer and smaller garbage-collector passes for a process that allocates per request.

    What the imports created lives as long as the process: frozen, it is no longer scanned by every
    full collection. Most of a run's objects are freed by reference counting; the young generation
    is collected every 10,000 allocations instead of 700 (mypy uses 200,000, freqtrade 50,000).
    Measured on a 500-item sync: ~22 ms of collection down to ~3 ms. Only the CLI does this: a
    library call leaves the caller's process as it found it.

    ``main`` calls it before parsing and again after importing the verbs: imports leave a full
    collection due, and one that lands in the parser scans every object of pyarrow, aiohttp and
    numpy (30-50 ms, measured in 4 of 4 runs of a 500-item sync); frozen, they are not scanned.
    """
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


def _fix_mmap_threshold() -> None:
    """A fixed mmap threshold for the C library's malloc (glibc; elsewhere a no-op).

    glibc raises the threshold each time a large block is freed, so later large blocks (a release
    part read into memory, the images decoded from it) come from the heap and fragment it: a
    50,000-image release pull peaked at 166 MB of RSS, 135 MB with the threshold fixed at its initial
    128 KiB, and its peak then grew 10 MB, not 40, from 10,000 images. Only the CLI does this."""
    import ctypes
    try:
        ctypes.CDLL(None).mallopt(-3, 128 * 1024)        # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        refuse_key_shaped(args_list)
    except MirrorError as exc:
        print(f"margen-mirror: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args_list[:1] == ["emulator"]:
        from mirror.emulator import main as emulator_main
        return emulator_main(args_list[1:])
    if args_list[:1] == ["detector-emulator"]:
        from mirror.emulator.detectors import main as detector_main
        return detector_main(args_list[1:])
    _tune_gc()
    _fix_mmap_threshold()
    sigterm_as_ctrl_c()             # systemd, docker and timeout stop a run the way Ctrl-C does: exit 130
    parser = build_parser()
    args, extra = parser.parse_known_args(args_list)
    # KEY=V filters may follow flags too (argparse cannot intermix a "*" positional with options).
    if extra and hasattr(args, "words") and all("=" in w and not w.startswith("-") for w in extra):
        args.words = [*args.words, *extra]
    elif extra:
        parser.error(unrecognized(extra))
    if args.verb == "completion":
        return _completion(parser, args.shell)
    from mirror.cli import verbs
    _tune_gc()                      # again: what importing the verbs added
    try:
        return verbs.run(args)
    except MirrorError as exc:
        print(f"margen-mirror: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("margen-mirror: interrupted; finished work is saved: run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_USAGE
    except Exception as exc:          # a bug: one line, never a traceback with secrets in its frames
        print(f"margen-mirror: internal error ({type(exc).__name__}); please report it with the command "
              "you ran", file=sys.stderr)
        return EXIT_INTERNAL
