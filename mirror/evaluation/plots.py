"""The report's figures as PNG data URIs, so report.html is one self-contained file.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
pyplot: no global backend switch, no GUI, no shared state between reports built in one process.
PNG metadata is stripped so the same inputs give the same bytes. Legends sit outside the data
(below a ROC panel, above a bar chart) and detectors are named by their short display name.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mirror.evaluation.groups import Scored, ordered
from mirror.evaluation.metrics import roc_curve

__all__ = ["roc_figure", "metric_bars", "collapse_bars", "calibration_figure"]

WIDTH = 13.4        # inches at 96 dpi: 1286 px, the page's width less its margins
_PER_ROW = 4        # panels per row: four stay legible at that width


def _data_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _panels(count: int, height: float) -> tuple[Figure, list[Any]]:
    cols = min(_PER_ROW, count)
    rows = -(-count // cols)
    fig = Figure(figsize=(WIDTH * cols / _PER_ROW if rows == 1 else WIDTH, height * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for spare in grid[count:]:
        spare.set_visible(False)
    return fig, list(grid[:count])


def roc_figure(scored: dict[str, Scored], results: dict[str, Any], short: dict[str, str]) -> str:
    """Overall ROC per detector (first panel) and, for each detector, its ROC per layer."""
    fig, axes = _panels(1 + len(scored), 4.3)
    for name, data in scored.items():
        auc = results[name]["overall"]["auc"]
        if auc is not None:
            fpr, tpr = roc_curve(data.fake, data.p_fake)
            axes[0].plot(fpr, tpr, label=f"{short[name]} ({auc:.3f})")
    axes[0].set_title("ROC, all items (AUC)", fontsize=10)
    for ax, (name, data) in zip(axes[1:], scored.items(), strict=True):
        for layer, metrics in results[name]["groups"]["layer"].items():
            if metrics["auc"] is None:
                continue
            mask = data.columns["layer"] == layer
            fpr, tpr = roc_curve(data.fake[mask], data.p_fake[mask])
            ax.plot(fpr, tpr, label=f"{layer} ({metrics['auc']:.3f})")
        ax.set_title(f"{short[name]}: ROC by layer", fontsize=10)
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="0.75", linestyle=":", linewidth=1)
        ax.axvline(0.01, color="0.55", linestyle="--", linewidth=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="FPR (reals called fake)", ylabel="TPR (fakes caught)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    return _data_uri(fig)


def _bars(title: str, xlabel: str, labels: list[str], series: dict[str, list[tuple[float | None, Any]]],
          reference: float | None, xlim: tuple[float, float] | None = None) -> str:
    """Horizontal grouped bars with CI whiskers: one row per label, one bar per series (detector)."""
    fig = Figure(figsize=(WIDTH, 1.3 + 0.12 * len(labels) * max(1, len(series))), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / max(1, len(series))
    rows = np.arange(len(labels))
    for k, (name, values) in enumerate(series.items()):
        centre = [np.nan if v is None else v for v, _ in values]
        lo = [0.0 if v is None or ci is None else v - ci[0] for v, ci in values]
        hi = [0.0 if v is None or ci is None else ci[1] - v for v, ci in values]
        ax.barh(rows + k * height - 0.4 + height / 2, centre, height=height * 0.9, xerr=[lo, hi],
                label=name, capsize=2, error_kw={"linewidth": 0.8})
    if reference is not None:
        ax.axvline(reference, color="0.4", linestyle=":", linewidth=1)
    ax.set_yticks(rows, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11, loc="left", pad=24)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.grid(axis="x", color="0.9")
    ax.legend(fontsize=9, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(series), frameon=False,
              borderaxespad=0.2)
    return _data_uri(fig)


def metric_bars(results: dict[str, Any], dimension: str, short: dict[str, str], metric: str = "auc") -> str:
    """One metric per group of a dimension with its 95 % CI, detectors side by side."""
    labels = list(dict.fromkeys(v for r in results.values() for v in r["groups"][dimension]))
    series = {short[name]: [(r["groups"][dimension].get(v, {}).get(metric),
                             r["groups"][dimension].get(v, {}).get(f"{metric}_ci")) for v in labels]
              for name, r in results.items()}
    return _bars(f"{metric.upper()} by {dimension.replace('_', ' ')} (95 % bootstrap CI)", metric.upper(), labels,
                 series, 0.5 if metric == "auc" else None, (0.0, 1.0))


def collapse_bars(results: dict[str, Any], kind: str, short: dict[str, str]) -> str:
    """Mean paired change of p_fake from each base image's clean version, per perturbation."""
    labels = list(dict.fromkeys(p for r in results.values() for p in r["collapse"][kind]))
    series = {short[name]: [(r["collapse"][kind].get(p, {}).get("mean"), r["collapse"][kind].get(p, {}).get(
        "mean_ci")) for p in labels] for name, r in results.items()}
    what = "fakes (negative = collapse)" if kind == "fake" else "reals (positive = false-alarm drift)"
    return _bars(f"Paired change of P(fake) from clean, {what}", "mean Δ P(fake) (95 % CI)", labels, series, 0.0)


def _split_histograms(ax: Any, data: Scored, threshold: float | None, title: str) -> None:
    """One row per condition: fakes' P(fake) histogram upwards, reals' downwards, each scaled to its row."""
    pert = np.array(["unknown" if v is None else str(v) for v in data.columns["perturbation"]], dtype=object)
    conditions = ordered("perturbation", set(pert))
    edges = np.linspace(0, 1, 21)
    width = edges[1] - edges[0]
    for row, cond in enumerate(conditions):
        for kind, sign, colour in ((True, -1, "#d1495b"), (False, 1, "#2e86ab")):
            values = data.p_fake[(pert == cond) & (data.fake == kind)]
            if len(values) == 0:
                continue
            counts, _ = np.histogram(np.clip(values, 0, 1), edges)
            heights = 0.44 * counts / counts.max()
            ax.bar(edges[:-1] + width / 2, sign * heights, width=width * 0.95, bottom=row, color=colour,
                   linewidth=0, label=("fakes" if kind else "reals") if row == 0 else None)
        ax.axhline(row, color="0.85", linewidth=0.5)
    if threshold is not None:
        ax.axvline(threshold, color="0.2", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(conditions)), conditions, fontsize=8)
    ax.set(xlim=(0, 1), ylim=(max(len(conditions), 1) - 0.5, -0.5), xlabel="P(fake)")
    ax.set_title(title, fontsize=10)


def calibration_figure(scored: dict[str, Scored], results: dict[str, Any], short: dict[str, str]) -> str:
    """Reliability diagram of every detector, then one split-histogram panel per detector."""
    fig, axes = _panels(1 + len(scored), 6.4)
    rel = axes[0]
    rel.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    for name in scored:
        cal = results[name]["calibration"]["reliability"]
        bins = [b for b in cal["bins"] if b["n"]]
        rel.plot([b["mean_p"] for b in bins], [b["frac_fake"] for b in bins], marker="o", markersize=3,
                 label=f"{short[name]} (ECE {'–' if cal['ece'] is None else format(cal['ece'], '.3f')})")
    rel.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean P(fake) in bin", ylabel="fraction of fakes in bin")
    rel.set_title("Reliability", fontsize=10)
    rel.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    legend = False
    for ax, (name, data) in zip(axes[1:], scored.items(), strict=True):
        t = results[name]["calibration"]["clean_threshold"]
        _split_histograms(ax, data, t, f"{short[name]}: P(fake) per condition")
        if not legend and len(ax.get_legend_handles_labels()[0]) == 2:   # once, where both classes are drawn
            legend = True
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    return _data_uri(fig)

