"""From DEST's manifest and one detector's score files to grouped metrics, paired collapse and fairness gaps.

Joining rules (each exclusion is counted, never silent):

* manifest: one row per id, the newest ``downloaded_at`` (ties: the later row), as ``compact`` does;
* scores: one row per sha256 within ``DEST/scores/<detector>/`` (the folder is the detector), the
  newest ``submitted_at`` (ties: the later file and row), so a re-score replaces the old verdict;
* a score joins an item only when both ``id`` and ``sha256`` match: a file that was re-fetched has
  new bytes, and a verdict on the old bytes must not be applied to them (counted as ``stale``);
* only ``status == "ok"`` rows with a finite ``p_fake`` are scored; the rest are counted per reason.

Group rules: within a perturbation, layer, skin tone, gender or cell both classes come from the
group. A generator has no reals of its own, so generator G is scored on (fakes of G) ∪ (every
real in scope): "can this detector tell G's fakes from the reals it will meet". Groups with one
class get AUC/EER/AP null and still report n.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from mirror.evaluation.calibration import calibration
from mirror.evaluation.metrics import THRESHOLD, evaluate, mean_summary, rng_for
from mirror.store.manifest import open_manifest
from mirror.store.verdicts import SCORES_SCHEMA

__all__ = ["DIMENSIONS", "FAIRNESS_DIMENSIONS", "CLEAN", "Scored", "load_scored", "detector_names", "ordered",
           "analyse"]

DIMENSIONS = ("perturbation", "layer", "generator", "skin_tone", "gender", "cell")
FAIRNESS_DIMENSIONS = ("cell", "skin_tone", "gender")
CLEAN = "clean"
_ORDER = {  # display order of known values; unknown values follow, sorted
    "perturbation": ("clean", "jpeg_q95", "jpeg_q80", "jpeg_q70", "jpeg_q50", "jpeg_q30", "blur_1", "blur_2",
                     "blur_4", "noise_5", "noise_10", "resize_0.75", "resize_0.5", "fb_pipeline", "ig_pipeline",
                     "tt_pipeline", "x_pipeline"),
    "layer": ("clean", "layer1", "layer2", "layer2_recropped"),
    "skin_tone": ("very_light", "light", "intermediate", "tan", "brown", "dark"),
    "gender": ("female", "male"),
}
_ITEM_COLUMNS = ["id", "sha256", "kind", "skin_tone", "gender", "generator", "perturbation", "layer", "base_id",
                 "source_real_id", "path", "downloaded_at"]


@dataclass
class Scored:
    """One detector's usable verdicts joined with their items: parallel arrays, one entry per item."""

    detector: str
    fake: np.ndarray                      # bool, fake = positive class
    p_fake: np.ndarray                    # float64
    columns: dict[str, np.ndarray]        # object arrays: id, base_id, path, and every dimension
    counts: dict[str, Any] = field(default_factory=dict)


def detector_names(dest: Path) -> list[str]:
    """Detectors with at least one score file, sorted (folder names under ``DEST/scores``)."""
    root = dest / "scores"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) if root.is_dir() else []


def _newest(keys: list[Any], stamps: list[Any]) -> dict[Any, int]:
    """key -> index of its newest row; null stamps count as oldest, ties go to the later row."""
    order = sorted(range(len(keys)), key=lambda i: (stamps[i] is not None, stamps[i] or 0, i))
    return {keys[i]: i for i in order}


def _manifest_rows(dest: Path) -> dict[str, dict[str, Any]]:
    table = open_manifest(dest).to_table(columns=_ITEM_COLUMNS).to_pylist()
    newest = _newest([r["id"] for r in table], [r["downloaded_at"] for r in table])
    return {item_id: table[i] for item_id, i in newest.items()}


def _score_rows(dest: Path, detector: str) -> tuple[list[dict[str, Any]], int]:
    """Newest row per sha256 in the detector's folder, and how many rows the files held."""
    files = sorted(str(p) for p in (dest / "scores" / detector).glob("*.parquet") if p.is_file())
    if not files:
        return [], 0
    table = pa.concat_tables([ds.dataset(f, schema=SCORES_SCHEMA, format="parquet").to_table(
        columns=["id", "sha256", "p_fake", "status", "submitted_at"]) for f in files]).to_pylist()
    newest = _newest([r["sha256"] for r in table], [r["submitted_at"] for r in table])
    return [table[i] for i in sorted(newest.values())], len(table)


def load_scored(dest: Path, detector: str) -> Scored:
    """Join one detector's newest verdicts with the manifest, counting every row that is left out."""
    items = _manifest_rows(dest)
    rows, n_rows = _score_rows(dest, detector)
    excluded: Counter[str] = Counter()
    kept: list[tuple[dict[str, Any], float]] = []
    matched: set[str] = set()
    for row in rows:
        item = items.get(row["id"])
        if item is None:
            excluded["unknown_id"] += 1
        elif item["sha256"] != row["sha256"]:
            excluded["stale"] += 1
        elif row["status"] != "ok":
            matched.add(row["id"])
            excluded[f"status_{row['status']}"] += 1
        elif row["p_fake"] is None or not np.isfinite(row["p_fake"]):
            matched.add(row["id"])
            excluded["no_p_fake"] += 1
        elif item["kind"] not in ("fake", "real"):
            matched.add(row["id"])
            excluded["unknown_kind"] += 1
        else:
            matched.add(row["id"])
            kept.append((item, float(row["p_fake"])))
    columns = {name: np.array([item[name] for item, _ in kept], dtype=object)
               for name in ("id", "base_id", "kind", "perturbation", "layer", "generator", "skin_tone", "gender",
                            "path")}
    columns["cell"] = np.array([f"{item['skin_tone']}/{item['gender']}" for item, _ in kept], dtype=object)
    counts = {"manifest_items": len(items), "score_rows": n_rows, "scores_newest": len(rows), "scored": len(kept),
              "excluded": dict(sorted(excluded.items())), "unscored_items": len(items) - len(matched)}
    return Scored(detector=detector, fake=columns["kind"] == "fake",
                  p_fake=np.array([p for _, p in kept], dtype=np.float64), columns=columns, counts=counts)


def ordered(dimension: str, values: set[str]) -> list[str]:
    known = _ORDER.get(dimension, ())
    return [v for v in known if v in values] + sorted(v for v in values if v not in known)


def _column(scored: Scored, dimension: str) -> np.ndarray:
    return np.array(["unknown" if v is None else str(v) for v in scored.columns[dimension]], dtype=object)


def _groups(scored: Scored, dimension: str) -> list[tuple[str, np.ndarray]]:
    """(value, mask) per group of a dimension; null values are shown as "unknown"."""
    column = _column(scored, dimension)
    if dimension == "generator":
        values = set(column[scored.fake])
        return [(v, (scored.fake & (column == v)) | ~scored.fake) for v in ordered(dimension, values)]
    return [(v, column == v) for v in ordered(dimension, set(column))]


def _collapse(scored: Scored, resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per kind and perturbation: p_fake(perturbed) − p_fake(clean) over pairs sharing a base_id.

    For fakes a negative mean is the collapse (fakes look more real once perturbed); for reals a
    positive mean is false-alarm drift. ``flips`` counts pairs whose 0.5 verdict went the bad way.
    """
    clean: dict[tuple[str, str], float] = {}
    for i in np.flatnonzero(scored.columns["perturbation"] == CLEAN):
        clean.setdefault((scored.columns["kind"][i], scored.columns["base_id"][i]), scored.p_fake[i])
    deltas: dict[tuple[str, str], list[float]] = defaultdict(list)
    flips: Counter[tuple[str, str]] = Counter()
    for i in range(len(scored.p_fake)):
        kind, pert = scored.columns["kind"][i], scored.columns["perturbation"][i]
        base = clean.get((kind, scored.columns["base_id"][i]))
        if pert == CLEAN or base is None:
            continue
        deltas[(kind, pert)].append(scored.p_fake[i] - base)
        was, now = base > THRESHOLD, scored.p_fake[i] > THRESHOLD
        flips[(kind, pert)] += int((was and not now) if kind == "fake" else (now and not was))
    out: dict[str, dict[str, Any]] = {"fake": {}, "real": {}}
    for kind in out:
        perts = {p for k, p in deltas if k == kind}
        for pert in ordered("perturbation", perts):
            summary = mean_summary(np.array(deltas[(kind, pert)]), resamples=resamples,
                                   rng=rng_for(seed, f"{scored.detector}|collapse|{kind}|{pert}"))
            out[kind][pert] = summary | {"flips": flips[(kind, pert)]}
    return out


def _heatmap(scored: Scored) -> dict[str, dict[str, Any]]:
    """AUC of each generator's fakes against the reals, under each perturbation (point estimates)."""
    gen, pert = _column(scored, "generator"), _column(scored, "perturbation")
    out: dict[str, dict[str, Any]] = {}
    for g in ordered("generator", set(gen[scored.fake])):
        out[g] = {}
        for p in ordered("perturbation", set(pert)):
            mask = (pert == p) & ((scored.fake & (gen == g)) | ~scored.fake)
            m = evaluate(scored.fake[mask], scored.p_fake[mask], resamples=0, rng=rng_for(0, "point"))
            out[g][p] = {"auc": m["auc"], "n_fake": m["n_fake"], "n_real": m["n_real"]}
    return out


def _fairness(groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """(max − min) × 100 of AUC, FPR and TPR across the groups where each is defined."""
    out: dict[str, Any] = {}
    for metric in ("auc", "fpr", "tpr"):
        values = {g: m[metric] for g, m in groups.items() if m[metric] is not None}
        if len(values) < 2:
            out[metric] = {"gap": None, "max": None, "min": None, "groups": len(values)}
            continue
        hi, lo = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
        out[metric] = {"gap": (values[hi] - values[lo]) * 100, "max": [hi, values[hi]], "min": [lo, values[lo]],
                       "groups": len(values)}
    return out


def _headline(detector: str, groups: dict[str, dict[str, Any]], collapse: dict[str, Any]) -> dict[str, Any]:
    """The condition the detector loses most under: the largest AUC drop from clean, else the worst collapse."""
    per = groups["perturbation"]
    clean_auc = per.get(CLEAN, {}).get("auc")
    drops = {p: clean_auc - m["auc"] for p, m in per.items() if p != CLEAN and m["auc"] is not None} \
        if clean_auc is not None else {}
    fakes = {p: s["mean"] for p, s in collapse["fake"].items() if s["mean"] is not None}
    if drops:
        worst = max(drops, key=drops.__getitem__)
        moves = [f"{kind}s {collapse[kind][worst]['mean']:+.3f} ({collapse[kind][worst]['n']} pairs)"
                 for kind in ("fake", "real") if collapse[kind].get(worst, {}).get("mean") is not None]
        shift = f"; mean paired change of p_fake from the clean version: {', '.join(moves)}" if moves else ""
        if drops[worst] <= 0:
            text = f"{detector} holds up: no perturbation lowers AUC below clean ({clean_auc:.3f})."
        else:
            text = (f"{detector} loses most under {worst}: AUC {clean_auc:.3f} on clean → {per[worst]['auc']:.3f} "
                    f"({-drops[worst]:+.3f}){shift}.")
        return {"condition": worst, "auc_drop": drops[worst], "sentence": text}
    if fakes:
        worst = min(fakes, key=fakes.__getitem__)
        text = (f"{detector} loses most under {worst}: its fakes' p_fake moves {fakes[worst]:+.3f} on average "
                f"from their clean version (too few reals per perturbation for an AUC).")
        return {"condition": worst, "auc_drop": None, "sentence": text}
    return {"condition": None, "auc_drop": None,
            "sentence": f"{detector}: not enough scored clean/perturbed items to say which condition hurts most."}


def analyse(scored: Scored, *, resamples: int, seed: int) -> dict[str, Any]:
    """Everything the report shows for one detector, as JSON-ready values."""
    def run(key: str, mask: np.ndarray) -> dict[str, Any]:
        return evaluate(scored.fake[mask], scored.p_fake[mask], resamples=resamples,
                        rng=rng_for(seed, f"{scored.detector}|{key}"))

    overall = run("overall", np.ones(len(scored.p_fake), dtype=bool))
    groups = {dim: {value: run(f"{dim}={value}", mask) for value, mask in _groups(scored, dim)}
              for dim in DIMENSIONS}
    collapse = _collapse(scored, resamples, seed)
    perturbations = _groups(scored, "perturbation")
    clean = _column(scored, "perturbation") == CLEAN
    return {"counts": scored.counts, "overall": overall, "groups": groups, "collapse": collapse,
            "fairness": {dim: _fairness(groups[dim]) for dim in FAIRNESS_DIMENSIONS},
            "calibration": calibration(scored.fake, scored.p_fake, perturbations, clean),
            "heatmap": _heatmap(scored), "headline": _headline(scored.detector, groups, collapse)}
