"""``margen-mirror detector-emulator --service NAME``: a local detector service emulator.

The parser is the emulator's (``mirror.emulator.detectors.server.add_arguments``), filled in only
when this verb parses or prints help, so no other verb pays for importing the emulator.
"""

from __future__ import annotations

import argparse

from mirror.cli.verbs import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "detector-emulator", help="run a local detector service emulator: --service synthetiq | "
                                  "deepfake-detection (see its --help)", fill=_fill)
    p.set_defaults(handler=lambda args: _run(p, args))
    return p


def _fill(p: argparse.ArgumentParser) -> None:
    from mirror.emulator.detectors.server import add_arguments
    add_arguments(p)


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from mirror.emulator.detectors.server import config_from_args, serve_config
    return serve_config(config_from_args(args, p))
