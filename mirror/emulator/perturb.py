"""Pixel-level machinery of the emulated corpus: canvas primitives, grain, fingerprint, encoding, conditions.

``images`` decides what a corpus item looks like; this module holds the pixel operations it uses.
Canvases are planar float32 (3, height, width): numpy is many times slower on a trailing axis of 3
than along rows, and in-place updates avoid fresh large temporaries. Every drawn base leaves through
``finish``, which adds photographic grain and, for generated images, the generator's periodic
fingerprint; the 17 conditions are then applied to its encoded and decoded ``clean`` form.

Every condition is really applied to the decoded clean image (never simulated by a label), so a
detector run against the emulator sees the same degradations it would see on the live corpus:
JPEG re-encoding, blur, resampling and platform pipelines weaken high-frequency generator traces
naturally. Encoder settings are fixed (baseline, no optimisation, 4:2:0, no EXIF) so the bytes are
identical for identical inputs on every run.

Platform pipelines (resize, then one or more re-encodes, each a fixed chain):

- ``fb_pipeline``: downscale to 0.80 (Lanczos), JPEG q72.
- ``ig_pipeline``: downscale to 0.85 (bicubic), JPEG q80, then re-encoded at q75 (double compression).
- ``tt_pipeline``: downscale to 0.60 (bilinear), JPEG q65.
- ``x_pipeline``: downscale to 0.90 (Lanczos), JPEG q85.

``layer2_recropped`` variants then decode the pipeline output, crop a box of the image's aspect
ratio around the face (as a face detector would) and resize it back to the pipeline's output size.
Everything the corpus itself stores after a transform (layer1 blur/noise/resize, re-crops) is saved
at ``STORE_QUALITY``, the same quality as ``clean``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

PERTURBATIONS: tuple[str, ...] = (
    "clean",
    "jpeg_q30",
    "jpeg_q50",
    "jpeg_q70",
    "jpeg_q80",
    "jpeg_q95",
    "blur_1",
    "blur_2",
    "blur_4",
    "noise_5",
    "noise_10",
    "resize_0.5",
    "resize_0.75",
    "fb_pipeline",
    "ig_pipeline",
    "tt_pipeline",
    "x_pipeline",
)

_PLATFORMS = {"fb": "Facebook", "ig": "Instagram", "tt": "TikTok", "x": "X (Twitter)"}


def _label(name: str) -> str:
    """Human label for a condition, derived from its slug so the two can never drift apart."""
    if name == "clean":
        return "Clean (no perturbation)"
    kind, _, arg = name.partition("_")
    if kind == "jpeg":
        return f"JPEG quality {arg[1:]}"
    if kind == "blur":
        return f"Gaussian blur, radius {arg}"
    if kind == "noise":
        return f"Gaussian noise, sigma {arg}"
    if kind == "resize":
        return f"Resize to {arg}x"
    return f"{_PLATFORMS[kind]} upload pipeline"


PERTURBATION_LABELS: dict[str, str] = {name: _label(name) for name in PERTURBATIONS}

LAYERS = ("clean", "layer1", "layer2", "layer2_recropped")
LAYER_LABELS: dict[str, str] = {
    "clean": "Clean: no perturbation",
    "layer1": "Layer 1: one lossy transform (JPEG, blur, noise or resize)",
    "layer2": "Layer 2: a platform upload pipeline",
    "layer2_recropped": "Layer 2, re-cropped: a platform pipeline, then the face re-detected and re-cropped",
}

STORE_QUALITY = 92
"""Quality of everything the corpus encodes itself (clean and layer1 transforms other than JPEG)."""

_SUBSAMPLING = "4:2:0"


@dataclass(frozen=True)
class Pipeline:
    """One platform's upload chain: a resize, then re-encodes in order."""

    scale: float
    resample: Image.Resampling
    qualities: tuple[int, ...]


PIPELINES: dict[str, Pipeline] = {
    "fb_pipeline": Pipeline(0.80, Image.Resampling.LANCZOS, (72,)),
    "ig_pipeline": Pipeline(0.85, Image.Resampling.BICUBIC, (80, 75)),
    "tt_pipeline": Pipeline(0.60, Image.Resampling.BILINEAR, (65,)),
    "x_pipeline": Pipeline(0.90, Image.Resampling.LANCZOS, (85,)),
}


def layer_of(perturbation: str, recropped: bool = False) -> str:
    """Layer of a condition; ``recropped`` is meaningful only for platform pipelines."""
    if perturbation not in PERTURBATION_LABELS:
        raise ValueError(f"unknown perturbation {perturbation!r}")
    if perturbation in PIPELINES:
        return "layer2_recropped" if recropped else "layer2"
    if recropped:
        raise ValueError(f"only platform pipelines can be re-cropped, not {perturbation!r}")
    return "clean" if perturbation == "clean" else "layer1"


def encode(pixels: np.ndarray | Image.Image, quality: int) -> bytes:
    """Encode with fixed settings: the same pixels always give the same bytes."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, subsampling=_SUBSAMPLING, optimize=False, progressive=False)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    """Decode a JPEG fully (so the result can be shared read-only between threads)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB") if image.mode != "RGB" else image


_POOL_SIDE = 640


@lru_cache(maxsize=1)
def _unit_pool() -> np.ndarray:
    """A fixed field of N(0, 1) samples that images take windows of.

    Drawing fresh normals for every image costs more than the rest of a render; a window of one
    fixed field at a seeded offset is just as Gaussian per pixel and just as deterministic.
    """
    pool = np.random.default_rng(0x6D617267656E).standard_normal((_POOL_SIDE, _POOL_SIDE), dtype=np.float32)
    pool.flags.writeable = False
    return pool


def unit_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A read-only (height, width) window of unit Gaussian noise at an offset drawn from ``rng``."""
    top = int(rng.integers(0, _POOL_SIDE - height + 1))
    left = int(rng.integers(0, _POOL_SIDE - width + 1))
    return _unit_pool()[top:top + height, left:left + width]


Colour = tuple[float, float, float]


def rgb(values: object) -> Colour:
    """Plain-float colour from anything array-like (keeps numpy scalars out of the drawing maths)."""
    r, g, b = (float(v) for v in np.asarray(values, dtype=np.float64).reshape(3))
    return r, g, b


def scale(colour: Colour, k: float | Colour) -> Colour:
    """Darken or tint a colour by a factor, per channel if ``k`` is a triple."""
    ks = k if isinstance(k, tuple) else (k, k, k)
    return colour[0] * ks[0], colour[1] * ks[1], colour[2] * ks[2]


def blend(region: np.ndarray, alpha: np.ndarray, colour: Colour) -> None:
    """Composite ``colour`` over a planar region with per-pixel coverage ``alpha``, in place."""
    tmp = np.empty_like(alpha)
    for channel, value in enumerate(colour):
        plane = region[channel]
        np.subtract(value, plane, out=tmp)
        tmp *= alpha
        plane += tmp


def fill(img: np.ndarray, ys: slice, xs: slice, colour: Colour) -> None:
    """Paint a solid rectangle (rows ``ys``, columns ``xs``)."""
    for channel, value in enumerate(colour):
        img[channel, ys, xs] = value


def ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, colour: Colour,
            opacity: float = 1.0, angle: float = 0.0) -> None:
    """Paint an anti-aliased ellipse, computed only inside its bounding box so small features are cheap."""
    h, w = img.shape[1:]
    r = max(rx, ry) + 1.0
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, w)
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return
    xs = np.arange(x0, x1, dtype=np.float32) - cx
    ys = np.arange(y0, y1, dtype=np.float32) - cy
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        xr, yr = xs[None, :] * c + ys[:, None] * s, ys[:, None] * c - xs[None, :] * s
        q = (xr / rx) ** 2 + (yr / ry) ** 2
    else:
        q = np.add.outer((ys / ry) ** 2, (xs / rx) ** 2)
    np.sqrt(q, out=q)
    edge = min(rx, ry)
    q *= -edge
    q += edge + 0.5
    np.clip(q, 0.0, opacity, out=q)
    blend(img[:, y0:y1, x0:x1], q, colour)


def gradient(img: np.ndarray, top: Colour, bottom: Colour, ys: slice = slice(None)) -> None:
    """Fill rows ``ys`` with a vertical gradient from ``top`` to ``bottom``."""
    rows = img[0, ys].shape[0]
    t = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
    for channel in range(3):
        img[channel, ys] = top[channel] + (bottom[channel] - top[channel]) * t


FINGERPRINT_FREQS: dict[str, tuple[float, float]] = {
    "diffusion-v1": (6 / 16, 5 / 16),
    "stylegan2": (7 / 16, 7 / 16),
    "sdxl-1.0": (5 / 16, 6 / 16),
    "flux1-dev": (13 / 32, 11 / 32),
}
"""(horizontal, vertical) frequency in cycles per pixel of each generator's grid, near Nyquist (0.5)."""

FINGERPRINT_AMPLITUDE = 1.25
"""Grey levels per axis; the grid (sum of both axes) peaks at 2.5, invisible but obvious to an FFT."""


@lru_cache(maxsize=1)
def _grain_pool() -> np.ndarray:
    """Skin-and-sensor-like grain (fine noise plus soft blotches) that bases take windows of.

    Without it the flat synthetic shapes would compress to a few KB, far from real photo sizes.
    """
    rng = np.random.default_rng(0x74657874)
    blotches = Image.fromarray(rng.standard_normal((_POOL_SIDE // 16, _POOL_SIDE // 16), dtype=np.float32))
    pool = np.asarray(blotches.resize((_POOL_SIDE, _POOL_SIDE), Image.Resampling.BICUBIC)) * 5.0
    pool = pool + rng.standard_normal((_POOL_SIDE, _POOL_SIDE), dtype=np.float32) * 7.5
    pool.flags.writeable = False
    return pool


@lru_cache(maxsize=16)
def _fingerprint(generator: str, height: int, width: int) -> np.ndarray:
    """The generator's faint 2-D cosine grid: a peak an FFT finds and lossy processing wears down."""
    fx, fy = FINGERPRINT_FREQS[generator]
    cols = FINGERPRINT_AMPLITUDE * np.cos(2 * np.pi * fx * np.arange(width, dtype=np.float32))
    rows = FINGERPRINT_AMPLITUDE * np.cos(2 * np.pi * fy * np.arange(height, dtype=np.float32))
    grid = np.add.outer(rows, cols)
    grid.flags.writeable = False
    return grid


def finish(canvas: np.ndarray, rng: np.random.Generator, generator: str | None) -> Image.Image:
    """Turn a drawn planar float canvas (3, height, width) into the 8-bit base picture, in place.

    Adds shared grain plus a little independent colour grain per channel (windows at offsets from
    ``rng``), then the generator's fingerprint for generated images, then rounds and clips.
    """
    _, h, w = canvas.shape
    pool = _grain_pool()
    top, left = int(rng.integers(0, _POOL_SIDE - h + 1)), int(rng.integers(0, _POOL_SIDE - w + 1))
    canvas += pool[top:top + h, left:left + w]
    for plane in canvas:
        plane += unit_noise(rng, h, w) * 3.0
    if generator is not None:
        canvas += _fingerprint(generator, h, w)
    canvas += 0.5
    np.clip(canvas, 0.0, 255.0, out=canvas)
    return Image.merge("RGB", [Image.fromarray(plane) for plane in canvas.astype(np.uint8)])


def _scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def _recrop(image: Image.Image, face: tuple[float, float, float, float]) -> Image.Image:
    """Crop a box of the image's own aspect ratio around the face and scale it back up.

    ``face`` is (centre x, centre y, half width, half height) as fractions of the image, so it is
    independent of any resize the pipeline applied. The box spans 1.35 face heights, is shifted up a
    little to keep the hair, and is clamped inside the image, like a detector's padded face crop.
    """
    w, h = image.size
    fx, fy, _, fhh = face
    box_h = min(float(h), 2.7 * fhh * h)
    box_w = box_h * w / h
    if box_w > w:
        box_w, box_h = float(w), float(w) * h / w
    left = min(max(fx * w - box_w / 2, 0.0), w - box_w)
    top = min(max(fy * h - 0.55 * box_h, 0.0), h - box_h)
    return image.resize((w, h), Image.Resampling.LANCZOS, box=(left, top, left + box_w, top + box_h))


def apply(
    name: str,
    clean: Image.Image,
    clean_jpeg: bytes,
    face: tuple[float, float, float, float],
    recropped: bool,
    rng: np.random.Generator,
) -> bytes:
    """Apply condition ``name`` to the decoded clean image and return the stored JPEG.

    ``rng`` feeds only the noise conditions; the caller seeds it from the spec so noise is
    deterministic per image and condition.
    """
    layer_of(name, recropped)
    if name == "clean":
        return clean_jpeg
    kind, _, arg = name.partition("_")
    if kind == "jpeg":
        return encode(clean, int(arg[1:]))
    if kind == "blur":
        return encode(clean.filter(ImageFilter.GaussianBlur(int(arg))), STORE_QUALITY)
    if kind == "noise":
        planes = []
        for plane in clean.split():  # per channel: numpy is slow on a trailing axis of 3
            noisy = np.asarray(plane, dtype=np.float32) + unit_noise(rng, plane.height, plane.width) * float(arg)
            planes.append(Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8)))
        return encode(Image.merge("RGB", planes), STORE_QUALITY)
    if kind == "resize":
        size = _scaled_size(clean.size, float(arg))
        return encode(clean.resize(size, Image.Resampling.LANCZOS), STORE_QUALITY)
    pipeline = PIPELINES[name]
    image = clean.resize(_scaled_size(clean.size, pipeline.scale), pipeline.resample)
    data = encode(image, pipeline.qualities[0])
    for quality in pipeline.qualities[1:]:
        data = encode(decode(data), quality)
    if recropped:
        return encode(_recrop(decode(data), face), STORE_QUALITY)
    return data
