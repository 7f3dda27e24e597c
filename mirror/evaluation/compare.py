"""Is detector A better than B? DeLong's test for two correlated AUCs on the same items.

Both detectors are scored on exactly the items both have a usable verdict for (joined by item
id), so the difference of their AUCs is paired: the same fakes and reals, the same difficulty.
DeLong, DeLong & Clarke-Pearson (1988), in the placement-value form of Sun & Xu (2014):

* V10(x) = (#reals below x + ½ #reals equal to x) / n_real for each fake score x, V01(y) likewise
  for each real score y against the fakes; AUC = mean V10 = mean V01.
* Var(AUC_A − AUC_B) = (S10_AA + S10_BB − 2 S10_AB) / n_fake + (S01_AA + S01_BB − 2 S01_AB) / n_real,
  with S the sample covariances (n − 1) of the placement values.
* z = ΔAUC / SE, two-sided p from the normal; the 95 % CI is ΔAUC ± 1.96 SE.

Conditions are tested separately, so the table also carries Holm-adjusted p-values over every
test in the report: with 18 conditions × 3 pairs, a few uncorrected p < 0.05 arise by chance.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np

from mirror.evaluation.groups import Scored, ordered

__all__ = ["Z95", "placements", "delong", "holm", "compare_detectors"]

Z95 = 1.959963984540054


def placements(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V10 per fake, V01 per real): each item's share of the other class it is ranked correctly against."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    pos, neg = scores[labels], scores[~labels]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, side="left")
    v10 = (below + 0.5 * (np.searchsorted(neg_sorted, pos, side="right") - below)) / len(neg)
    above = len(pos) - np.searchsorted(pos_sorted, neg, side="right")
    v01 = (above + 0.5 * (np.searchsorted(pos_sorted, neg, side="right")
                          - np.searchsorted(pos_sorted, neg, side="left"))) / len(pos)
    return v10, v01


def delong(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """ΔAUC = AUC(a) − AUC(b) on the same items with DeLong's SE, 95 % CI and two-sided p.

    Needs at least two fakes and two reals; otherwise every statistic is None. When the SE is 0
    (both perfect, or identical rankings) a zero difference has p = 1 and a non-zero one p = 0.
    """
    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    out: dict[str, Any] = {"n_fake": n1, "n_real": n0}
    if n1 < 2 or n0 < 2:
        return out | dict.fromkeys(("auc_a", "auc_b", "diff", "se", "ci", "z", "p"))
    v10a, v01a = placements(labels, a)
    v10b, v01b = placements(labels, b)
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / n1 + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n0
    se = math.sqrt(max(var, 0.0))
    auc_a, auc_b = float(v10a.mean()), float(v10b.mean())
    diff = auc_a - auc_b
    if se < 1e-12:
        z, p = (0.0, 1.0) if abs(diff) < 1e-12 else (math.copysign(math.inf, diff), 0.0)
        se = 0.0
    else:
        z = diff / se
        p = math.erfc(abs(z) / math.sqrt(2))
    return out | {"auc_a": auc_a, "auc_b": auc_b, "diff": diff, "se": se, "ci": [diff - Z95 * se, diff + Z95 * se],
                  "z": None if math.isinf(z) else z, "p": p}


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family-wise error), None entries left out of the family."""
    defined = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(defined):
        running = max(running, min(1.0, (len(defined) - rank) * p))
        out[i] = running
    return out


def compare_detectors(scored: dict[str, Scored]) -> list[dict[str, Any]]:
    """Every pair of detectors, overall ("all") and per perturbation, on the items both scored."""
    pairs = []
    for name_a, name_b in combinations(scored, 2):
        sa, sb = scored[name_a], scored[name_b]
        index_b = {item: k for k, item in enumerate(sb.columns["id"])}
        both = [(k, index_b[item]) for k, item in enumerate(sa.columns["id"]) if item in index_b]
        ia = np.array([k for k, _ in both], dtype=np.int64)
        ib = np.array([k for _, k in both], dtype=np.int64)
        labels, pa, pb = sa.fake[ia], sa.p_fake[ia], sb.p_fake[ib]
        perts = np.array(["unknown" if v is None else str(v) for v in sa.columns["perturbation"][ia]], dtype=object)
        conditions = {"all": delong(labels, pa, pb)}
        for pert in ordered("perturbation", set(perts)):
            mask = perts == pert
            conditions[pert] = delong(labels[mask], pa[mask], pb[mask])
        pairs.append({"a": name_a, "b": name_b, "items": len(ia), "conditions": conditions})
    flat = [c for pair in pairs for c in pair["conditions"].values()]
    for c, adjusted in zip(flat, holm([c["p"] for c in flat]), strict=True):
        c["p_holm"] = adjusted
    return pairs
