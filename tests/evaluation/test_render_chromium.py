"""The HTML report as a person sees it, in headless Chromium (skipped where /usr/bin/chromium is absent).

A probe script is added to a copy of report.html (the report itself has no script): after load it
opens every <details>, then records the page's width, every table's data rows and right edge, and
every image's decoded size, into a <pre> that ``--dump-dom`` prints.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mirror.evaluation import build_report

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1400
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")

PROBE = """<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const root = document.documentElement, view = root.clientWidth;
  const out = {view, scrollWidth: root.scrollWidth, tables: [], images: [], beyond: []};
  document.querySelectorAll("table").forEach(t => out.tables.push({id: t.id, right: t.getBoundingClientRect().right,
    rows: [...t.rows].filter(r => r.querySelector("td")).length}));
  document.querySelectorAll("img").forEach(i => out.images.push({gallery: !!i.closest("figure"), complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight, right: i.getBoundingClientRect().right}));
  document.querySelectorAll("body *").forEach(el => { if (el.getBoundingClientRect().right > view + 0.5)
    out.beyond.push(el.tagName + "#" + el.id + "." + el.className); });
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], check=True,
                              capture_output=True, text=True, timeout=120)


def _probe(html: Path, tmp_path: Path) -> dict[str, Any]:
    page = tmp_path / "probe.html"
    page.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(f"--window-size={WIDTH},1000", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))


@pytest.fixture(scope="module")
def three(three_detector_dest: Path) -> Path:
    return build_report(three_detector_dest, resamples=30, name="three") / "report.html"


@needs_chromium
def test_three_detectors_fit_1400_px_every_table_has_rows_and_images_decode(three: Path, tmp_path: Path) -> None:
    probe = _probe(three, tmp_path)
    assert probe["view"] <= WIDTH and probe["scrollWidth"] <= probe["view"], probe["beyond"][:10]
    assert not probe["beyond"], f"elements past the right edge at {WIDTH} px: {probe['beyond'][:10]}"
    assert len(probe["tables"]) >= 20
    for table in probe["tables"]:
        assert table["rows"] > 0, f"table {table['id']} has no data rows"
        assert table["right"] <= probe["view"], table
    gallery = [i for i in probe["images"] if i["gallery"]]
    assert len(gallery) >= 3 * 12, "every detector shows its misses as thumbnails"
    for image in probe["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image


def test_gallery_thumbnails_are_small_jpegs_of_the_files(three: Path) -> None:
    html = three.read_text()
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(thumbs) >= 3 * 12
    for data in thumbs:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            image.load()
            assert image.format == "JPEG" and max(image.size) <= 112
    assert len(html.encode()) < 10 * 1024 * 1024
    assert "a_detector_with_a_rather_long_name" in html and 'title="mirror.detectors.reference.a_detector' in html


@needs_chromium
def test_report_html_renders_headless(three: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", f"--window-size={WIDTH},1400", three.as_uri())
    with Image.open(shot) as image:
        assert image.size == (WIDTH, 1400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 100   # text, tables and plots, not a blank or error page
