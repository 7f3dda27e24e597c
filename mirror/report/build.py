"""``build_report``: DEST's scores → ``DEST/reports/<name>/`` with metrics.json, report.md and report.html.

The three files are written from one in-memory document, each by atomic rename, so a reader
never sees a half-written file and a rebuilt report replaces the old one file by file.
Output is deterministic for the same manifest and scores (seeded bootstrap, no timestamps), so
a report can be committed and diffed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mirror.errors import UsageError
from mirror.report.groups import analyse, detector_names, load_scored
from mirror.report.metrics import THRESHOLD
from mirror.report.plots import collapse_bars, metric_bars, roc_figure
from mirror.report.render import render_html, render_markdown
from mirror.store import write_atomic

__all__ = ["build_report", "FORMAT"]

FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def _choose(dest: Path, detectors: list[str] | None) -> list[str]:
    available = detector_names(dest)
    if not available:
        raise UsageError(f"no detector scores under {dest / 'scores'}: score the mirror first, then run report again")
    if not detectors:
        return available
    unknown = [d for d in detectors if d not in available]
    if unknown:
        raise UsageError(f"no scores for detector {', '.join(unknown)} in {dest / 'scores'}; "
                         f"have: {', '.join(available)}")
    return list(dict.fromkeys(detectors))


def build_report(dest: str | os.PathLike[str], detectors: list[str] | None = None, name: str | None = None, *,
                 resamples: int = 500, seed: int = 0) -> Path:
    """Build the report for ``detectors`` (None: every folder under DEST/scores); returns its folder.

    ``name`` defaults to the detector's name, or ``a-vs-b`` for several. Raises UsageError when
    DEST has no scores, a named detector has none, or the name is not a plain folder name.
    """
    root = Path(dest)
    chosen = _choose(root, detectors)
    name = name or "-vs-".join(chosen)
    if not _NAME.fullmatch(name):
        raise UsageError(f"report name {name!r} is not a plain folder name: pass --name with letters, digits, . _ + -")
    scored = {d: load_scored(root, d) for d in chosen}
    results = {d: analyse(s, resamples=resamples, seed=seed) for d, s in scored.items()}
    doc: dict[str, Any] = {
        "format": FORMAT, "report": name, "dest": str(dest), "detectors": chosen,
        "settings": {"threshold": THRESHOLD, "positive_class": "fake",
                     "bootstrap": {"resamples": resamples, "seed": seed, "confidence": 0.95,
                                   "stratified_by": "class", "interval": "percentile"},
                     "generator_groups": "fakes of the generator plus every real in scope",
                     "eer": "FPR where |FNR - FPR| is smallest (DeepfakeBench)",
                     "fairness_gap": "(max - min) x 100 across groups with the metric defined"},
        "results": results,
    }
    figures = {"roc": roc_figure(scored, results), "perturbation": metric_bars(results, "perturbation"),
               "layer": metric_bars(results, "layer"), "generator": metric_bars(results, "generator"),
               "cell": metric_bars(results, "cell"), "collapse_fake": collapse_bars(results, "fake"),
               "collapse_real": collapse_bars(results, "real")}
    out = root / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "metrics.json", json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n")
    write_atomic(out / "report.md", render_markdown(doc))
    write_atomic(out / "report.html", render_html(doc, figures))
    return out
