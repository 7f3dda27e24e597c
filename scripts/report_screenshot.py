"""Reproduce docs/report.png from the real loop: ``margen-mirror demo --detectors``, then headless Chromium.

The demo mirrors the embedded Margen emulator's corpus, scores every file with the SYNTHETIQ VISION
and Deepfake Detection emulators (each with its own pixel-only spectral detector inside) and the
reference local detector, and builds the report; this script then photographs report.html.

    python scripts/report_screenshot.py [--items 1500] [--out docs/report.png] [--height 1700]

The window is 1400 px wide, the width the report is laid out for; the picture is its first screens
(summary, contents, ROC curves and the operating points).

Needs Debian's chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from mirror.cli.verbs.demo import run_demo

CHROMIUM = "/usr/bin/chromium"


def screenshot(html: Path, out: Path, height: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
                        f"--window-size=1400,{height}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1500, help="corpus size of the embedded emulator")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "report.png")
    parser.add_argument("--height", type=int, default=1700)
    args = parser.parse_args()
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="margen-report-") as work:
        os.chdir(work)                       # the report names its destination: keep it "margen-demo"
        code = run_demo(Path("margen-demo"), items=args.items, quiet=True, detectors=True)
        if code:
            raise SystemExit(f"the demo loop exited {code}")
        screenshot(Path("margen-demo/reports/demo/report.html"), out, args.height)
    print(f"screenshot: {out}")


if __name__ == "__main__":
    main()
