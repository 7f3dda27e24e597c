"""The emulator's image side: real, deterministic JPEGs whose conditions are really applied.

The mirror is tested against these bytes and an emulated detector later reads the generator
fingerprint out of them, so the checks are on decoded pixels and spectra, not on labels.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mirror.emulator import images
from mirror.emulator.image_store import ImageStore
from mirror.emulator.images import (
    FINGERPRINT_FREQS,
    GENDERS,
    GENERATORS,
    LAYER_LABELS,
    LAYERS,
    PERTURBATION_LABELS,
    PERTURBATIONS,
    SCENES,
    SKIN_TONES,
    ImageSpec,
    layer_of,
    render_jpeg,
    spec_digest,
)

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_SCALES = {"fb_pipeline": 0.8, "ig_pipeline": 0.85, "tt_pipeline": 0.6, "x_pipeline": 0.9}


def spec(i: int = 0, kind: str = "fake", perturbation: str = "clean", **overrides: object) -> ImageSpec:
    """Item ``i`` of a small synthetic corpus; a fake and a real with the same ``i`` share base and person."""
    fields: dict[str, object] = {
        "seed": 11, "base_key": f"base-{i}", "identity_key": f"person-{i}", "kind": kind,
        "skin_tone": SKIN_TONES[i % len(SKIN_TONES)], "gender": GENDERS[i % 2],
        "generator": GENERATORS[i % len(GENERATORS)] if kind == "fake" else None,
        "scene": SCENES[i % len(SCENES)] if kind == "fake" else None, "perturbation": perturbation,
    }
    fields.update(overrides)
    return ImageSpec(**fields)  # type: ignore[arg-type]


def all_conditions(base: ImageSpec) -> list[ImageSpec]:
    """The 17 conditions plus the re-cropped form of each platform pipeline."""
    out = [replace(base, perturbation=p) for p in PERTURBATIONS]
    return out + [replace(base, perturbation=p, recropped=True) for p in PIPELINE_SCALES]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image


def grey(data: bytes) -> np.ndarray:
    return np.asarray(decode(data).convert("L"), dtype=np.float64)


def grid_amplitude(data: bytes, generator: str) -> float:
    """Grey-level amplitude of the generator's grid, read off the spectrum at its two frequencies."""
    g = grey(data)
    g -= g.mean()
    h, w = g.shape
    spectrum = np.abs(np.fft.rfft2(g)) * 2 / (h * w)
    fx, fy = FINGERPRINT_FREQS[generator]
    return float(spectrum[0, round(fx * w)] + spectrum[round(fy * h), 0]) / 2


def expected_size(s: ImageSpec) -> tuple[int, int]:
    w, h = (320, 208) if s.style == "document" else (256, 256)
    kind, _, arg = s.perturbation.partition("_")
    factor = float(arg) if kind == "resize" else PIPELINE_SCALES.get(s.perturbation, 1.0)
    return round(w * factor), round(h * factor)


def test_same_spec_gives_same_bytes_across_calls_and_processes() -> None:
    specs = [
        spec(0), spec(1, kind="real"), spec(2, perturbation="noise_10"),
        spec(3, perturbation="ig_pipeline", recropped=True), spec(4, style="document", perturbation="blur_2"),
    ]
    digests = [hashlib.sha256(render_jpeg(s)).hexdigest() for s in specs]
    assert digests == [hashlib.sha256(render_jpeg(s)).hexdigest() for s in specs]
    code = (
        "import hashlib, sys\n"
        "from mirror.emulator.images import ImageSpec, render_jpeg\n"
        "for line in sys.stdin.read().splitlines():\n"
        "    print(hashlib.sha256(render_jpeg(eval(line))).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242", "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", code], input="\n".join(map(repr, specs)), capture_output=True, text=True,
        env=env, cwd=ROOT, timeout=60, check=True,
    )
    assert child.stdout.split() == digests


@pytest.mark.parametrize("style", ["face", "document"])
def test_every_condition_is_a_distinct_valid_jpeg_of_the_expected_size(style: str) -> None:
    variants = all_conditions(spec(5, style=style))
    blobs = [render_jpeg(s) for s in variants]
    assert len(set(blobs)) == len(blobs)
    for s, data in zip(variants, blobs, strict=True):
        image = decode(data)
        assert image.mode == "RGB"
        assert image.size == expected_size(s), s.perturbation
        assert not image.info.get("exif")
    assert expected_size(variants[PERTURBATIONS.index("resize_0.5")]) == ((128, 128) if style == "face" else (160, 104))


def test_clean_sizes_are_photo_like() -> None:
    sizes = [len(render_jpeg(spec(i, kind=kind))) for i in range(6) for kind in ("real", "fake")]
    assert all(15_000 <= n <= 60_000 for n in sizes), sizes
    assert 15_000 <= len(render_jpeg(spec(0, style="document"))) <= 60_000


def test_conditions_degrade_the_picture_as_their_names_say() -> None:
    base = spec(6)
    size = {p: len(render_jpeg(replace(base, perturbation=p))) for p in PERTURBATIONS}
    assert size["jpeg_q30"] < size["jpeg_q50"] < size["jpeg_q70"] < size["jpeg_q95"]
    assert size["blur_4"] < size["blur_2"] < size["blur_1"] < size["clean"]
    assert size["noise_10"] > size["noise_5"] > size["jpeg_q80"]
    clean = grey(render_jpeg(base))
    for p in ("jpeg_q95", "jpeg_q30", "blur_1", "noise_5"):
        diff = np.abs(grey(render_jpeg(replace(base, perturbation=p))) - clean).mean()
        assert 0.1 < diff < 12, (p, diff)  # the same picture, changed


def test_real_and_fake_of_one_base_are_the_same_person() -> None:
    face = (slice(95, 170), slice(96, 160))  # eyes, nose and mouth of every portrait
    real, fake = grey(render_jpeg(spec(7, kind="real"))), grey(render_jpeg(spec(7)))
    other = grey(render_jpeg(spec(7, kind="real", identity_key="someone-else", base_key="base-x")))
    same_person = np.abs(real[face] - fake[face]).mean()
    assert same_person < 3.0
    assert np.abs(real[face] - other[face]).mean() > 2 * same_person
    assert np.abs(real - fake).mean() > same_person  # the fake's scene replaces the plain backdrop


def test_generator_fingerprint_is_measurable_and_worn_down_by_lossy_conditions() -> None:
    for i in range(4):
        generator = GENERATORS[i]
        fake = {p: grid_amplitude(render_jpeg(spec(i, perturbation=p)), generator)
                for p in ("clean", "jpeg_q30", "blur_4")}
        real = grid_amplitude(render_jpeg(spec(i, kind="real")), generator)
        assert fake["clean"] > 4 * real, (generator, fake, real)
        assert fake["jpeg_q30"] < 0.7 * fake["clean"], (generator, fake)
        assert fake["blur_4"] < 0.2 * fake["clean"], (generator, fake)


def test_layers_labels_and_validation() -> None:
    assert len(PERTURBATIONS) == 17 and set(PERTURBATION_LABELS) == set(PERTURBATIONS)
    assert PERTURBATION_LABELS["jpeg_q70"] == "JPEG quality 70"
    assert PERTURBATION_LABELS["fb_pipeline"] == "Facebook upload pipeline"
    assert set(LAYER_LABELS) == set(LAYERS)
    assert [layer_of(p) for p in ("clean", "jpeg_q30", "blur_1", "noise_5", "resize_0.5", "x_pipeline")] == [
        "clean", "layer1", "layer1", "layer1", "layer1", "layer2"]
    assert layer_of("tt_pipeline", recropped=True) == "layer2_recropped"
    for bad in ({"perturbation": "jpeg_q31"}, {"perturbation": "blur_1", "recropped": True},
                {"skin_tone": "olive"}, {"generator": None}, {"scene": "beach"}, {"style": "poster"}):
        with pytest.raises(ValueError):
            replace(spec(0), **bad)
    with pytest.raises(ValueError):
        spec(0, kind="real", generator="stylegan2")


def test_concurrent_renders_match_sequential_ones() -> None:
    specs = [s for i in range(8, 11) for s in all_conditions(spec(i))]
    expected = [render_jpeg(s) for s in specs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(render_jpeg, reversed(specs))) == expected[::-1]


def test_image_store_serves_memory_then_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec(12, perturbation="jpeg_q70")
    store = ImageStore(cache_dir=tmp_path)
    assert store.cached(s) is None
    data = store.get(s)
    assert data == render_jpeg(s) and store.cached(s) is data and store.get(s) is data
    assert [p.name for p in tmp_path.iterdir()] == [f"{spec_digest(s)}.jpg"]

    def no_render(_: ImageSpec) -> bytes:
        raise AssertionError("should have been served from the disk cache")

    monkeypatch.setattr(images, "render_jpeg", no_render)
    fresh = ImageStore(cache_dir=tmp_path)
    assert fresh.cached(s) is None
    assert fresh.get(s) == data and fresh.cached(s) == data


def test_disk_cache_names_change_with_the_format_version(monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec(0)
    name = spec_digest(s)
    assert spec_digest(replace(s, perturbation="jpeg_q95")) != name
    monkeypatch.setattr(images, "FORMAT_VERSION", images.FORMAT_VERSION + 1)
    assert spec_digest(s) != name


def test_image_store_memory_is_bounded() -> None:
    specs = [spec(13, perturbation=p) for p in ("clean", "noise_5", "noise_10")]
    budget = len(render_jpeg(specs[1])) + len(render_jpeg(specs[2]))
    store = ImageStore(max_memory_bytes=budget)
    for s in specs:
        store.get(s)
    assert store.cached(specs[0]) is None
    assert store.cached(specs[1]) is not None and store.cached(specs[2]) is not None
