"""Short display names for detectors: the last part of the name, longer only where two would clash.

``mirror.detectors.reference.spectral_peakiness`` cut a plot title and widened every table; it is
shown as ``spectral_peakiness``, with the full name in a tooltip and in the report's footnote.
"""

from __future__ import annotations

import re

__all__ = ["display_names"]

_SPLIT = re.compile(r"[.:/]")


def display_names(detectors: list[str] | tuple[str, ...]) -> dict[str, str]:
    """full name -> short unique name (the shortest trailing run of name parts that is unique)."""
    parts = {d: [p for p in _SPLIT.split(d) if p] or [d] for d in detectors}
    depth = dict.fromkeys(detectors, 1)
    while True:
        short = {d: ".".join(parts[d][-depth[d]:]) for d in detectors}
        clashes = {d for d in detectors if list(short.values()).count(short[d]) > 1}
        grow = {d for d in clashes if depth[d] < len(parts[d])}
        if not grow:
            return {d: (d if d in clashes else short[d]) for d in detectors}
        for d in grow:
            depth[d] += 1
