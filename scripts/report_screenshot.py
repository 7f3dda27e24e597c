"""Reproduce docs/report.png: mirror ~600 items from the embedded emulator, score them, report, screenshot.

The two "detectors" here are local spectral scorers, not real services: each looks for the
emulator generators' periodic fingerprint (``FINGERPRINT_FREQS``) in the image's 2-D FFT, one on
the whole image and one on a 96 px centre crop (less signal, so a weaker detector). Lossy
conditions wear the fingerprint down, which is exactly the collapse the report is built to show.

    python scripts/report_screenshot.py [--dest DIR] [--items 600] [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import anyio
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

import mirror
from mirror.config import ApiKey, Limits
from mirror.emulator import EmulatorConfig, start_emulator_thread
from mirror.emulator.images import FINGERPRINT_FREQS
from mirror.engine.sync import run_sync
from mirror.jobs import Selection, SyncJob
from mirror.report import build_report
from mirror.store.scores import SCORES_SCHEMA

CHROMIUM = "/usr/bin/chromium"
DETECTORS = {"spectral-full": (None, 4.0, 1.8), "spectral-crop96": (96, 5.0, 1.4)}  # crop, slope, midpoint


def fingerprint_strength(path: Path, crop: int | None) -> float:
    """log of the strongest generator grid peak relative to the median mid-band FFT magnitude."""
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    if crop:
        h, w = grey.shape
        grey = grey[(h - crop) // 2:(h + crop) // 2, (w - crop) // 2:(w + crop) // 2]
    h, w = grey.shape
    spectrum = np.abs(np.fft.rfft2((grey - grey.mean()) * np.outer(np.hanning(h), np.hanning(w))))
    floor = np.median(spectrum[h // 8:h // 2, w // 8:w // 2])
    peaks = [(spectrum[0:3, round(fx * w)].max() + spectrum[round(fy * h), 0:3].max()) / 2
             for fx, fy in FINGERPRINT_FREQS.values()]
    return float(np.log(max(peaks) / floor))


def mirror_sample(dest: Path, items: int) -> None:
    with tempfile.TemporaryDirectory(prefix="margen-emulator-") as data_dir, \
            start_emulator_thread(EmulatorConfig(items=items, data_dir=Path(data_dir))) as emulator:
        job = SyncJob(selection=Selection(benchmark="synthetic-face-v1"), dest=dest,
                      limits=Limits(rate_limit=6000, concurrency=16))
        report = anyio.run(lambda: run_sync(job, api_key=ApiKey("mgn_live_demo"), base_url=emulator.url))
        print(report.summary_line())


def score(dest: Path) -> None:
    rows = mirror.open_manifest(dest).to_table(columns=["id", "path", "sha256"]).to_pylist()
    now = datetime.now(UTC)
    for name, (crop, slope, mid) in DETECTORS.items():
        p = [1 / (1 + np.exp(-slope * (fingerprint_strength(dest / r["path"], crop) - mid))) for r in rows]
        table = pa.table({
            "id": [r["id"] for r in rows], "sha256": [r["sha256"] for r in rows], "detector": [name] * len(rows),
            "label": ["fake" if v > 0.5 else "real" for v in p], "p_fake": p, "raw": [None] * len(rows),
            "faces": [1] * len(rows), "status": ["ok"] * len(rows), "error": [None] * len(rows),
            "latency_ms": [0.0] * len(rows), "submitted_at": [now] * len(rows)}, schema=SCORES_SCHEMA)
        folder = dest / "scores" / name
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        pq.write_table(table, folder / f"part-screenshot-{digest}.parquet")


def screenshot(html: Path, out: Path, height: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
                        f"--window-size=1280,{height}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, help="mirror here (default: a temporary folder, removed afterwards)")
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "report.png")
    parser.add_argument("--height", type=int, default=1800)
    args = parser.parse_args()
    dest = args.dest or Path(tempfile.mkdtemp(prefix="margen-report-demo-"))
    try:
        if not any((dest / "manifest").glob("*.parquet")):
            mirror_sample(dest, args.items)
        shutil.rmtree(dest / "scores", ignore_errors=True)
        score(dest)
        folder = build_report(dest)
        print(f"report: {folder}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(folder / "report.html", args.out, args.height)
        print(f"screenshot: {args.out}")
    finally:
        if args.dest is None:
            shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()
