"""Detection metrics with fake as the positive class, in numpy only, with stratified bootstrap CIs.

Definitions follow DeepfakeBench so numbers compare with the literature:

* AUC: area under the ROC curve, ties counted half (the Mann-Whitney statistic).
* EER: the FPR at the ROC point where |FNR − FPR| is smallest (first such point), on the curve
  with one point per distinct score (scikit-learn's ``roc_curve(drop_intermediate=False)``).
* AP: average precision, Σ (Rₖ − Rₖ₋₁)·Pₖ over descending distinct thresholds (scikit-learn's).
* ACC/TPR/FPR at 0.5: an image is called fake when ``p_fake > 0.5`` (DeepfakeBench's rule).
* Operating points, on the same ROC points (no interpolation between them): TPR at FPR = 1 % and
  5 % is the highest TPR of a point whose FPR is at most the target; FPR at TPR = 95 % is the
  lowest FPR of a point whose TPR is at least 95 %.

Everything is computed from per-score-level class weights, so one code path serves both the
point estimate (weights are counts) and a whole batch of bootstrap resamples (weights are
resample counts, one row per resample): the CI is computed by exactly the same formulas.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

__all__ = ["THRESHOLD", "METRICS", "OPERATING_POINTS", "roc_curve", "evaluate", "mean_summary", "rng_for"]

THRESHOLD = 0.5
METRICS = ("auc", "eer", "ap", "acc", "tpr", "fpr", "tpr_at_fpr_1", "tpr_at_fpr_5", "fpr_at_tpr_95")
OPERATING_POINTS = {"tpr_at_fpr_1": 0.01, "tpr_at_fpr_5": 0.05, "fpr_at_tpr_95": 0.95}
_CELLS_PER_CHUNK = 2_000_000  # resamples × items per batch: bounds memory on very large groups


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator for one group, seeded from the report seed and the group's name.

    Seeding per group (not one stream for the whole report) keeps a group's CI the same when
    other groups are added or removed, and makes the output independent of evaluation order.
    """
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def _levels(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct scores in descending order, and each score's level index into them."""
    levels, inverse = np.unique(-scores, return_inverse=True)
    return -levels, inverse.reshape(-1)


def _weights(level_idx: np.ndarray, n_levels: int, picks: np.ndarray | None) -> np.ndarray:
    """(resamples × levels) counts of items per level; ``picks`` None means the sample itself."""
    if picks is None:
        return np.bincount(level_idx, minlength=n_levels).astype(np.float64)[None, :]
    rows = level_idx[picks] + np.arange(picks.shape[0])[:, None] * n_levels
    return np.bincount(rows.ravel(), minlength=picks.shape[0] * n_levels).reshape(-1, n_levels).astype(np.float64)


def _draw(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """Indices of ``resamples`` resamples with replacement of ``n`` items (none for an empty class)."""
    return rng.integers(0, n, (resamples, n)) if n else np.zeros((resamples, 0), dtype=np.int64)


def _from_weights(levels: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> dict[str, np.ndarray]:
    """All metrics for each row of level weights (levels descending); NaN where undefined."""
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n1, n0 = tp[:, -1], fp[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = np.sum(pos * (n0[:, None] - fp + 0.5 * neg), axis=1) / (n1 * n0)
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        ap = np.sum(pos * precision, axis=1) / n1
        fpr_curve = np.concatenate([np.zeros((len(n0), 1)), fp / n0[:, None]], axis=1)
        tpr_curve = np.concatenate([np.zeros((len(n1), 1)), tp / n1[:, None]], axis=1)
        gap = np.abs((1.0 - tpr_curve) - fpr_curve)
        both = (n1 > 0) & (n0 > 0)
        at = np.argmin(np.where(np.isnan(gap), np.inf, gap), axis=1)
        eer = np.where(both, fpr_curve[np.arange(len(at)), at], np.nan)
        points = {}
        for name, target in OPERATING_POINTS.items():
            if name.startswith("tpr"):   # counts, not ratios, so k/n exactly at the target is inside
                inside = np.concatenate([np.zeros((len(n0), 1)), fp], axis=1) <= target * n0[:, None] + 1e-9
                points[name] = np.where(inside, tpr_curve, -np.inf).max(axis=1)
            else:
                inside = np.concatenate([np.zeros((len(n1), 1)), tp], axis=1) >= target * n1[:, None] - 1e-9
                points[name] = np.where(inside, fpr_curve, np.inf).min(axis=1)
            points[name] = np.where(both, points[name], np.nan)
        called = levels > THRESHOLD
        hits, alarms = pos[:, called].sum(axis=1), neg[:, called].sum(axis=1)
        acc = (hits + (n0 - alarms)) / (n1 + n0)
        tpr, fpr = hits / n1, alarms / n0
    auc, ap = np.where(both, auc, np.nan), np.where(both, ap, np.nan)
    return {"auc": auc, "eer": eer, "ap": ap, "acc": acc, "tpr": tpr, "fpr": fpr} | points


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) from (0, 0), one point per distinct score, descending; both classes required."""
    levels, idx = _levels(np.asarray(scores, dtype=np.float64))
    is_fake = np.asarray(labels).astype(bool)
    tp = np.cumsum(np.bincount(idx[is_fake], minlength=len(levels)))
    fp = np.cumsum(np.bincount(idx[~is_fake], minlength=len(levels)))
    return np.concatenate([[0.0], fp / fp[-1]]), np.concatenate([[0.0], tp / tp[-1]])


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def evaluate(labels: np.ndarray, scores: np.ndarray, *, resamples: int, rng: np.random.Generator,
             confidence: float = 0.95) -> dict[str, Any]:
    """Metrics of one group with percentile CIs from ``resamples`` class-stratified resamples.

    Stratifying (resampling fakes and reals separately, each to its own size) keeps every
    resample's class balance equal to the group's, so AUC is defined in every resample whenever
    it is defined at all. Undefined values (one class only) are None, as are their CIs.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, Any] = {"n": len(scores), "n_fake": int(labels.sum()), "n_real": int((~labels).sum())}
    if len(scores) == 0:
        return out | {m: None for m in METRICS} | {f"{m}_ci": None for m in METRICS}
    levels, idx = _levels(scores)
    pos_idx, neg_idx = idx[labels], idx[~labels]
    point = _from_weights(levels, _weights(pos_idx, len(levels), None), _weights(neg_idx, len(levels), None))
    draws: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    chunk = max(1, _CELLS_PER_CHUNK // max(len(scores), len(levels)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        pos = _weights(pos_idx, len(levels), _draw(rng, len(pos_idx), size))
        neg = _weights(neg_idx, len(levels), _draw(rng, len(neg_idx), size))
        for name, values in _from_weights(levels, pos, neg).items():
            draws[name].append(values)
    tail = (1.0 - confidence) / 2 * 100
    for name in METRICS:
        out[name] = _number(point[name][0])
        values = np.concatenate(draws[name]) if draws[name] else np.empty(0)
        values = values[~np.isnan(values)]
        out[f"{name}_ci"] = (None if out[name] is None or len(values) == 0
                             else [float(v) for v in np.percentile(values, [tail, 100 - tail])])
    return out


def mean_summary(values: np.ndarray, *, resamples: int, rng: np.random.Generator,
                 confidence: float = 0.95) -> dict[str, Any]:
    """n, mean, median and a percentile bootstrap CI of the mean (for paired score changes)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"n": 0, "mean": None, "median": None, "mean_ci": None}
    means = np.concatenate([values[rng.integers(0, len(values), (min(resamples - s, 1000), len(values)))].mean(axis=1)
                            for s in range(0, resamples, 1000)]) if resamples else np.empty(0)
    tail = (1.0 - confidence) / 2 * 100
    return {"n": len(values), "mean": float(values.mean()), "median": float(np.median(values)),
            "mean_ci": [float(v) for v in np.percentile(means, [tail, 100 - tail])] if len(means) else None}
