"""build_report on a synthetic DEST: every number re-derived independently (plain Python + scikit-learn)."""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from mirror.cli.verbs.report import register as add_report_parser
from mirror.cli.verbs.report import run as run_report_verb
from mirror.errors import UsageError
from mirror.evaluation import build_report

RESAMPLES = 60


def _usable(dest: Path, detector: str) -> list[tuple[dict[str, Any], float]]:
    """The join the report must do, written out the slow obvious way."""
    manifest: dict[str, dict[str, Any]] = {}
    for f in sorted((dest / "manifest").glob("*.parquet")):
        for row in pq.read_table(f).to_pylist():
            if row["id"] not in manifest or row["downloaded_at"] >= manifest[row["id"]]["downloaded_at"]:
                manifest[row["id"]] = row
    newest: dict[str, dict[str, Any]] = {}
    for f in sorted((dest / "scores" / detector).glob("*.parquet")):
        for row in pq.read_table(f).to_pylist():
            if row["sha256"] not in newest or row["submitted_at"] >= newest[row["sha256"]]["submitted_at"]:
                newest[row["sha256"]] = row
    out = []
    for row in newest.values():
        item = manifest.get(row["id"])
        if item and item["sha256"] == row["sha256"] and row["status"] == "ok" and row["p_fake"] is not None:
            out.append((item | {"cell": f"{item['skin_tone']}/{item['gender']}"}, row["p_fake"]))
    return out


def _sk(pairs: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    y = np.array([item["kind"] == "fake" for item, _ in pairs], dtype=int)
    p = np.array([s for _, s in pairs])
    out: dict[str, Any] = {"n": len(y), "n_fake": int(y.sum()), "acc": accuracy_score(y, p > 0.5)}
    out["tpr"] = float(np.mean(p[y == 1] > 0.5)) if y.sum() else None
    out["fpr"] = float(np.mean(p[y == 0] > 0.5)) if (y == 0).sum() else None
    if 0 < y.sum() < len(y):
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        out |= {"auc": roc_auc_score(y, p), "ap": average_precision_score(y, p),
                "eer": fpr[np.nanargmin(np.abs((1 - tpr) - fpr))], "tpr_at_fpr_1": tpr[fpr <= 0.01 + 1e-12].max(),
                "tpr_at_fpr_5": tpr[fpr <= 0.05 + 1e-12].max(), "fpr_at_tpr_95": fpr[tpr >= 0.95 - 1e-12].min()}
    else:
        out |= dict.fromkeys(("auc", "ap", "eer", "tpr_at_fpr_1", "tpr_at_fpr_5", "fpr_at_tpr_95"))
    return out


def _check(ours: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        assert ours[key] == (None if value is None else pytest.approx(value, abs=1e-12)), key


@pytest.fixture(scope="module")
def report(synthetic_dest: Path) -> Path:
    return build_report(synthetic_dest, resamples=RESAMPLES)


@pytest.fixture(scope="module")
def doc(report: Path) -> dict[str, Any]:
    return json.loads((report / "metrics.json").read_text())


def test_counts_show_every_exclusion(doc: dict[str, Any]) -> None:
    counts = doc["results"]["alpha"]["counts"]
    assert counts["manifest_items"] == 168 and counts["score_rows"] == 171 and counts["scores_newest"] == 170
    assert counts["excluded"] == {"stale": 1, "status_error": 1, "no_p_fake": 1, "unknown_id": 1}
    assert counts["scored"] == 166 and counts["unscored_items"] == 0
    assert doc["detectors"] == ["alpha", "beta"] and doc["report"] == "alpha-vs-beta"


@pytest.mark.parametrize("detector", ["alpha", "beta"])
def test_metrics_overall_and_per_group_match_sklearn(doc: dict[str, Any], synthetic_dest: Path, detector: str) -> None:
    pairs = _usable(synthetic_dest, detector)
    result = doc["results"][detector]
    assert result["counts"]["scored"] == len(pairs)
    _check(result["overall"], _sk(pairs))
    for dim in ("perturbation", "layer", "skin_tone", "gender", "cell"):
        values = {item[dim] for item, _ in pairs}
        assert set(result["groups"][dim]) == values
        for value in values:
            _check(result["groups"][dim][value], _sk([(i, p) for i, p in pairs if i[dim] == value]))
    for gen in ("stylegan2", "sdxl-1.0"):   # its fakes plus every real
        expected = _sk([(i, p) for i, p in pairs if i["generator"] == gen or i["kind"] == "real"])
        _check(result["groups"]["generator"][gen], expected)
        assert expected["auc"] is not None


def test_paired_collapse_matches_hand_computation(doc: dict[str, Any], synthetic_dest: Path) -> None:
    pairs = _usable(synthetic_dest, "alpha")
    clean = {(i["kind"], i["base_id"]): p for i, p in pairs if i["perturbation"] == "clean"}
    for kind in ("fake", "real"):
        for pert in ("jpeg_q30", "blur_2", "fb_pipeline"):
            deltas = [p - clean[(i["kind"], i["base_id"])] for i, p in pairs
                      if i["kind"] == kind and i["perturbation"] == pert and (kind, i["base_id"]) in clean]
            got = doc["results"]["alpha"]["collapse"][kind][pert]
            assert got["n"] == len(deltas)
            assert got["mean"] == pytest.approx(statistics.fmean(deltas), abs=1e-12)
            assert got["median"] == pytest.approx(statistics.median(deltas), abs=1e-12)
            assert got["mean_ci"][0] <= got["mean"] <= got["mean_ci"][1]
    assert doc["results"]["alpha"]["collapse"]["fake"]["fb_pipeline"]["mean"] < -0.2  # the built-in collapse


def test_fairness_gaps_are_max_minus_min_times_100(doc: dict[str, Any]) -> None:
    for result in doc["results"].values():
        for dim, gaps in result["fairness"].items():
            for metric, gap in gaps.items():
                values = {g: m[metric] for g, m in result["groups"][dim].items() if m[metric] is not None}
                assert gap["gap"] == pytest.approx((max(values.values()) - min(values.values())) * 100)
                assert gap["max"][1] == max(values.values()) and gap["min"][1] == min(values.values())
    assert doc["results"]["alpha"]["fairness"]["skin_tone"]["fpr"]["max"][0] == "dark"   # the built-in bias


def test_headline_names_the_largest_auc_drop(doc: dict[str, Any]) -> None:
    for name, result in doc["results"].items():
        per = result["groups"]["perturbation"]
        worst = max((p for p in per if p != "clean"), key=lambda p: per["clean"]["auc"] - per[p]["auc"])
        assert result["headline"]["condition"] == worst
        assert result["headline"]["sentence"].startswith(f"{name} loses most under {worst}: AUC")


def test_report_files_are_deterministic_round_trip_and_self_contained(report: Path, synthetic_dest: Path,
                                                                       doc: dict[str, Any]) -> None:
    text = (report / "metrics.json").read_text()
    assert json.loads(json.dumps(doc)) == doc
    html = (report / "report.html").read_text()
    again = build_report(synthetic_dest, resamples=RESAMPLES, name="again")
    assert (again / "metrics.json").read_text() == text.replace('"alpha-vs-beta"', '"again"')
    assert (again / "report.html").read_text() == html.replace("alpha-vs-beta", "again")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "url(" not in html and "@import" not in html and "<script" not in html
    assert html.count('src="data:image/png;base64,') == 7
    md = (report / "report.md").read_text()
    for sentence in (r["headline"]["sentence"] for r in doc["results"].values()):   # names are short already
        assert sentence in md and sentence.replace("→", "&rarr;") in html.replace("→", "&rarr;")
    assert "Where each detector loses most" in md and "Is one better? (DeLong" in html
    assert "| perturbation | alpha n f/r | alpha AUC | alpha TPR@1%FPR | alpha FPR@95%TPR | beta n f/r |" in md


def test_single_detector_and_errors(synthetic_dest: Path, tmp_path: Path) -> None:
    folder = build_report(synthetic_dest, ["beta"], resamples=RESAMPLES)
    assert folder == synthetic_dest / "reports" / "beta"
    assert list(json.loads((folder / "metrics.json").read_text())["results"]) == ["beta"]
    assert "nothing to compare" in (folder / "report.html").read_text()
    with pytest.raises(UsageError, match="no detector scores"):
        build_report(tmp_path)
    with pytest.raises(UsageError, match="no scores for detector gamma"):
        build_report(synthetic_dest, ["gamma"])
    with pytest.raises(UsageError, match="not a plain folder name"):
        build_report(synthetic_dest, ["beta"], name="../escape")


def test_cli_verb_prints_json(synthetic_dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["report", str(synthetic_dest), "--detector", "alpha", "--name", "cli", "--json"])
    assert run_report_verb(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(synthetic_dest / "reports" / "cli")
    assert out["headlines"]["alpha"].startswith("alpha loses most under")


def test_threshold_drift_and_heatmap_match_direct_computation(doc: dict[str, Any], synthetic_dest: Path) -> None:
    pairs = _usable(synthetic_dest, "alpha")
    cal = doc["results"]["alpha"]["calibration"]
    clean = [(i["kind"] == "fake", p) for i, p in pairs if i["perturbation"] == "clean"]
    reals = [p for fake, p in clean if not fake]
    t = min(s for _, s in clean if sum(r > s for r in reals) <= 0.01 * len(reals))
    assert cal["clean_threshold"] == t
    for pert in ("clean", "jpeg_q30", "blur_2", "fb_pipeline"):
        group = [(i["kind"] == "fake", p) for i, p in pairs if i["perturbation"] == pert]
        got = cal["by_perturbation"][pert]
        assert got["fp"] == sum(p > t for fake, p in group if not fake)
        assert got["tp"] == sum(p > t for fake, p in group if fake)
        assert got["fpr"] == pytest.approx(got["fp"] / sum(not fake for fake, _ in group))
        for gen in ("stylegan2", "sdxl-1.0"):
            cell = [(i, p) for i, p in pairs if i["perturbation"] == pert and (i["generator"] == gen or
                                                                              i["kind"] == "real")]
            assert doc["results"]["alpha"]["heatmap"][gen][pert]["auc"] == pytest.approx(_sk(cell)["auc"])


def test_paired_comparison_uses_the_items_both_detectors_scored(doc: dict[str, Any], synthetic_dest: Path) -> None:
    alpha = {i["id"]: (i, p) for i, p in _usable(synthetic_dest, "alpha")}
    beta = {i["id"]: (i, p) for i, p in _usable(synthetic_dest, "beta")}
    shared = sorted(set(alpha) & set(beta))
    [pair] = doc["comparisons"]
    assert (pair["a"], pair["b"], pair["items"]) == ("alpha", "beta", len(shared))
    y = [alpha[k][0]["kind"] == "fake" for k in shared]
    whole = pair["conditions"]["all"]
    assert whole["auc_a"] == pytest.approx(roc_auc_score(y, [alpha[k][1] for k in shared]))
    assert whole["auc_b"] == pytest.approx(roc_auc_score(y, [beta[k][1] for k in shared]))
    assert whole["ci"][0] < whole["diff"] < whole["ci"][1] and 0 <= whole["p"] <= whole["p_holm"] <= 1
    assert set(pair["conditions"]) == {"all", "clean", "jpeg_q30", "blur_2", "fb_pipeline"}


def test_degenerate_detectors_still_give_a_report(degenerate_dest: Path) -> None:
    """A detector with no usable verdict, and one that scored only perturbed fakes (no clean, no reals)."""
    for detectors in (["dead"], ["fakes"], ["dead", "fakes", "alpha"]):
        folder = build_report(degenerate_dest, detectors, resamples=20)
        doc = json.loads((folder / "metrics.json").read_text())
        for name in detectors:
            cal = doc["results"][name]["calibration"]
            assert name == "alpha" or cal["clean_threshold"] is None
            assert name != "dead" or cal["reliability"]["ece"] is None
        assert "Detector report" in (folder / "report.html").read_text()
        assert "| detector |" in (folder / "report.md").read_text()
