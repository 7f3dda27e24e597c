"""``margen-mirror status DEST``: what a destination holds, per cell and perturbation."""

from __future__ import annotations

import argparse

from mirror.cli.verbs import Subparsers

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("status", help="what a destination holds, per cell and perturbation")
    p.add_argument("dest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mirror.cli.args import mirrored_dest
    from mirror.cli.output import emit
    from mirror.errors import EXIT_OK
    from mirror.inspect.status import read_status

    report = read_status(mirrored_dest(args.dest))
    emit(report.to_dict(), as_json=args.json, lines=report.lines())
    return EXIT_OK
