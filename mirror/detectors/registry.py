"""Detector adapters by name: which options class each takes, which flags it adds, how it opens.

The registry imports the adapters, never the other way round: an adapter module imports only
``base``, ``options`` and ``http``, so there is no import circle (``tests/test_import_graph.py``).
It imports each adapter's heavy half (aiohttp, PIL) only when that detector is opened, so building
the CLI's flags from it costs nothing. Another adapter joins with ``register(Adapter(...))``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mirror.detectors.base import Detector
from mirror.detectors.options import (
    DeepfakeDetectionOptions,
    DetectorOptions,
    LocalOptions,
    Pacing,
    SynthetiqOptions,
)
from mirror.errors import UsageError

__all__ = ["Adapter", "register", "adapter_for", "resolve_options", "load_detector", "add_arguments",
           "options_from_args", "usage"]


@dataclass(frozen=True)
class Adapter:
    """One kind of detector. A ``name`` ending in ``:`` is a family: ``python:`` matches ``python:pkg.mod:fn``."""

    name: str
    options: type[DetectorOptions]
    open: Callable[[str, Any, Pacing], Detector]    # (detector name, its options, the run's pacing)
    usage: str = ""                                 # how a user writes the name, for help and errors

    def matches(self, name: str) -> bool:
        return name == self.name or (self.name.endswith(":") and name.startswith(self.name))


_ADAPTERS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> None:
    """Make ``adapter`` available to ``load_detector`` and the ``score`` verb under its name."""
    _ADAPTERS[adapter.name] = adapter


def usage() -> str:
    """Every detector name a user can write: ``synthetiq | deepfake-detection | python:...``."""
    return " | ".join(a.usage or a.name for a in _ADAPTERS.values())


def adapter_for(name: str) -> Adapter:
    for adapter in _ADAPTERS.values():
        if adapter.matches(name):
            return adapter
    names = [a.usage or a.name for a in _ADAPTERS.values()]
    raise UsageError(f"unknown detector {name!r}: use {', '.join(names[:-1])} or {names[-1]}")


def resolve_options(name: str, options: DetectorOptions | None = None) -> DetectorOptions:
    """``options`` checked against the detector ``name``, or its defaults with credentials from the environment."""
    adapter = adapter_for(name)
    if options is None:
        return adapter.options.from_env()
    if not isinstance(options, adapter.options):
        raise UsageError(f"detector {name} takes {adapter.options.__name__}, not {type(options).__name__}")
    return options


def load_detector(name: str, options: DetectorOptions | None = None, pacing: Pacing = Pacing()) -> Detector:
    """The detector ``name`` (``synthetiq``, ``deepfake-detection``, ``python:package.module:function``)."""
    return adapter_for(name).open(name, resolve_options(name, options), pacing)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every registered adapter's flags, once each: a flag two adapters share must set the same field."""
    seen: dict[str, str] = {}
    for adapter in _ADAPTERS.values():
        for spec in adapter.options.flags():
            owners = {seen.get(n) for n in spec.names} - {None}
            if owners == {spec.dest}:
                continue
            if owners:
                raise ValueError(f"{adapter.name}: flag {spec.names[0]} already sets {owners.pop()!r}")
            parser.add_argument(*spec.names, dest=spec.dest, **{"default": None, **spec.kwargs})
            seen.update(dict.fromkeys(spec.names, spec.dest))


def options_from_args(args: argparse.Namespace) -> DetectorOptions:
    """The options of ``args.detector`` from the flags given; credentials from the environment."""
    return adapter_for(args.detector).options.from_args(args)


# -- the built-in adapters: each imported only when opened ------------------------------------------
def _open_synthetiq(name: str, options: SynthetiqOptions, pacing: Pacing) -> Detector:
    from mirror.detectors.synthetiq import SynthetiqDetector
    return SynthetiqDetector.open(options, pacing)


def _open_deepfake_detection(name: str, options: DeepfakeDetectionOptions, pacing: Pacing) -> Detector:
    from mirror.detectors.deepfake_detection import DeepfakeDetectionDetector
    return DeepfakeDetectionDetector.open(options, pacing)


def _open_local(name: str, options: LocalOptions, pacing: Pacing) -> Detector:
    from mirror.detectors.local import LocalDetector
    return LocalDetector.open(name, options, pacing)


register(Adapter("synthetiq", SynthetiqOptions, _open_synthetiq))
register(Adapter("deepfake-detection", DeepfakeDetectionOptions, _open_deepfake_detection))
register(Adapter("python:", LocalOptions, _open_local, usage="python:package.module:function"))
