"""Detector verdicts on disk: ``DEST/scores/<detector>/*.parquet``, joinable with the manifest on ``id``.

One row per (detector, file sha256): the key that makes scoring resumable and stops the same
bytes from being submitted twice, across runs and after a crash. Written in parts by atomic
rename, like the manifest.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["SCORES_SCHEMA", "SCORE_STATUSES"]

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
