"""report.md and a self-contained report.html from the metrics document (the same dict as metrics.json).

Tables are built once as plain data (``Table``) and written twice, so the Markdown and the HTML
can never disagree. Detectors sit side by side: each table has one column group per detector.
The HTML has inline CSS and data-URI images only: it opens from a file, a mail attachment or an
air-gapped machine, and loads nothing from the network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from mirror.report.groups import DIMENSIONS, FAIRNESS_DIMENSIONS

__all__ = ["Table", "tables", "render_markdown", "render_html"]

Cell = tuple[str, str]  # (value, small print such as a CI); small print may be ""
_GROUP_COLUMNS = ("n fake/real", "AUC", "EER", "AP", "ACC@0.5", "TPR", "FPR")
_TITLES = {"perturbation": "By perturbation", "layer": "By layer", "generator": "By generator (its fakes vs all reals)",
           "skin_tone": "By skin tone", "gender": "By gender", "cell": "By cell (skin tone / gender)"}


@dataclass(frozen=True)
class Table:
    """A titled table whose value columns repeat once per detector."""

    key: str
    title: str
    first: str                  # header of the row-label column
    columns: tuple[str, ...]    # value columns of one detector
    detectors: tuple[str, ...]
    rows: list[tuple[str, list[Cell]]]


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None, digits: int = 2) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _metric_cells(m: dict[str, Any] | None) -> list[Cell]:
    if m is None:
        return [("", "")] * len(_GROUP_COLUMNS)
    return [(f"{m['n_fake']}/{m['n_real']}", "")] + [(_num(m[k]), _ci(m[f"{k}_ci"]))
                                                     for k in ("auc", "eer", "ap", "acc", "tpr", "fpr")]


def tables(doc: dict[str, Any]) -> list[Table]:
    """Every table of the report, in reading order."""
    results: dict[str, Any] = doc["results"]
    names = tuple(results)
    out = [Table("overall", "All scored items", "", _GROUP_COLUMNS, names,
                 [("all", [c for n in names for c in _metric_cells(results[n]["overall"])])])]
    for dim in DIMENSIONS:
        values = list(dict.fromkeys(v for n in names for v in results[n]["groups"][dim]))
        rows = [(v, [c for n in names for c in _metric_cells(results[n]["groups"][dim].get(v))]) for v in values]
        out.append(Table(dim, _TITLES[dim], dim.replace("_", " "), _GROUP_COLUMNS, names, rows))
    for kind, what in (("fake", "fakes: negative mean = the detector collapses"),
                       ("real", "reals: positive mean = false-alarm drift")):
        perts = list(dict.fromkeys(p for n in names for p in results[n]["collapse"][kind]))
        rows = []
        for p in perts:
            cells: list[Cell] = []
            for n in names:
                s = results[n]["collapse"][kind].get(p)
                cells += [("", "")] * 4 if s is None else [(_num(s["mean"], 3), _ci(s["mean_ci"])),
                                                           (_num(s["median"]), ""), (str(s["n"]), ""),
                                                           (str(s["flips"]), "")]
            rows.append((p, cells))
        out.append(Table(f"collapse_{kind}", f"Paired collapse per lineage, {what}", "perturbation",
                         ("mean Δ", "median Δ", "pairs", "flips@0.5"), names, rows))
    rows = []
    for dim in FAIRNESS_DIMENSIONS:
        for metric in ("auc", "fpr", "tpr"):
            cells = []
            for n in names:
                g = results[n]["fairness"][dim][metric]
                cells += [(_num(g["gap"], 1), ""),
                          ("–", "") if g["max"] is None else (g["max"][0], _num(g["max"][1])),
                          ("–", "") if g["min"] is None else (g["min"][0], _num(g["min"][1]))]
            rows.append((f"{dim.replace('_', ' ')}: {metric.upper()}", cells))
    out.append(Table("fairness", "Fairness gaps, (max − min) × 100 across groups", "across",
                     ("gap", "max group", "min group"), names, rows))
    count_rows: list[tuple[str, list[Cell]]] = []
    keys = ["manifest_items", "score_rows", "scores_newest", "scored", "unscored_items"]
    excluded = sorted({k for n in names for k in results[n]["counts"]["excluded"]})
    for key in keys + [f"excluded: {k}" for k in excluded]:
        cells = []
        for n in names:
            counts = results[n]["counts"]
            value = counts["excluded"].get(key.split(": ")[1], 0) if key.startswith("excluded") else counts[key]
            cells.append((str(value), ""))
        count_rows.append((key.replace("_", " "), cells))
    out.append(Table("counts", "What was scored and what was left out", "", ("rows",), names, count_rows))
    return out


def _md_table(t: Table) -> list[str]:
    head = [t.first] + [f"{d} {c}" if len(t.detectors) > 1 else c for d in t.detectors for c in t.columns]
    lines = [f'<a id="{t.key}"></a>', "", f"### {t.title}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for label, cells in t.rows:
        text = [f"{v} {s}".strip().replace("|", "\\|") for v, s in cells]
        lines.append("| " + " | ".join([label.replace("|", "\\|")] + text) + " |")
    return lines + [""]


def _settings_line(doc: dict[str, Any]) -> str:
    b = doc["settings"]["bootstrap"]
    return (f"Fake is the positive class; verdicts at p_fake > {doc['settings']['threshold']}. "
            f"95 % CIs: {b['resamples']} bootstrap resamples stratified by class (seed {b['seed']}), percentile "
            f"intervals. Generator G is scored on its fakes plus every real in scope; every other group uses its "
            f"own fakes and reals, and one-class groups have no AUC/EER/AP.")


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown (tables only; figures live in report.html)."""
    lines = [f"# Detector report: {doc['report']}", "", f"Destination `{doc['dest']}`; detectors: "
             + ", ".join(f"`{d}`" for d in doc["detectors"]) + ".", "", "## Headline", ""]
    lines += [f"- {r['headline']['sentence']}" for r in doc["results"].values()]
    lines += ["", _settings_line(doc), "", "Figures: see `report.html` in this folder.", ""]
    for t in tables(doc):
        lines += _md_table(t)
    return "\n".join(lines)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;margin:24px auto;
max-width:1220px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dde6}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#5b6475}
.headline{background:#fff6e5;border-left:4px solid #e8a33d;padding:8px 14px;margin:12px 0}
.headline li{margin:4px 0}table{border-collapse:collapse;margin:4px 0 12px;font-size:12.5px}
th,td{border:1px solid #dfe3ea;padding:2px 5px;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f2f4f8}td:first-child,th:first-child{text-align:left}th.det{background:#e4e9f2;text-align:center}
.sep{border-left:2px solid #9aa5b8}
td small{display:block;color:#7a8394;font-size:10.5px}tr:nth-child(even) td{background:#fafbfc}
img{max-width:100%;display:block;margin:8px 0}.wrap{overflow-x:auto}
"""


def _html_table(t: Table) -> str:
    e = html.escape
    head = ""
    if len(t.detectors) > 1 or t.key != "counts":
        head = "<tr><th></th>" + "".join(f'<th class="det sep" colspan="{len(t.columns)}">{e(d)}</th>'
                                         for d in t.detectors) + "</tr>"
    per = len(t.columns)
    sep = [' class="sep"' if k % per == 0 else "" for k in range(per * len(t.detectors))]
    head += f"<tr><th>{e(t.first)}</th>" + "".join(f"<th{sep[k]}>{e(c)}</th>" for k, c in
                                                   enumerate(c for _ in t.detectors for c in t.columns)) + "</tr>"
    body = "".join("<tr><td>" + e(label) + "</td>" + "".join(
        f"<td{sep[k]}>{e(v)}" + (f"<small>{e(s)}</small>" if s else "") + "</td>" for k, (v, s) in enumerate(cells))
        + "</tr>" for label, cells in t.rows)
    return f'<h3 id="{e(t.key)}">{e(t.title)}</h3><div class="wrap"><table>{head}{body}</table></div>'


def render_html(doc: dict[str, Any], figures: dict[str, str]) -> str:
    """One HTML file with inline CSS and data-URI figures keyed by the table they illustrate."""
    e = html.escape
    by_key = {t.key: t for t in tables(doc)}
    headline = "".join(f"<li>{e(r['headline']['sentence'])}</li>" for r in doc["results"].values())

    def section(title: str, keys: list[str]) -> str:
        parts = [f"<h2>{e(title)}</h2>"]
        for key in keys:
            if key in figures:
                parts.append(f'<img alt="{e(key)} figure" src="{figures[key]}">')
            if key in by_key:
                parts.append(_html_table(by_key[key]))
        return "".join(parts)

    body = [f"<h1>Detector report: {e(doc['report'])}</h1>",
            f'<p class="meta">Destination <code>{e(doc["dest"])}</code> · detectors: '
            + ", ".join(f"<b>{e(d)}</b>" for d in doc["detectors"]) + "</p>",
            f'<div class="headline"><b>Where each detector loses most</b><ul>{headline}</ul></div>',
            f'<p class="meta">{e(_settings_line(doc))}</p>',
            section("Overall", ["roc", "overall"]),
            section("Robustness by condition", ["perturbation", "layer"]),
            section("Paired collapse per lineage", ["collapse_fake", "collapse_real"]),
            section("Generators", ["generator"]),
            section("Fairness", ["cell", "fairness", "skin_tone", "gender"]),
            section("Counts", ["counts"])]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Detector report: {e(doc['report'])}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
