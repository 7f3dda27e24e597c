"""report.md and a self-contained report.html from the metrics document (the same dict as metrics.json).

Tables come from ``tables.tables`` (built once, written twice, so the two files cannot disagree).
The HTML has inline CSS and data-URI images only, and no script: it opens from a file, a mail
attachment or an air-gapped machine, and loads nothing from the network. Its first screen is a
summary (one row per detector) beside a table of contents; every section has an anchor.
"""

from __future__ import annotations

import html
from typing import Any

from mirror.evaluation.names import display_names
from mirror.evaluation.tables import Table, ci_text, tables
from mirror.evaluation.webpage import CSS, gallery_html, heat_colour

__all__ = ["SECTIONS", "method_notes", "headlines", "render_markdown", "render_html"]

# (anchor, title, figures before the tables, intro); the tables of a section are tables(doc)[anchor]
SECTIONS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("summary", "Summary", (), ""),
    ("overall", "Overall and operating points", ("roc",),
     "Deployed detectors run at a fixed low false-positive rate: TPR at 1 % FPR says how many fakes are caught "
     "there, FPR at 95 % TPR what catching nearly all of them costs in false alarms."),
    ("paired", "Is one detector better than another?", (),
     "DeLong's test on the items both detectors scored, per condition. A difference whose CI spans 0 is not a "
     "win; the Holm p-value accounts for the number of conditions and pairs tested."),
    ("robustness", "Robustness by condition", ("perturbation",), ""),
    ("heatmaps", "Generator × perturbation AUC", (),
     "AUC of each generator's fakes against the reals under each perturbation; one map per detector."),
    ("collapse", "Paired collapse per lineage", ("collapse_fake", "collapse_real"),
     "Each perturbed image against its own clean version (same base image): the change of P(fake)."),
    ("calibration", "Calibration and threshold drift", ("calibration",),
     "Left: reliability (fraction of fakes per P(fake) bin). Right: P(fake) of fakes (up) and reals (down) per "
     "condition; the dashed line is each detector's threshold t for 1 % FPR on clean data."),
    ("failures", "Failures you can see", (), ""),
    ("generators", "Generators", ("generator",), ""),
    ("fairness", "Fairness", ("cell",), ""),
    ("full", "Every metric per detector", (),
     "Every metric of every group with its 95 % CI, one table per detector (click to open)."),
    ("method", "Counts and method", (), ""),
)


def method_notes(doc: dict[str, Any]) -> list[str]:
    """The definitions a reader needs to compare these figures with other benchmarks."""
    s, b = doc["settings"], doc["settings"]["bootstrap"]
    names = display_names(doc["detectors"])
    notes = [
        f"Fake is the positive class. ACC/TPR/FPR@0.5 call an image fake when P(fake) > {s['threshold']}.",
        "EER: nearest ROC point, not interpolated: the FPR at the ROC point (one per distinct score) where "
        "|FNR − FPR| is smallest, the first such point (DeepfakeBench's definition). An interpolated EER can "
        "differ by up to one ROC step.",
        "TPR@1%FPR and TPR@5%FPR: the highest TPR of a ROC point whose FPR is at most the target; FPR@95%TPR: the "
        "lowest FPR of a point whose TPR is at least 95 %. With fewer than 100 reals in a group, 1 % FPR means no "
        "false alarm at all.",
        f"95 % CIs: {b['resamples']} bootstrap resamples stratified by class (seed {b['seed']}), percentile "
        "intervals.",
        "ECE: 10 equal-width P(fake) bins, Σ (bin share) × |fraction fake − mean P(fake)|, at this corpus's "
        "fake:real mix.",
        "Threshold t: the lowest clean P(fake) level at which calling P(fake) > t fake flags at most 1 % of clean "
        "reals; it is then applied unchanged under every perturbation.",
        "Paired test: DeLong (1988) on the items both detectors scored; 95 % CI = ΔAUC ± 1.96 SE; Holm-adjusted "
        "p over every test in the report.",
        "Generator G is scored on its fakes plus every real in scope; every other group uses its own fakes and "
        "reals, and one-class groups have no AUC/EER/AP or operating points.",
        "Fairness gap: (max − min) × 100 across the groups where the metric is defined.",
    ]
    long = [f"{short} = {full}" for full, short in names.items() if short != full]
    if long:
        notes.append("Detector names: " + "; ".join(long) + ".")
    return notes


def _intro(doc: dict[str, Any], key: str, intro: str) -> str:
    if key == "paired" and not doc["comparisons"]:
        return "One detector in this report: nothing to compare. Name several with --detector to test them."
    return intro


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def headlines(doc: dict[str, Any]) -> list[str]:
    """Each detector's headline sentence, naming it by its short display name."""
    names = display_names(doc["detectors"])
    out = []
    for name, r in doc["results"].items():
        sentence = r["headline"]["sentence"]
        out.append(names[name] + sentence[len(name):] if sentence.startswith(name) else sentence)
    return out


def _verdicts(doc: dict[str, Any]) -> list[str]:
    names = display_names(doc["detectors"])
    out = []
    for p in doc["comparisons"]:
        c = p["conditions"]["all"]
        a, b = names[p["a"]], names[p["b"]]
        if c["diff"] is None:
            continue
        better = a if c["diff"] > 0 else b
        verdict = (f"{better} is better" if c["p_holm"] is not None and c["p_holm"] < 0.05
                   else "no significant difference")
        out.append(f"{a} vs {b} on all {p['items']} shared items: ΔAUC {c['diff']:+.3f} {ci_text(c['ci'], 3)}, "
                   f"p {_p(c['p'])} (Holm {_p(c['p_holm'])}): {verdict}.")
    return out


# -- Markdown ---------------------------------------------------------------------------------------

def _md_table(t: Table) -> list[str]:
    head = [t.first] + ([f"{g} {c}" for g in t.groups for c in t.columns] if t.groups else list(t.columns))
    lines = [f'<a id="t-{t.key}"></a>', "", f"### {t.title}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for label, cells in t.rows:
        text = [f"{v} {s}".strip().replace("|", "\\|") for v, s in cells]
        lines.append("| " + " | ".join([label.replace("|", "\\|")] + text) + " |")
    return lines + [""]


def _md_gallery(doc: dict[str, Any]) -> list[str]:
    names = display_names(doc["detectors"])
    lines = []
    for name, r in doc["results"].items():
        g = r["gallery"]
        lines += [f"### {names[name]}", ""]
        for title, entries in (("Fakes scored most real", g["fakes_scored_real"]),
                               ("Reals scored most fake", g["reals_scored_fake"])):
            lines.append(f"{title}:")
            lines += [f"- P(fake) {e['p_fake']:.3f} · {e['perturbation']} · {e['generator'] or 'real'} · {e['cell']} "
                      f"· [{e['id']}](../../{e['path']})" for e in entries]
            lines.append("")
        if g["pairs"]:
            lines.append(f"Worst condition {g['condition']}, clean → perturbed:")
            lines += [f"- {p['kind']} {p['base_id']}: P(fake) {p['clean']['p_fake']:.3f} → "
                      f"{p['perturbed']['p_fake']:.3f} ({p['delta']:+.3f})" for p in g["pairs"]]
            lines.append("")
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown (tables and lists; the figures live in report.html)."""
    by_section = tables(doc)
    lines = [f"# Detector report: {doc['report']}", "", f"Destination `{doc['dest']}`; detectors: "
             + ", ".join(f"`{d}`" for d in doc["detectors"]) + ". Figures: see `report.html` in this folder.", "",
             "Contents: " + " · ".join(f"[{title}](#{key})" for key, title, _, _ in SECTIONS), ""]
    for key, title, _, intro in SECTIONS:
        intro = _intro(doc, key, intro)
        lines += [f'<a id="{key}"></a>', "", f"## {title}", ""] + ([intro, ""] if intro else [])
        if key == "summary":
            table = _md_table(by_section[key][0])
            lines += table[:2] + table[4:]
            lines += ["Where each detector loses most:", ""] + [f"- {h}" for h in headlines(doc)] + [""]
            if doc["comparisons"]:
                lines += ["Is one better? (DeLong, all shared items):", ""] + [f"- {v}" for v in _verdicts(doc)]
            lines.append("")
            continue
        if key == "failures":
            lines += _md_gallery(doc)
            continue
        for t in by_section.get(key, []):
            lines += _md_table(t)
        if key == "method":
            lines += [f"- {note}" for note in method_notes(doc)] + [""]
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------------------

def _group_header(t: Table) -> str:
    e = html.escape
    tips = t.tips or t.groups
    return "<tr><th></th>" + "".join(f'<th class="det sep" colspan="{len(t.columns)}" title="{e(tip)}">{e(g)}</th>'
                                     for g, tip in zip(t.groups, tips, strict=True)) + "</tr>"


def _html_table(t: Table, heading: str | None = "h3") -> str:
    e = html.escape
    per = len(t.columns)
    width = per * max(1, len(t.groups))
    sep = [' class="sep"' if t.groups and k % per == 0 else "" for k in range(width)]
    head = _group_header(t) if t.groups else ""
    columns = [c for _ in (t.groups or ("",)) for c in t.columns]
    head += f"<tr><th>{e(t.first)}</th>" + "".join(f"<th{sep[k]}>{e(c)}</th>" for k, c in enumerate(columns)) + "</tr>"
    body = []
    for label, cells in t.rows:
        tds = []
        for k, (v, s) in enumerate(cells):
            style = f' style="background:{heat_colour(v)}"' if t.heat else ""
            tds.append(f"<td{sep[k]}{style}>{e(v)}" + (f"<small>{e(s)}</small>" if s else "") + "</td>")
        body.append(f"<tr><td>{e(label)}</td>{''.join(tds)}</tr>")
    tip = f' title="{e(t.tips[0])}"' if t.tips and not t.groups else ""
    title = f"<{heading}{tip}>{e(t.title)}</{heading}>" if heading else ""
    return f'{title}<table id="t-{e(t.key)}">{head}{"".join(body)}</table>'


def _summary_html(doc: dict[str, Any], summary: Table) -> str:
    e = html.escape
    toc = "".join(f'<li><a href="#{key}">{e(title)}</a></li>' for key, title, _, _ in SECTIONS[1:])
    bullets = "<b>Where each detector loses most</b><ul>" + "".join(f"<li>{e(h)}</li>" for h in headlines(doc))
    if doc["comparisons"]:
        bullets += "</ul><b>Is one better? (DeLong, all shared items)</b><ul>" + "".join(
            f"<li>{e(v)}</li>" for v in _verdicts(doc))
    bullets += "</ul>"
    return (f'<div class="top"><div class="sum">{_html_table(summary, None)}'
            f'<div class="headline">{bullets}</div></div>'
            f'<nav class="toc"><b>Contents</b><ol>{toc}</ol></nav></div>')


def render_html(doc: dict[str, Any], figures: dict[str, str], thumbs: dict[str, str | None]) -> str:
    """One HTML file: inline CSS, data-URI figures (by key) and gallery thumbnails (by item path)."""
    e = html.escape
    by_section = tables(doc)
    names = display_names(doc["detectors"])
    body = [f"<h1>Detector report: {e(doc['report'])}</h1>",
            f'<p class="meta">Destination <code>{e(doc["dest"])}</code> · detectors: '
            + ", ".join(f'<b title="{e(d)}">{e(names[d])}</b>' for d in doc["detectors"]) + "</p>"]
    for key, title, figs, intro in SECTIONS:
        body.append(f'<section id="{key}"><h2>{e(title)}</h2>')
        if key == "summary":
            body.append(_summary_html(doc, by_section["summary"][0]) + "</section>")
            continue
        intro = _intro(doc, key, intro)
        if intro:
            body.append(f'<p class="meta">{e(intro)}</p>')
        body += [f'<img alt="{e(f)} figure" src="{figures[f]}">' for f in figs if f in figures]
        if key == "failures":
            body.append(gallery_html(doc, thumbs, names))
        elif key == "full":
            body += [f'<details><summary title="{e(t.tips[0])}">{e(t.title)} ({len(t.rows)} rows)</summary>'
                     f"{_html_table(t, None)}</details>" for t in by_section[key]]
        elif key == "heatmaps":
            body.append('<div class="maps">' + "".join(f"<div>{_html_table(t, 'h4')}</div>"
                                                       for t in by_section[key]) + "</div>")
        else:
            body += [_html_table(t) for t in by_section.get(key, [])]
        if key == "method":
            body.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in method_notes(doc)) + "</ul>")
        body.append("</section>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Detector report: {e(doc['report'])}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")

