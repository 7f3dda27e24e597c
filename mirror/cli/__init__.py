"""``margen-mirror``: verbs named for what the user wants, exit codes a cron job can branch on.

    0 complete · 1 internal error · 2 bad usage or input · 3 auth · 4 budget or 402
    5 partial (retryable failures; run again) · 6 destination locked · 130 interrupted

Each verb is one module of ``mirror.cli.verbs`` that registers its own parser and handler; ``main``
refuses a key-shaped argument, parses, and calls the handler.

The API key is read from ``--api-key-file FILE``, else the file ``$MARGEN_API_KEY_FILE`` names, else
``$MARGEN_API_KEY``; there is deliberately no flag that takes the key itself, because command lines
end up in shell history and process lists (one that holds a key-shaped word is refused unprinted).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mirror.cli.args import Parser, refuse_key_shaped, unrecognized
from mirror.cli.signals import sigterm_as_ctrl_c
from mirror.cli.tuning import fix_mmap_threshold, tune_gc, use_system_allocator
from mirror.cli.verbs import (
    benchmarks,
    catalog,
    compact,
    completion,
    demo,
    detector_emulator,
    emulator,
    plan,
    releases,
    report,
    score,
    status,
    sync,
    usage,
    verify,
)
from mirror.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, MirrorError

use_system_allocator()            # before pyarrow is imported (see cli.tuning)

__all__ = ["main", "build_parser"]

# In the order ``--help`` lists them.
VERBS = (benchmarks, usage, catalog, plan, sync, releases, status, compact, verify, score, report, demo, emulator,
         detector_emulator, completion)


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
    for verb in VERBS:
        verb.register(sub)
    parser.set_defaults(root=parser)      # for ``completion``, which completes the whole tree
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        refuse_key_shaped(args_list)
    except MirrorError as exc:
        print(f"margen-mirror: error: {exc}", file=sys.stderr)
        return exc.exit_code
    tune_gc()
    fix_mmap_threshold()
    sigterm_as_ctrl_c()             # systemd, docker and timeout stop a run the way Ctrl-C does: exit 130
    parser = build_parser()
    args, extra = parser.parse_known_args(args_list)
    # KEY=V filters may follow flags too (argparse cannot intermix a "*" positional with options).
    if extra and hasattr(args, "words") and all("=" in w and not w.startswith("-") for w in extra):
        args.words = [*args.words, *extra]
    elif extra:
        parser.error(unrecognized(extra))
    try:
        return args.handler(args)
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
