"""``List Detects`` -> Parquet: every past detection of a Deepfake Detection account, on disk.

Written as one file, ``DEST/detections/deepfake-detection/detects.parquet``, replaced atomically on
each import (the listing is the whole history, so the newest import is the truth). Uploads this
tool made are named ``<sha256>.<ext>``, so ``sha256`` is filled for them and the history joins
with the manifest (and the scores) on it. Kept outside ``scores/`` on purpose: its rows are not
score rows and a scores reader must never see them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mirror.config import Retries, Timeouts
from mirror.detectors.deepfake_detection import DeepfakeDetectionDetector, list_detects, parse_item
from mirror.detectors.options import DeepfakeDetectionOptions, Pacing
from mirror.store import Layout, atomic_file, destination_error

__all__ = ["HISTORY_SCHEMA", "import_history", "history_path"]

HISTORY_SCHEMA = pa.schema([
    pa.field("uuid", pa.string(), nullable=False),
    pa.field("sha256", pa.string()),           # from the upload's file name, when this tool made it
    pa.field("filename", pa.string()),
    pa.field("media_type", pa.string()),
    pa.field("status", pa.string()),
    pa.field("label", pa.string()),
    pa.field("p_fake", pa.float64()),
    pa.field("faces", pa.int32()),
    pa.field("zero_retention_mode", pa.bool_()),
    pa.field("created_at", pa.string()),
    pa.field("updated_at", pa.string()),
    pa.field("raw", pa.string()),              # the whole item as JSON text
])
_SHA = re.compile(r"[0-9a-f]{64}")


def history_path(dest: Path | str) -> Path:
    return Layout(Path(dest)).dest / "detections" / "deepfake-detection" / "detects.parquet"


async def import_history(dest: Path | str, *, options: DeepfakeDetectionOptions | None = None,
                         rate_limit: float = 60.0, timeouts: Timeouts = Timeouts(), retries: Retries = Retries(),
                         page_size: int = 1000) -> int:
    """Mirror every detection of the account into ``history_path(dest)``; returns the row count.

    ``options`` names the account (default: from the environment); only its URL and token are used,
    and the credentials are read before ``dest`` is touched.
    """
    options = options if options is not None else DeepfakeDetectionOptions.from_env()
    det = DeepfakeDetectionDetector.open(options, Pacing(rate_limit=rate_limit, timeouts=timeouts, retries=retries))
    layout = Layout.prepare(dest)
    rows: list[dict[str, Any]] = []
    async with det.http:            # the listing needs no callback listener
        async for item in list_detects(det.http, page_size=page_size):
            if isinstance(item.get("uuid"), str):
                rows.append(_row(item))
    target = history_path(layout.dest)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target, temp_dir=layout.tmp, prefix="scores-history-", suffix=".parquet") as fh:
            pq.write_table(pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA), fh, compression="zstd")
    except OSError as exc:
        raise destination_error(exc, target) from exc
    return len(rows)


def _row(item: dict[str, Any]) -> dict[str, Any]:
    verdict = parse_item(item)
    name = item.get("filename") if isinstance(item.get("filename"), str) else None
    stem = name.rsplit(".", 1)[0].lower() if name else ""
    return {
        "uuid": item["uuid"], "sha256": stem if _SHA.fullmatch(stem) else None, "filename": name,
        "media_type": _text(item.get("media_type")), "status": _text(item.get("status")),
        "label": verdict.label, "p_fake": verdict.p_fake, "faces": verdict.faces,
        "zero_retention_mode": item.get("zero_retention_mode") if isinstance(item.get("zero_retention_mode"), bool)
        else None,
        "created_at": _text(item.get("created_at")), "updated_at": _text(item.get("updated_at")),
        "raw": json.dumps(item, ensure_ascii=False),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
