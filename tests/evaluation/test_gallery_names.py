"""The gallery's choice of items, its thumbnails, and short display names."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from mirror.evaluation.gallery import MISSES, select_gallery, thumbnail
from mirror.evaluation.groups import load_scored
from mirror.evaluation.names import display_names


def test_gallery_shows_the_most_confident_misses_one_per_base(synthetic_dest: Path) -> None:
    scored = load_scored(synthetic_dest, "alpha")
    g = select_gallery(scored, "fb_pipeline")
    fakes, reals = g["fakes_scored_real"], g["reals_scored_fake"]
    assert len(fakes) == len(reals) == MISSES
    assert all(e["kind"] == "fake" for e in fakes) and all(e["kind"] == "real" for e in reals)
    assert len({e["base_id"] for e in fakes}) == MISSES and len({e["base_id"] for e in reals}) == MISSES
    lowest = sorted(p for p, fake in zip(scored.p_fake, scored.fake, strict=True) if fake)[0]
    assert fakes[0]["p_fake"] == lowest
    assert [e["p_fake"] for e in fakes] == sorted(e["p_fake"] for e in fakes)
    assert [e["p_fake"] for e in reals] == sorted((e["p_fake"] for e in reals), reverse=True)
    bad = [-p["delta"] if p["kind"] == "fake" else p["delta"] for p in g["pairs"]]
    assert g["pairs"] and bad == sorted(bad, reverse=True)
    for pair in g["pairs"]:
        assert pair["clean"]["perturbation"] == "clean" and pair["perturbed"]["perturbation"] == "fb_pipeline"
        assert pair["clean"]["base_id"] == pair["perturbed"]["base_id"] == pair["base_id"]
        assert pair["delta"] == pytest.approx(pair["perturbed"]["p_fake"] - pair["clean"]["p_fake"])
    assert select_gallery(scored, None)["pairs"] == []


def test_thumbnail_is_a_small_jpeg_of_a_file_inside_dest(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "images").mkdir(parents=True)
    Image.new("RGB", (400, 300), (200, 120, 90)).save(dest / "images" / "a.png")
    (tmp_path / "outside.jpg").write_bytes((dest / "images" / "a.png").read_bytes())
    (dest / "images" / "broken.jpg").write_bytes(b"not an image")
    uri = thumbnail(dest, "images/a.png")
    assert uri and uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert image.format == "JPEG" and image.size == (112, 84)
    assert thumbnail(dest, "../outside.jpg") is None
    assert thumbnail(dest, "images/missing.jpg") is None
    assert thumbnail(dest, "images/broken.jpg") is None
    assert thumbnail(dest, None) is None


def test_display_names_are_short_and_unique() -> None:
    assert display_names(["mirror.detectors.reference.spectral_peakiness", "synthetiq"]) == {
        "mirror.detectors.reference.spectral_peakiness": "spectral_peakiness", "synthetiq": "synthetiq"}
    assert display_names(["a.b.x", "c.d.x", "y"]) == {"a.b.x": "b.x", "c.d.x": "d.x", "y": "y"}
    assert display_names(["x", "a.x"]) == {"x": "x", "a.x": "a.x"}


def test_headlines_name_detectors_by_their_short_name() -> None:
    from mirror.evaluation.render import headlines
    doc = {"detectors": ["pkg.mod.long_detector", "b"], "results": {
        "pkg.mod.long_detector": {"headline": {"sentence": "pkg.mod.long_detector loses most under blur_4: AUC…"}},
        "b": {"headline": {"sentence": "b holds up: no perturbation lowers AUC below clean (0.9)."}}}}
    assert headlines(doc) == ["long_detector loses most under blur_4: AUC…",
                              "b holds up: no perturbation lowers AUC below clean (0.9)."]
