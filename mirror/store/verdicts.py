"""Detector verdicts on disk: ``DEST/scores/<detector>/*.parquet``, joinable with the manifest on ``id``.

One row per (detector, file sha256): the key that makes scoring resumable and stops the same
bytes from being submitted twice, across runs and after a crash. Parts are written like the
manifest's: a temp file in ``.state/tmp`` (prefix ``scores-``, which the manifest's recovery never
touches), fsync, rename. Readers keep the newest row per (detector, sha256), so a re-scored file
simply supersedes its old row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from mirror.store import Layout, destination_error, safe_component, write_table_atomic

__all__ = ["SCORES_SCHEMA", "SCORE_STATUSES", "ScoresWriter", "open_scores", "scores_dir", "latest_status",
           "detector_folder"]

_TMP_PREFIX = "scores-"

SCORE_STATUSES = ("ok", "error", "rejected")   # rejected: refused client-side (size, format, dimensions)

SCORES_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),          # the item id (manifest ``id``)
    pa.field("sha256", pa.string(), nullable=False),      # of the file that was submitted
    pa.field("detector", pa.string(), nullable=False),    # the detector's name, e.g. "synthetiq"
    pa.field("label", pa.string()),                       # "fake" | "real" as the detector said it, lower-cased
    pa.field("p_fake", pa.float64()),                     # probability the image is fake, 0..1 (fake = positive)
    pa.field("raw", pa.string()),                         # the detector's raw result body (JSON text)
    pa.field("faces", pa.int32()),                        # faces the detector found, when it says
    pa.field("status", pa.string(), nullable=False),      # one of SCORE_STATUSES
    pa.field("error", pa.string()),                       # one line, when status != "ok"
    pa.field("latency_ms", pa.float64()),                 # submission to verdict
    pa.field("submitted_at", pa.timestamp("ms", tz="UTC")),
])


def detector_folder(detector: str) -> str:
    """The folder name of a detector's scores, which is also its name in reports.

    ``python:pkg.module:function`` becomes ``pkg.module.function``: readable, and still a name
    no other detector can take; anything unusual falls back to the hashed safe form.
    """
    if detector.startswith("python:"):
        detector = detector.removeprefix("python:").replace(":", ".")
    return safe_component(detector)


def scores_dir(layout: Layout, detector: str) -> Path:
    return layout.scores / detector_folder(detector)


def open_scores(dest: Path | str, detector: str) -> ds.Dataset:
    """Every score row of ``detector`` in DEST (empty when none); join with the manifest on ``id``."""
    folder = scores_dir(Layout(Path(dest)), detector)
    files = sorted(str(p) for p in folder.glob("*.parquet") if p.is_file()) if folder.is_dir() else []
    return ds.dataset(files, schema=SCORES_SCHEMA, format="parquet")


def latest_status(dest: Path | str, detector: str) -> dict[str, str]:
    """sha256 -> status of its newest row (by ``submitted_at``, then file order)."""
    table = open_scores(dest, detector).to_table(columns=["sha256", "status", "submitted_at"])
    if table.num_rows == 0:
        return {}
    stamps = pc.fill_null(table.column("submitted_at"), pa.scalar(0, SCORES_SCHEMA.field("submitted_at").type))
    order = pc.sort_indices(pa.table({"t": stamps, "n": pa.array(range(table.num_rows))}),
                            sort_keys=[("t", "ascending"), ("n", "ascending")])
    shas = table.column("sha256").take(order).to_pylist()
    statuses = table.column("status").take(order).to_pylist()
    return dict(zip(shas, statuses, strict=True))


class ScoresWriter:
    """Writes buffered rows as immutable parts ``part-<run>-<seq>.parquet``; synchronous."""

    def __init__(self, layout: Layout, detector: str, run_id: str) -> None:
        self.layout = layout
        self.folder = scores_dir(layout, detector)
        self.run_id = run_id
        self._seq = 1
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise destination_error(exc, self.folder) from exc

    def write(self, rows: list[dict[str, Any]]) -> Path | None:
        if not rows:
            return None
        table = pa.Table.from_pylist(rows, schema=SCORES_SCHEMA)
        target = self.folder / f"part-{self.run_id}-{self._seq:05d}.parquet"
        write_table_atomic(self.layout, table, target, tmp_prefix=_TMP_PREFIX)
        self._seq += 1
        return target

