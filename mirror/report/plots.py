"""The report's figures as PNG data URIs, so report.html is one self-contained file.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
pyplot: no global backend switch, no GUI, no shared state between reports built in one process.
PNG metadata is stripped so the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mirror.report.groups import Scored
from mirror.report.metrics import roc_curve

__all__ = ["roc_figure", "metric_bars", "collapse_bars"]

_WIDTH = 10.0


def _data_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def roc_figure(scored: dict[str, Scored], results: dict[str, Any]) -> str:
    """Overall ROC per detector (left) and, for each detector, its ROC per layer (right panels)."""
    panels = 1 + len(scored)
    cols = min(3, panels)                 # three panels a row stay legible whatever the detector names
    rows = -(-panels // cols)
    fig = Figure(figsize=(_WIDTH, 3.9 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for spare in grid[panels:]:
        spare.set_visible(False)
    axes = grid[:panels]
    for name, data in scored.items():
        auc = results[name]["overall"]["auc"]
        if auc is not None:
            fpr, tpr = roc_curve(data.fake, data.p_fake)
            axes[0].plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    axes[0].set_title("ROC, all items", fontsize=9)
    for ax, (name, data) in zip(axes[1:], scored.items(), strict=True):
        for layer, metrics in results[name]["groups"]["layer"].items():
            if metrics["auc"] is None:
                continue
            mask = data.columns["layer"] == layer
            fpr, tpr = roc_curve(data.fake[mask], data.p_fake[mask])
            ax.plot(fpr, tpr, label=f"{layer} ({metrics['auc']:.3f})")
        ax.set_title(f"{name}\nROC by layer", fontsize=9)
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="0.75", linestyle=":", linewidth=1)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (reals called fake)",
               ylabel="true positive rate (fakes caught)", aspect="equal")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6.5, loc="lower right")
    return _data_uri(fig)


def _bars(title: str, xlabel: str, labels: list[str], series: dict[str, list[tuple[float | None, Any]]],
          reference: float | None, xlim: tuple[float, float] | None = None) -> str:
    """Horizontal grouped bars with CI whiskers: one row per label, one bar per series (detector)."""
    fig = Figure(figsize=(_WIDTH, 1.0 + 0.16 * len(labels) * max(1, len(series))), layout="constrained")
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
    ax.set_yticks(rows, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.grid(axis="x", color="0.9")
    ax.legend(fontsize=8, loc="best")
    return _data_uri(fig)


def metric_bars(results: dict[str, Any], dimension: str, metric: str = "auc") -> str:
    """One metric per group of a dimension with its 95 % CI, detectors side by side."""
    labels = list(dict.fromkeys(v for r in results.values() for v in r["groups"][dimension]))
    series = {name: [(r["groups"][dimension].get(v, {}).get(metric), r["groups"][dimension].get(v, {}).get(
        f"{metric}_ci")) for v in labels] for name, r in results.items()}
    return _bars(f"{metric.upper()} by {dimension.replace('_', ' ')} (95 % bootstrap CI)", metric.upper(), labels,
                 series, 0.5 if metric == "auc" else None, (0.0, 1.0))


def collapse_bars(results: dict[str, Any], kind: str) -> str:
    """Mean paired change of p_fake from each base image's clean version, per perturbation."""
    labels = list(dict.fromkeys(p for r in results.values() for p in r["collapse"][kind]))
    series = {name: [(r["collapse"][kind].get(p, {}).get("mean"), r["collapse"][kind].get(p, {}).get("mean_ci"))
                     for p in labels] for name, r in results.items()}
    what = "fakes (negative = collapse)" if kind == "fake" else "reals (positive = false-alarm drift)"
    return _bars(f"Paired change of p_fake from clean, {what}", "mean Δ p_fake (95 % CI)", labels, series, 0.0)
