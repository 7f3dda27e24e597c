"""Calibration of P(fake): reliability bins, ECE, and how a threshold fixed on clean data drifts.

* Reliability: 10 equal-width bins of P(fake) on [0, 1], bin k holding (k/10, (k+1)/10] (the first
  also holds 0), scikit-learn's ``calibration_curve(strategy="uniform")`` binning. Per bin: items,
  mean P(fake), fraction that are fakes.
* ECE: Σ over non-empty bins of (items in bin / all items) × |fraction fake − mean P(fake)|. It
  reads P(fake) as a probability at the corpus's own fake:real mix, so it is a property of the
  detector on this corpus, not a universal constant.
* Clean-data operating threshold: the lowest P(fake) level t of the clean items such that calling
  ``p_fake > t`` fake flags at most 1 % of clean reals (so on clean data it is the ROC point of TPR
  at 1 % FPR; t may be the highest clean score, flagging no clean item). Applied unchanged to every
  perturbation, its FPR and TPR there show threshold drift: how a detector tuned on clean data
  behaves once the images are recompressed, resized or re-uploaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BINS", "CLEAN_FPR", "reliability", "clean_threshold", "at_threshold", "bin_index", "calibration"]

BINS = 10
CLEAN_FPR = 0.01


def bin_index(scores: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin of each score: (k/bins, (k+1)/bins] is bin k, 0 goes to bin 0 (scikit-learn's rule)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0))


def reliability(labels: np.ndarray, scores: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Reliability bins and ECE of one set of verdicts; ECE is None when there are none."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    idx = bin_index(scores, bins)
    total = np.bincount(idx, minlength=bins)
    sums = np.bincount(idx, weights=scores, minlength=bins)
    fakes = np.bincount(idx, weights=labels.astype(np.float64), minlength=bins)
    rows = []
    ece = 0.0
    for k in range(bins):
        if total[k] == 0:
            rows.append({"lo": k / bins, "hi": (k + 1) / bins, "n": 0, "mean_p": None, "frac_fake": None})
            continue
        mean_p, frac = sums[k] / total[k], fakes[k] / total[k]
        ece += total[k] / len(scores) * abs(frac - mean_p)
        rows.append({"lo": k / bins, "hi": (k + 1) / bins, "n": int(total[k]), "mean_p": float(mean_p),
                     "frac_fake": float(frac)})
    return {"bins": rows, "ece": float(ece) if len(scores) else None, "n": len(scores)}


def clean_threshold(labels: np.ndarray, scores: np.ndarray, target: float = CLEAN_FPR) -> float | None:
    """Lowest score level t of these (clean) items with FPR(p > t) <= target; None without reals."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    reals = np.sort(scores[~labels])
    if len(reals) == 0:
        return None
    for level in np.unique(scores):            # ascending: the first that qualifies is the lowest
        alarms = len(reals) - np.searchsorted(reals, level, side="right")
        if alarms <= target * len(reals) + 1e-9:
            return float(level)
    raise AssertionError("unreachable: the highest level flags no item")


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """Counts and rates when ``p_fake > threshold`` is called fake; rates None without a threshold."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_fake, n_real = int(labels.sum()), int((~labels).sum())
    if threshold is None:
        return {"n_fake": n_fake, "n_real": n_real, "tp": None, "fp": None, "tpr": None, "fpr": None}
    called = scores > threshold
    tp, fp = int((called & labels).sum()), int((called & ~labels).sum())
    return {"n_fake": n_fake, "n_real": n_real, "tp": tp, "fp": fp,
            "tpr": tp / n_fake if n_fake else None, "fpr": fp / n_real if n_real else None}


def calibration(labels: np.ndarray, scores: np.ndarray, conditions: list[tuple[str, np.ndarray]],
                clean: np.ndarray) -> dict[str, Any]:
    """Reliability and ECE overall, the clean 1 %-FPR threshold, and per condition its FPR/TPR and ECE."""
    labels = np.asarray(labels).astype(bool)
    threshold = clean_threshold(labels[clean], scores[clean])
    per = {name: at_threshold(labels[mask], scores[mask], threshold) | {"ece": reliability(
        labels[mask], scores[mask])["ece"]} for name, mask in conditions}
    return {"reliability": reliability(labels, scores), "target_fpr": CLEAN_FPR, "clean_threshold": threshold,
            "by_perturbation": per}
