"""Every table of the report as plain data, built once and written to both report.md and report.html.

Layout rule (so every table fits a 1400 px window with three detectors): a table either has one
row per detector, or repeats a few columns per detector (at most four) and is split into several
tables of at most ``max_groups`` detectors (or detector pairs) each, so its width is bounded
whatever the number of detectors. Everything else (every metric of every group) goes to one
full-width table per detector at the end of the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirror.evaluation.groups import DIMENSIONS, FAIRNESS_DIMENSIONS
from mirror.evaluation.names import display_names

__all__ = ["Cell", "Table", "tables", "num", "ci_text", "fairness_worst"]

Cell = tuple[str, str]  # (value, small print such as a CI); small print may be ""
_FULL = (("auc", "AUC"), ("eer", "EER"), ("ap", "AP"), ("acc", "ACC@0.5"), ("tpr", "TPR@0.5"), ("fpr", "FPR@0.5"),
         ("tpr_at_fpr_1", "TPR@1%FPR"), ("tpr_at_fpr_5", "TPR@5%FPR"), ("fpr_at_tpr_95", "FPR@95%TPR"))
_COMPARE = (("auc", "AUC"), ("tpr_at_fpr_1", "TPR@1%FPR"), ("fpr_at_tpr_95", "FPR@95%TPR"))
_TITLES = {"perturbation": "By perturbation", "layer": "By layer", "generator": "By generator (its fakes vs all reals)",
           "skin_tone": "By skin tone", "gender": "By gender", "cell": "By cell (skin tone / gender)"}


@dataclass(frozen=True)
class Table:
    """A titled table. With ``groups`` its ``columns`` repeat once per group (a detector or a pair)."""

    key: str
    title: str
    first: str                  # header of the row-label column
    columns: tuple[str, ...]    # value columns (of one group when there are groups)
    rows: list[tuple[str, list[Cell]]]
    groups: tuple[str, ...] = ()
    tips: tuple[str, ...] = ()  # full name of each group (tooltips), same order as groups
    note: str = ""
    heat: bool = False          # colour value cells by their number (AUC heat maps)


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ci_text(ci: list[float] | None, digits: int = 2) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _metric(m: dict[str, Any] | None, key: str) -> Cell:
    return ("", "") if m is None else (num(m[key]), ci_text(m[f"{key}_ci"]))


def _n(m: dict[str, Any] | None) -> Cell:
    return ("", "") if m is None else (f"{m['n_fake']}/{m['n_real']}", "")


def _split(table: Table, max_groups: int) -> list[Table]:
    """The same rows in several tables of at most ``max_groups`` groups each (keys key, key-2, ...)."""
    if len(table.groups) <= max_groups:
        return [table]
    per, out = len(table.columns), []
    for part, start in enumerate(range(0, len(table.groups), max_groups)):
        stop = min(start + max_groups, len(table.groups))
        rows = [(label, cells[start * per:stop * per]) for label, cells in table.rows]
        out.append(Table(table.key if part == 0 else f"{table.key}-{part + 1}",
                         table.title if part == 0 else f"{table.title} (continued)", table.first, table.columns,
                         rows, table.groups[start:stop], table.tips[start:stop], table.note, table.heat))
    return out


def fairness_worst(result: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """(dimension, metric, gap record) of the largest fairness gap of one detector, or None."""
    found = [(g["gap"], dim, metric, g) for dim in FAIRNESS_DIMENSIONS
             for metric, g in result["fairness"][dim].items() if g["gap"] is not None]
    if not found:
        return None
    _, dim, metric, g = max(found, key=lambda f: f[0])
    return dim, metric, g


def _summary(doc: dict[str, Any], short: dict[str, str]) -> Table:
    rows = []
    for name, r in doc["results"].items():
        o, head = r["overall"], r["headline"]
        per = r["groups"]["perturbation"]
        cond = head["condition"]
        if cond is None:
            worst: list[Cell] = [("–", ""), ("–", "")]
        else:
            clean_auc = per.get("clean", {}).get("auc")
            there = per.get(cond, {}).get("auc")
            move = r["collapse"]["fake"].get(cond, {}).get("mean")
            worst = [(cond, f"AUC {num(clean_auc)} → {num(there)}"), (("–" if move is None else f"{move:+.3f}"), "")]
        gap = fairness_worst(r)
        fair: Cell = ("–", "") if gap is None else (
            f"{gap[1].upper()} {gap[2]['gap']:.1f} pts by {gap[0].replace('_', ' ')}",
            f"{gap[2]['max'][0]} {gap[2]['max'][1]:.2f} vs {gap[2]['min'][0]} {gap[2]['min'][1]:.2f}")
        rows.append((short[name], [_metric(o, "auc"), _metric(o, "tpr_at_fpr_1"), _metric(o, "fpr_at_tpr_95"),
                                   (num(r["calibration"]["reliability"]["ece"]), ""), *worst, fair]))
    return Table("summary", "Summary", "detector", ("AUC", "TPR@1%FPR", "FPR@95%TPR", "ECE", "worst condition",
                                                    "fakes' ΔP(fake) there", "largest fairness gap"), rows)


def _overall(doc: dict[str, Any], short: dict[str, str]) -> Table:
    rows = [(short[n], [_n(r["overall"])] + [_metric(r["overall"], k) for k, _ in _FULL])
            for n, r in doc["results"].items()]
    return Table("overall", "All scored items: every metric, with 95 % CIs", "detector",
                 ("n fake/real",) + tuple(label for _, label in _FULL), rows)


def _paired(doc: dict[str, Any], short: dict[str, str]) -> list[Table]:
    pairs = doc["comparisons"]
    if not pairs:
        return []
    conditions = list(dict.fromkeys(c for p in pairs for c in p["conditions"]))
    rows = []
    for cond in conditions:
        cells: list[Cell] = []
        for p in pairs:
            c = p["conditions"].get(cond)
            if c is None or c["diff"] is None:
                cells += [("–", ""), ("–", "")]
                continue
            cells += [(f"{c['diff']:+.3f}", ci_text(c["ci"], 3)),
                      (f"{c['p']:.3f}" if c["p"] >= 0.001 else "<0.001", f"Holm {c['p_holm']:.3f}")]
        rows.append((cond, cells))
    table = Table("paired_auc", "ΔAUC = AUC(first) − AUC(second) on the items both scored (DeLong)", "condition",
                  ("ΔAUC [95 % CI]", "p"), rows, tuple(f"{short[p['a']]} − {short[p['b']]}" for p in pairs),
                  tuple(f"{p['a']} − {p['b']} ({p['items']} items)" for p in pairs))
    return _split(table, 3)


def _by_dimension(doc: dict[str, Any], names: tuple[str, ...], short: dict[str, str], dim: str) -> list[Table]:
    results = doc["results"]
    values = list(dict.fromkeys(v for n in names for v in results[n]["groups"][dim]))
    rows = [(v, [c for n in names for c in [_n(results[n]["groups"][dim].get(v))]
                 + [_metric(results[n]["groups"][dim].get(v), k) for k, _ in _COMPARE]]) for v in values]
    table = Table(dim, _TITLES[dim], dim.replace("_", " "), ("n f/r",) + tuple(lbl for _, lbl in _COMPARE), rows,
                  tuple(short[n] for n in names), names)
    return _split(table, 4)


def _collapse(doc: dict[str, Any], names: tuple[str, ...], short: dict[str, str], kind: str) -> list[Table]:
    results = doc["results"]
    what = ("fakes: negative mean = the detector collapses" if kind == "fake"
            else "reals: positive mean = false-alarm drift")
    rows = []
    for p in dict.fromkeys(p for n in names for p in results[n]["collapse"][kind]):
        cells: list[Cell] = []
        for n in names:
            s = results[n]["collapse"][kind].get(p)
            cells += [("", "")] * 4 if s is None else [(num(s["mean"]), ci_text(s["mean_ci"])), (num(s["median"]), ""),
                                                       (str(s["n"]), ""), (str(s["flips"]), "")]
        rows.append((p, cells))
    table = Table(f"collapse_{kind}", f"Paired collapse per lineage, {what}", "perturbation",
                  ("mean Δ", "median Δ", "pairs", "flips@0.5"), rows, tuple(short[n] for n in names), names)
    return _split(table, 4)


def _calibration(doc: dict[str, Any], names: tuple[str, ...], short: dict[str, str]) -> list[Table]:
    results = doc["results"]
    rows = []
    for n in names:
        cal = results[n]["calibration"]
        per = {p: m for p, m in cal["by_perturbation"].items() if p != "clean"}
        clean = cal["by_perturbation"].get("clean")
        hi = max((p for p in per if per[p]["fpr"] is not None), key=lambda p: per[p]["fpr"], default=None)
        lo = min((p for p in per if per[p]["tpr"] is not None), key=lambda p: per[p]["tpr"], default=None)
        rows.append((short[n], [(num(cal["reliability"]["ece"]), ""), (num(cal["clean_threshold"], 4), ""),
                                _rate(clean, "fpr"), _rate(clean, "tpr"),
                                ("–", "") if hi is None else (num(per[hi]["fpr"]), hi),
                                ("–", "") if lo is None else (num(per[lo]["tpr"]), lo)]))
    summary = Table("calibration", "Calibration and the clean-data 1 % FPR threshold", "detector",
                    ("ECE", "threshold t", "clean FPR", "clean TPR", "highest FPR at t", "lowest TPR at t"), rows)
    perts = list(dict.fromkeys(p for n in names for p in results[n]["calibration"]["by_perturbation"]))
    drift = [(p, [c for n in names for c in (
        _rate(results[n]["calibration"]["by_perturbation"].get(p), "fpr"),
        _rate(results[n]["calibration"]["by_perturbation"].get(p), "tpr"),
        (num((results[n]["calibration"]["by_perturbation"].get(p) or {}).get("ece")), ""))]) for p in perts]
    table = Table("drift", "Threshold drift: each detector's clean 1 % FPR threshold applied under every perturbation",
                  "perturbation", ("FPR at t", "TPR at t", "ECE"), drift, tuple(short[n] for n in names), names)
    return [summary, *_split(table, 4)]


def _rate(m: dict[str, Any] | None, key: str) -> Cell:
    if m is None or m[key] is None:
        return ("–", "")
    hits, total = (m["fp"], m["n_real"]) if key == "fpr" else (m["tp"], m["n_fake"])
    return (num(m[key]), f"{hits}/{total}")


def _heatmaps(doc: dict[str, Any], short: dict[str, str]) -> list[Table]:
    out = []
    for k, (name, r) in enumerate(doc["results"].items(), start=1):
        gens = list(r["heatmap"])
        perts = list(dict.fromkeys(p for g in gens for p in r["heatmap"][g]))
        rows = [(p, [(num(r["heatmap"][g].get(p, {}).get("auc")), "") for g in gens]) for p in perts]
        out.append(Table(f"heatmap-{k}", short[name], "perturbation", tuple(gens), rows, tips=(name,), heat=True))
    return out


def _full(doc: dict[str, Any], short: dict[str, str]) -> list[Table]:
    out = []
    for k, (name, r) in enumerate(doc["results"].items(), start=1):
        rows = [("all", [_n(r["overall"])] + [_metric(r["overall"], key) for key, _ in _FULL])]
        for dim in DIMENSIONS:
            rows += [(f"{dim.replace('_', ' ')} = {v}", [_n(m)] + [_metric(m, key) for key, _ in _FULL])
                     for v, m in r["groups"][dim].items()]
        out.append(Table(f"full-{k}", f"Every metric per group: {short[name]}", "group",
                         ("n f/r",) + tuple(label for _, label in _FULL), rows, tips=(name,)))
    return out


def _fairness(doc: dict[str, Any], names: tuple[str, ...], short: dict[str, str]) -> list[Table]:
    rows = []
    for dim in FAIRNESS_DIMENSIONS:
        for metric in ("auc", "fpr", "tpr"):
            cells: list[Cell] = []
            for n in names:
                g = doc["results"][n]["fairness"][dim][metric]
                cells += [(num(g["gap"], 1), ""),
                          ("–", "") if g["max"] is None else (g["max"][0], num(g["max"][1])),
                          ("–", "") if g["min"] is None else (g["min"][0], num(g["min"][1]))]
            rows.append((f"{dim.replace('_', ' ')}: {metric.upper()}", cells))
    table = Table("fairness", "Fairness gaps, (max − min) × 100 across groups", "across", ("gap", "max group",
                                                                                          "min group"),
                  rows, tuple(short[n] for n in names), names)
    return _split(table, 4)


def _counts(doc: dict[str, Any], names: tuple[str, ...], short: dict[str, str]) -> Table:
    results = doc["results"]
    rows: list[tuple[str, list[Cell]]] = []
    excluded = sorted({k for n in names for k in results[n]["counts"]["excluded"]})
    for key in ["manifest_items", "score_rows", "scores_newest", "scored", "unscored_items"]:
        rows.append((key.replace("_", " "), [(str(results[n]["counts"][key]), "") for n in names]))
    for key in excluded:
        rows.append((f"excluded: {key.replace('_', ' ')}",
                     [(str(results[n]["counts"]["excluded"].get(key, 0)), "") for n in names]))
    return Table("counts", "What was scored and what was left out", "", ("rows",), rows,
                 tuple(short[n] for n in names), names)


def tables(doc: dict[str, Any]) -> dict[str, list[Table]]:
    """Every table of the report by section key, in reading order."""
    names = tuple(doc["results"])
    short = display_names(names)
    return {
        "summary": [_summary(doc, short)],
        "overall": [_overall(doc, short)],
        "paired": _paired(doc, short),
        "robustness": _by_dimension(doc, names, short, "perturbation") + _by_dimension(doc, names, short, "layer"),
        "heatmaps": _heatmaps(doc, short),
        "collapse": _collapse(doc, names, short, "fake") + _collapse(doc, names, short, "real"),
        "calibration": _calibration(doc, names, short),
        "generators": _by_dimension(doc, names, short, "generator"),
        "fairness": (_by_dimension(doc, names, short, "cell") + _fairness(doc, names, short)
                     + _by_dimension(doc, names, short, "skin_tone") + _by_dimension(doc, names, short, "gender")),
        "full": _full(doc, short),
        "method": [_counts(doc, names, short)],
    }
