"""The HTML report renders in headless Chromium (skipped where /usr/bin/chromium is not installed)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from mirror.report import build_report

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_html_renders_headless(synthetic_dest: Path, tmp_path: Path) -> None:
    html = build_report(synthetic_dest, resamples=20, name="render") / "report.html"
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
                        "--window-size=1280,1400", html.as_uri()], check=True, capture_output=True, timeout=90)
    with Image.open(shot) as image:
        assert image.size == (1280, 1400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 100   # text, tables and plots, not a blank or error page
