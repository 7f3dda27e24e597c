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
from mirror.evaluation.calibration import BINS, CLEAN_FPR
from mirror.evaluation.compare import compare_detectors
from mirror.evaluation.gallery import select_gallery, thumbnail
from mirror.evaluation.groups import analyse, detector_names, load_scored
from mirror.evaluation.metrics import THRESHOLD
from mirror.evaluation.names import display_names
from mirror.evaluation.plots import calibration_figure, collapse_bars, metric_bars, roc_figure
from mirror.evaluation.render import render_html, render_markdown
from mirror.store import write_atomic

__all__ = ["build_report", "FORMAT"]

FORMAT = 2
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
    for d, s in scored.items():
        results[d]["gallery"] = select_gallery(s, results[d]["headline"]["condition"])
    doc: dict[str, Any] = {
        "format": FORMAT, "report": name, "dest": str(dest), "detectors": chosen,
        "display_names": display_names(chosen),
        "settings": {"threshold": THRESHOLD, "positive_class": "fake",
                     "bootstrap": {"resamples": resamples, "seed": seed, "confidence": 0.95,
                                   "stratified_by": "class", "interval": "percentile"},
                     "generator_groups": "fakes of the generator plus every real in scope",
                     "eer": "nearest ROC point, not interpolated: FPR where |FNR - FPR| is smallest, first such "
                            "point, one ROC point per distinct score (DeepfakeBench)",
                     "operating_points": "TPR@FPR<=1%/5%: highest TPR of a ROC point within the FPR; FPR@TPR>=95%: "
                                         "lowest FPR of a ROC point reaching the TPR; no interpolation",
                     "calibration": {"bins": BINS, "binning": "equal width, (k/10, (k+1)/10] (scikit-learn)",
                                     "clean_threshold": f"lowest clean P(fake) level t with FPR(p > t) <= "
                                                        f"{CLEAN_FPR:g} on clean reals"},
                     "paired_test": "DeLong 1988 on items both detectors scored; CI = diff +- 1.96 SE; "
                                    "Holm-adjusted p over every test in the report",
                     "fairness_gap": "(max - min) x 100 across groups with the metric defined"},
        "results": results,
        "comparisons": compare_detectors(scored),
    }
    short = doc["display_names"]
    figures = {"roc": roc_figure(scored, results, short), "perturbation": metric_bars(results, "perturbation", short),
               "generator": metric_bars(results, "generator", short), "cell": metric_bars(results, "cell", short),
               "collapse_fake": collapse_bars(results, "fake", short),
               "collapse_real": collapse_bars(results, "real", short),
               "calibration": calibration_figure(scored, results, short)}
    shown = {e["path"] for r in results.values() for e in r["gallery"]["fakes_scored_real"]
             + r["gallery"]["reals_scored_fake"]}
    shown |= {e[k]["path"] for r in results.values() for e in r["gallery"]["pairs"] for k in ("clean", "perturbed")}
    thumbs = {path: thumbnail(root, path) for path in sorted(p for p in shown if p)}
    out = root / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "metrics.json", json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n")
    write_atomic(out / "report.md", render_markdown(doc))
    write_atomic(out / "report.html", render_html(doc, figures, thumbs))
    return out
