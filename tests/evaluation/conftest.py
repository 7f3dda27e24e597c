"""A small synthetic DEST for the report tests: a real-schema manifest plus two detectors' score files.

Built with pyarrow directly (no emulator, no network) so every report test runs in milliseconds, and
seeded with the awkward rows a real scoring run produces: a re-fetched item with a stale verdict, an
older duplicate verdict, an error, an ok row without p_fake, and a verdict for an unknown id.
"""

from __future__ import annotations

import math
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mirror.store.manifest import MANIFEST_SCHEMA
from mirror.store.verdicts import SCORES_SCHEMA

PERTURBATIONS = {"clean": "clean", "jpeg_q30": "layer1", "blur_2": "layer1", "fb_pipeline": "layer2"}
PENALTY = {"clean": 0.0, "jpeg_q30": 1.5, "blur_2": 0.7, "fb_pipeline": 2.5}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _items() -> list[dict[str, Any]]:
    items = []
    n = 0
    for tone in ("light", "tan", "dark"):
        for gender in ("female", "male"):
            for b in range(7):
                kind = "real" if b < 3 else "fake"
                generator = None if kind == "real" else ("stylegan2", "sdxl-1.0")[b % 2]
                base = f"base_{tone}_{gender}_{b}"
                for pert, layer in PERTURBATIONS.items():
                    n += 1
                    items.append({"id": f"item{n:04d}", "benchmark": "synthetic-face-v1", "kind": kind,
                                  "skin_tone": tone, "gender": gender, "generator": generator, "perturbation": pert,
                                  "layer": layer, "base_id": base, "source_real_id": f"src_{tone}_{gender}",
                                  "sha256": f"{n:064x}"})
    return items


def _manifest_row(item: dict[str, Any], at: datetime) -> dict[str, Any]:
    row = {name: None for name in MANIFEST_SCHEMA.names} | item
    return row | {"attributes": "{}", "path": f"images/{item['id']}.jpg", "bytes": 1000, "width": 256,
                  "height": 256, "charged": True, "downloaded_at": at}


def _score_row(detector: str, item_id: str, sha: str, p: float | None, at: datetime, status: str = "ok") -> dict:
    return {"id": item_id, "sha256": sha, "detector": detector, "label": None if p is None else
            ("fake" if p > 0.5 else "real"), "p_fake": p, "raw": "{}", "faces": 1, "status": status,
            "error": None if status == "ok" else "boom", "latency_ms": 12.0, "submitted_at": at}


def _p(rng: random.Random, item: dict[str, Any], strength: float) -> float:
    z = (strength - PENALTY[item["perturbation"]] if item["kind"] == "fake" else -1.0) + rng.gauss(0, 1.2)
    z += 0.8 * (item["skin_tone"] == "dark") * (item["kind"] == "real")   # a fairness gap to find
    return round(1 / (1 + math.exp(-z)), 2)                              # rounding makes ties on purpose


def _write(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


@pytest.fixture(scope="session")
def synthetic_dest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DEST with 168 items, detector ``alpha`` (everything, with oddities) and ``beta`` (a subset)."""
    dest = tmp_path_factory.mktemp("report-dest")
    items = _items()
    refetched = items[5]
    old = _manifest_row(refetched | {"sha256": "ab" * 32}, T0)      # the bytes before a re-fetch
    _write(dest / "manifest" / "part-a-000001.parquet", [old] + [_manifest_row(i, T0) for i in items[:80]],
           MANIFEST_SCHEMA)
    newer = [_manifest_row(i, T0 + timedelta(hours=1)) for i in items[80:]]
    _write(dest / "manifest" / "part-b-000001.parquet", newer + [_manifest_row(refetched, T0 + timedelta(hours=2))],
           MANIFEST_SCHEMA)
    rng = random.Random(11)
    later = T0 + timedelta(days=1)
    alpha = [_score_row("alpha", i["id"], i["sha256"], _p(rng, i, 3.0), later) for i in items]
    alpha[7] = _score_row("alpha", items[7]["id"], items[7]["sha256"], None, later, status="error")
    alpha[9] = _score_row("alpha", items[9]["id"], items[9]["sha256"], None, later)
    odd = [_score_row("alpha", refetched["id"], "ab" * 32, 0.99, T0),           # stale: verdict on old bytes
           _score_row("alpha", items[3]["id"], items[3]["sha256"], 0.01, T0),    # older duplicate: loses
           _score_row("alpha", "no-such-item", "cd" * 32, 0.5, later)]
    _write(dest / "scores" / "alpha" / "part-1.parquet", alpha[:100], SCORES_SCHEMA)
    _write(dest / "scores" / "alpha" / "part-2.parquet", odd + alpha[100:], SCORES_SCHEMA)
    beta = [_score_row("beta", i["id"], i["sha256"], _p(rng, i, 1.5), later) for i in items if rng.random() < 0.8]
    _write(dest / "scores" / "beta" / "part-1.parquet", beta, SCORES_SCHEMA)
    return dest


LONG_NAME = "mirror.detectors.reference.a_detector_with_a_rather_long_name"


def write_images(dest: Path) -> int:
    """A small JPEG at every manifest path (a face-coloured square whose shade encodes the item)."""
    written = 0
    for item in _items():
        path = dest / "images" / f"{item['id']}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        shade = int(item["id"][-3:]) % 200
        Image.new("RGB", (64, 64), (55 + shade, 40 + shade // 2, 30)).save(path, "JPEG", quality=80)
        written += 1
    return written


@pytest.fixture(scope="session")
def three_detector_dest(tmp_path_factory: pytest.TempPathFactory, synthetic_dest: Path) -> Path:
    """The synthetic DEST plus image files and a third detector with a long dotted name."""
    dest = tmp_path_factory.mktemp("report-dest3") / "dest"
    shutil.copytree(synthetic_dest, dest, ignore=shutil.ignore_patterns("reports"))
    write_images(dest)
    rng = random.Random(23)
    later = T0 + timedelta(days=2)
    rows = [_score_row(LONG_NAME, i["id"], i["sha256"], _p(rng, i, 2.2), later) for i in _items()]
    _write(dest / "scores" / LONG_NAME / "part-1.parquet", rows, SCORES_SCHEMA)
    return dest


@pytest.fixture(scope="session")
def degenerate_dest(tmp_path_factory: pytest.TempPathFactory, synthetic_dest: Path) -> Path:
    """The synthetic DEST plus detector ``dead`` (every verdict an error) and ``fakes`` (only perturbed fakes)."""
    dest = tmp_path_factory.mktemp("report-degenerate") / "dest"
    shutil.copytree(synthetic_dest, dest, ignore=shutil.ignore_patterns("reports"))
    later = T0 + timedelta(days=3)
    _write(dest / "scores" / "dead" / "p.parquet", [_score_row("dead", i["id"], i["sha256"], None, later, "error")
                                                    for i in _items()], SCORES_SCHEMA)
    _write(dest / "scores" / "fakes" / "p.parquet", [_score_row("fakes", i["id"], i["sha256"], 0.7, later)
                                                     for i in _items() if i["kind"] == "fake"
                                                     and i["perturbation"] != "clean"], SCORES_SCHEMA)
    return dest
