"""``margen-mirror emulator``: the local Margen API emulator, with the emulator's own flags and help
(``mirror.emulator.server.add_arguments``)."""

from __future__ import annotations

import argparse

from mirror.cli.verbs import Subparsers, server_verb

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    return server_verb(subparsers, "emulator", "run the local Margen API emulator (see: margen-mirror emulator --help)",
                       "mirror.emulator.server")
