"""Calibration (reliability, ECE, clean-data threshold) and DeLong's paired test, against scikit-learn
and brute-force computations written the slow obvious way."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from mirror.evaluation.calibration import at_threshold, clean_threshold, reliability
from mirror.evaluation.compare import delong, holm


def _cases(count: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(count):
        n = int(rng.integers(4, 300))
        labels = rng.integers(0, 2, n)
        labels[:4] = [0, 1, 0, 1]
        grid = int(rng.choice([4, 10, 20, 1000]))   # coarse grids put scores exactly on bin edges
        scores = np.clip(np.round(rng.random(n) * grid) / grid + labels * rng.random() * 0.3, 0, 1)
        cases.append((labels, scores))
    return cases


@pytest.mark.parametrize("labels,scores", _cases())
def test_reliability_and_ece_match_sklearn_bins(labels: np.ndarray, scores: np.ndarray) -> None:
    got = reliability(labels, scores)
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    filled = [b for b in got["bins"] if b["n"]]
    np.testing.assert_allclose([b["frac_fake"] for b in filled], prob_true, atol=1e-12)
    np.testing.assert_allclose([b["mean_p"] for b in filled], prob_pred, atol=1e-12)
    edges = np.linspace(0, 1, 11)[1:-1]   # scikit-learn's edges: bin = how many of them lie below p
    members = [[(y, p) for y, p in zip(labels, scores, strict=True) if sum(p > e for e in edges) == k]
               for k in range(10)]
    ece = sum(len(m) / len(scores) * abs(np.mean([y for y, _ in m]) - np.mean([p for _, p in m]))
              for m in members if m)
    assert [b["n"] for b in got["bins"]] == [len(m) for m in members]
    assert got["ece"] == pytest.approx(ece, abs=1e-12)


@pytest.mark.parametrize("labels,scores", _cases())
def test_clean_threshold_is_the_one_percent_fpr_roc_point(labels: np.ndarray, scores: np.ndarray) -> None:
    t = clean_threshold(labels, scores)
    reals = scores[labels == 0]
    allowed = [s for s in np.unique(scores) if np.sum(reals > s) <= 0.01 * len(reals)]
    assert t == min(allowed)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    point = at_threshold(labels, scores, t)
    assert point["tpr"] == pytest.approx(tpr[fpr <= 0.01 + 1e-12].max(), abs=1e-12)
    assert point["fpr"] <= 0.01 and point["fp"] == int(np.sum(reals > t))


def test_threshold_without_reals_and_at_threshold_counts() -> None:
    assert clean_threshold(np.ones(5), np.linspace(0, 1, 5)) is None
    none = at_threshold(np.array([0, 1, 1]), np.array([0.2, 0.4, 0.9]), None)
    assert none["tpr"] is None and none["fpr"] is None and none["n_fake"] == 2
    got = at_threshold(np.array([0, 0, 1, 1]), np.array([0.2, 0.7, 0.4, 0.9]), 0.4)
    assert (got["tp"], got["fp"], got["tpr"], got["fpr"]) == (1, 1, 0.5, 0.5)


def _brute_delong(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """ΔAUC and its DeLong variance from the full psi matrices (O(n_fake × n_real))."""
    pos, neg = labels == 1, labels == 0

    def psi(s: np.ndarray) -> np.ndarray:
        x, y = s[pos][:, None], s[neg][None, :]
        return (x > y) + 0.5 * (x == y)

    ma, mb = psi(a), psi(b)
    v10 = np.vstack([ma.mean(axis=1), mb.mean(axis=1)])
    v01 = np.vstack([ma.mean(axis=0), mb.mean(axis=0)])
    c = np.array([1.0, -1.0])
    var = c @ np.cov(v10) @ c / pos.sum() + c @ np.cov(v01) @ c / neg.sum()
    return float(ma.mean() - mb.mean()), float(var)


@pytest.mark.parametrize("labels,scores", _cases(25))
def test_delong_matches_brute_force_and_sklearn(labels: np.ndarray, scores: np.ndarray) -> None:
    rng = np.random.default_rng(len(scores))
    other = np.clip(scores + rng.normal(0, 0.2, len(scores)), 0, 1).round(2)
    got = delong(labels, scores, other)
    diff, var = _brute_delong(labels, scores, other)
    assert got["auc_a"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert got["auc_b"] == pytest.approx(roc_auc_score(labels, other), abs=1e-12)
    assert got["diff"] == pytest.approx(diff, abs=1e-12)
    assert got["se"] == pytest.approx(math.sqrt(var), abs=1e-12)
    if var > 0:
        assert got["p"] == pytest.approx(math.erfc(abs(diff / math.sqrt(var)) / math.sqrt(2)), abs=1e-12)
        assert got["ci"] == pytest.approx([diff - 1.959964 * math.sqrt(var), diff + 1.959964 * math.sqrt(var)],
                                          abs=1e-6)
    swapped = delong(labels, other, scores)
    assert swapped["diff"] == pytest.approx(-got["diff"]) and swapped["p"] == pytest.approx(got["p"])


def test_delong_se_agrees_with_a_paired_bootstrap() -> None:
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(150), np.ones(150)].astype(int)
    shared = rng.normal(0, 1, 300)
    a = shared + labels * 1.6 + rng.normal(0, 0.7, 300)
    b = shared + labels * 0.8 + rng.normal(0, 0.7, 300)
    got = delong(labels, a, b)
    diffs = []
    for _ in range(400):   # resample fakes and reals separately, the same items for both detectors
        i = np.r_[rng.choice(150, 150), 150 + rng.choice(150, 150)]
        diffs.append(roc_auc_score(labels[i], a[i]) - roc_auc_score(labels[i], b[i]))
    assert got["se"] == pytest.approx(np.std(diffs), rel=0.2)
    assert got["diff"] > 0 and got["p"] < 0.05


def test_delong_edge_cases() -> None:
    labels = np.array([0, 0, 1, 1])
    same = delong(labels, np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert same["diff"] == 0 and same["se"] == 0 and same["p"] == 1.0
    tiny = delong(np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.3, 0.4]))
    assert tiny["diff"] is None and tiny["p"] is None and tiny["n_real"] == 1


def test_holm_adjustment() -> None:
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []
