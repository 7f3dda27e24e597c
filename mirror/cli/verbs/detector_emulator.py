"""``margen-mirror detector-emulator --service NAME``: a local detector service emulator, with its own
flags and help (``mirror.emulator.detectors.server.add_arguments``)."""

from __future__ import annotations

import argparse

from mirror.cli.verbs import Subparsers, server_verb

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    return server_verb(subparsers, "detector-emulator", "run a local detector service emulator: --service synthetiq | "
                                                        "deepfake-detection (see its --help)",
                       "mirror.emulator.detectors.server")
