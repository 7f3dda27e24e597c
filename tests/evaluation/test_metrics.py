"""mirror.evaluation.metrics against scikit-learn, on random data with many tied scores."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from mirror.evaluation.metrics import evaluate, mean_summary, rng_for, roc_curve


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(60):
        n = int(rng.integers(2, 250))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        grid = int(rng.choice([2, 5, 20, 1000]))      # coarse grids give heavy ties, as real APIs do
        scores = np.clip(np.round(rng.random(n) * grid) / grid + labels * rng.random() * 0.4, 0, 1)
        cases.append((labels, scores))
    return cases


@pytest.mark.parametrize("labels,scores", _cases())
def test_point_metrics_match_sklearn(labels: np.ndarray, scores: np.ndarray) -> None:
    m = evaluate(labels, scores, resamples=0, rng=rng_for(0, "t"))
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    eer = fpr[np.nanargmin(np.abs((1 - tpr) - fpr))]              # DeepfakeBench's definition
    tn, fp, fn, tp = confusion_matrix(labels, scores > 0.5, labels=[0, 1]).ravel()
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["eer"] == pytest.approx(eer, abs=1e-12)
    assert m["acc"] == pytest.approx(accuracy_score(labels, scores > 0.5), abs=1e-12)
    assert m["tpr"] == pytest.approx(tp / (tp + fn)) and m["fpr"] == pytest.approx(fp / (fp + tn))
    assert (m["n"], m["n_fake"], m["n_real"]) == (len(labels), int(labels.sum()), int((labels == 0).sum()))
    ours = roc_curve(labels, scores)
    np.testing.assert_allclose(ours[0], fpr)
    np.testing.assert_allclose(ours[1], tpr)


@pytest.mark.parametrize("labels,scores", _cases())
def test_operating_points_match_sklearn_roc_points(labels: np.ndarray, scores: np.ndarray) -> None:
    m = evaluate(labels, scores, resamples=0, rng=rng_for(0, "t"))
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert m["tpr_at_fpr_1"] == pytest.approx(tpr[fpr <= 0.01 + 1e-12].max(), abs=1e-12)
    assert m["tpr_at_fpr_5"] == pytest.approx(tpr[fpr <= 0.05 + 1e-12].max(), abs=1e-12)
    assert m["fpr_at_tpr_95"] == pytest.approx(fpr[tpr >= 0.95 - 1e-12].min(), abs=1e-12)


def test_operating_points_on_a_hand_made_example() -> None:
    """100 reals at 0.00..0.99 and 20 fakes at 0.500..0.975 in steps of 0.025."""
    reals, fakes = np.arange(100) / 100, 0.5 + np.arange(20) * 0.025
    m = evaluate(np.r_[np.zeros(100), np.ones(20)], np.r_[reals, fakes], resamples=0, rng=rng_for(0, "h"))
    assert m["tpr_at_fpr_1"] == 0.0                       # p >= 0.99 is the only point at 1 % FPR: no fake
    assert m["tpr_at_fpr_5"] == pytest.approx(2 / 20)     # p >= 0.95: 5 reals, 2 fakes (0.95, 0.975)
    assert m["fpr_at_tpr_95"] == pytest.approx(0.47)      # 19 of 20 fakes is p >= 0.525: reals 0.53..0.99


def test_bootstrap_is_seeded_stratified_and_brackets_the_estimate() -> None:
    labels, scores = _cases()[5]
    a = evaluate(labels, scores, resamples=300, rng=rng_for(0, "group"))
    assert a == evaluate(labels, scores, resamples=300, rng=rng_for(0, "group"))
    assert a["auc_ci"] != evaluate(labels, scores, resamples=300, rng=rng_for(1, "group"))["auc_ci"]
    for name in ("auc", "eer", "ap", "acc", "tpr", "fpr", "tpr_at_fpr_1", "tpr_at_fpr_5", "fpr_at_tpr_95"):
        lo, hi = a[f"{name}_ci"]
        assert lo <= hi and lo - 0.05 <= a[name] <= hi + 0.05


def test_one_class_and_empty_groups_have_no_auc_but_keep_n() -> None:
    fakes = evaluate(np.ones(6), np.linspace(0, 1, 6), resamples=50, rng=rng_for(0, "f"))
    assert fakes["auc"] is None and fakes["eer"] is None and fakes["ap"] is None and fakes["auc_ci"] is None
    assert (fakes["n"], fakes["n_fake"], fakes["n_real"]) == (6, 6, 0)
    assert fakes["tpr"] == pytest.approx(0.5) and fakes["fpr"] is None and fakes["acc_ci"] is not None
    empty = evaluate(np.zeros(0), np.zeros(0), resamples=50, rng=rng_for(0, "e"))
    assert empty["n"] == 0 and empty["auc"] is None and empty["acc"] is None


def test_mean_summary_matches_statistics() -> None:
    values = [-0.4, -0.1, 0.0, -0.7, 0.25, -0.3]
    s = mean_summary(np.array(values), resamples=400, rng=rng_for(0, "m"))
    assert s["n"] == 6
    assert s["mean"] == pytest.approx(statistics.fmean(values))
    assert s["median"] == pytest.approx(statistics.median(values))
    assert s["mean_ci"][0] <= s["mean"] <= s["mean_ci"][1]
    assert s == mean_summary(np.array(values), resamples=400, rng=rng_for(0, "m"))
