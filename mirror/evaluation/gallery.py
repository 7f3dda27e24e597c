"""Failures you can see: which items to show, and their thumbnails as small embedded JPEGs.

Per detector: the fakes it scored most real and the reals it scored most fake (one per base image,
so six blurs of one face do not fill the row), and, for its worst condition, the lineages whose
P(fake) moved most the wrong way between the clean image and its perturbed version.
Thumbnails are at most 112 px, JPEG quality 70 (a few kB each), so the demo report with three
detectors stays far under 10 MB while remaining one self-contained file.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mirror.evaluation.groups import CLEAN, Scored
from mirror.evaluation.metrics import THRESHOLD

__all__ = ["MISSES", "PAIRS", "THUMB_PX", "select_gallery", "thumbnail"]

MISSES = 6
PAIRS = 4
THUMB_PX = 112


def _entry(scored: Scored, i: int) -> dict[str, Any]:
    c = scored.columns
    return {"id": c["id"][i], "path": c["path"][i], "kind": c["kind"][i], "p_fake": float(scored.p_fake[i]),
            "perturbation": c["perturbation"][i], "generator": c["generator"][i],
            "cell": f"{c['skin_tone'][i]}/{c['gender'][i]}", "base_id": c["base_id"][i]}


def _distinct_bases(scored: Scored, order: np.ndarray, count: int) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    out = []
    for i in order:
        base = scored.columns["base_id"][i]
        if base in seen and base is not None:
            continue
        seen.add(base)
        out.append(_entry(scored, int(i)))
        if len(out) == count:
            break
    return out


def select_gallery(scored: Scored, condition: str | None) -> dict[str, Any]:
    """The items to show for one detector (no image data: that is added when the page is drawn)."""
    fakes, reals = np.flatnonzero(scored.fake), np.flatnonzero(~scored.fake)
    fakes = fakes[np.lexsort((scored.columns["id"][fakes].astype(str), scored.p_fake[fakes]))]
    reals = reals[np.lexsort((scored.columns["id"][reals].astype(str), -scored.p_fake[reals]))]
    out: dict[str, Any] = {"fakes_scored_real": _distinct_bases(scored, fakes, MISSES),
                           "reals_scored_fake": _distinct_bases(scored, reals, MISSES),
                           "threshold": THRESHOLD, "condition": condition, "pairs": []}
    if condition is None:
        return out
    pert, kind, base = scored.columns["perturbation"], scored.columns["kind"], scored.columns["base_id"]
    clean = {(kind[i], base[i]): int(i) for i in np.flatnonzero(pert == CLEAN)}
    moves = []
    for i in np.flatnonzero(pert == condition):
        j = clean.get((kind[i], base[i]))
        if j is not None:
            delta = float(scored.p_fake[i] - scored.p_fake[j])
            moves.append((-delta if kind[i] == "fake" else delta, str(scored.columns["id"][i]), int(i), j))
    moves.sort(key=lambda m: (-m[0], m[1]))
    for _, _, i, j in moves[:PAIRS]:
        out["pairs"].append({"kind": kind[i], "base_id": base[i], "clean": _entry(scored, j),
                             "perturbed": _entry(scored, i), "delta": float(scored.p_fake[i] - scored.p_fake[j])})
    return out


def thumbnail(dest: Path, relative: str | None) -> str | None:
    """A JPEG data URI of the image at DEST/relative, at most THUMB_PX a side; None if it cannot be read.

    Only files inside DEST are opened: a manifest path that climbs out of it is treated as missing.
    """
    if not relative:
        return None
    root = dest.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_PX, THUMB_PX))
            small = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=70, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
