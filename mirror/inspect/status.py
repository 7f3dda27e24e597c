"""``status``: what a destination holds, per demographic cell and per perturbation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.store import Layout, open_manifest
from mirror.store.destination import shown_dest, url_scheme
from mirror.store.reservations import read_pending

__all__ = ["StatusReport", "read_status"]


@dataclass
class StatusReport:
    dest: str
    items: int = 0
    bytes: int = 0
    charged: int = 0
    pending: int = 0                  # reserved by a run that did not finish (fetched free next run)
    by_benchmark: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    by_cell: dict[str, int] = field(default_factory=dict)          # "skin_tone/gender"
    by_perturbation: dict[str, int] = field(default_factory=dict)
    by_generator: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{self.dest}: {self.items:,} items, {self.bytes / 1e6:.1f} MB, {self.charged:,} charged, "
               f"{self.pending} pending"]
        for title, counts in (("benchmark", self.by_benchmark), ("kind", self.by_kind),
                              ("cell (skin_tone/gender)", self.by_cell), ("perturbation", self.by_perturbation),
                              ("generator", self.by_generator)):
            if counts:
                out.append(f"by {title}:")
                width = max(len(k) for k in counts)
                out.extend(f"  {k:<{width}}  {v:>7,}" for k, v in sorted(counts.items()))
        return out

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_status(dest: str | Path) -> StatusReport:
    """What DEST holds; DEST may be ``s3://bucket/prefix`` (its run state is not in the bucket)."""
    remote = url_scheme(dest) is not None
    layout = Layout(Path(dest))
    report = StatusReport(dest=shown_dest(dest))
    cols = ["benchmark", "kind", "skin_tone", "gender", "perturbation", "generator", "bytes", "charged"]
    table = open_manifest(dest if remote else layout.dest).to_table(columns=cols)
    data = table.to_pydict()
    report.items = table.num_rows
    report.bytes = sum(b or 0 for b in data["bytes"])
    report.charged = sum(1 for c in data["charged"] if c)
    report.by_benchmark = dict(Counter(data["benchmark"]))
    report.by_kind = dict(Counter(data["kind"]))
    report.by_cell = dict(Counter(f"{s}/{g}" for s, g in zip(data["skin_tone"], data["gender"], strict=True)))
    report.by_perturbation = dict(Counter(data["perturbation"]))
    report.by_generator = dict(Counter(g for g in data["generator"] if g))
    report.pending = 0 if remote else len(read_pending(layout.state / "journal.jsonl"))
    return report
