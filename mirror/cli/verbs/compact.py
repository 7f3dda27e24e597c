"""``margen-mirror compact DEST``: merge the manifest's parts into one file."""

from __future__ import annotations

import argparse

from mirror.cli.verbs import Subparsers

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compact", help="merge the manifest's parts into one file")
    p.add_argument("dest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.args import mirrored_dest
    from mirror.cli.output import emit
    from mirror.errors import EXIT_OK
    from mirror.store import Layout, compact

    layout = Layout(mirrored_dest(args.dest))
    rows = compact(layout)
    emit({"dest": args.dest, "rows": rows}, as_json=args.json, lines=[f"{args.dest}: manifest compacted, {rows} rows"])
    return EXIT_OK
