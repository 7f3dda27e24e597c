"""Deterministic synthetic JPEGs for the emulated Margen corpus.

The mirror must be exercised against real image bytes (sizes, decode errors, dimension changes
per condition), and a downstream emulated detector needs something to detect, so every item gets
a genuine JPEG: a face-like picture whose geometry comes from the identity (a real and its fakes
look like one person), whose background comes from the scene, and, for fakes, a faint
generator-specific periodic fingerprint that lossy conditions weaken on their own.

Everything is derived from ``hashlib`` digests of the spec fields and numpy ``Generator`` streams,
never from ``hash()``, so bytes are identical across runs and processes. A small thread-safe LRU
keeps decoded clean bases so the 17 conditions of one image render the face only once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image

from mirror.emulator.perturb import (
    FINGERPRINT_AMPLITUDE,
    FINGERPRINT_FREQS,
    LAYER_LABELS,
    LAYERS,
    PERTURBATION_LABELS,
    PERTURBATIONS,
    STORE_QUALITY,
    Colour,
    apply,
    blend,
    decode,
    ellipse,
    encode,
    fill,
    finish,
    gradient,
    layer_of,
    rgb,
    scale,
)

__all__ = [
    "FINGERPRINT_AMPLITUDE", "FINGERPRINT_FREQS", "FORMAT_VERSION", "GENDERS", "GENERATORS", "ImageSpec",
    "LAYERS", "LAYER_LABELS", "PERTURBATIONS", "PERTURBATION_LABELS", "SCENES", "SKIN_TONES",
    "layer_of", "render_jpeg", "spec_digest",
]

SKIN_TONES = ("very_light", "light", "intermediate", "tan", "brown", "dark")
GENDERS = ("female", "male")
GENERATORS = ("diffusion-v1", "stylegan2", "sdxl-1.0", "flux1-dev")
SCENES = ("indoor", "outdoor", "selfie")
STYLES = ("face", "document")

FORMAT_VERSION = 1
"""Bump on any change to rendering or encoding: it is part of every disk-cache file name."""

FACE_SIZE = (256, 256)
DOCUMENT_SIZE = (320, 208)  # an ID-1 card's aspect ratio, in multiples of the 16 px JPEG MCU

_SKIN: dict[str, Colour] = {
    "very_light": (241, 218, 200), "light": (226, 190, 162), "intermediate": (200, 155, 120),
    "tan": (176, 128, 92), "brown": (136, 92, 63), "dark": (92, 60, 42),
}
_HAIR_LIGHT = ((40, 30, 25), (95, 65, 40), (170, 130, 80), (140, 70, 40), (60, 45, 35), (200, 170, 120))
_HAIR_DARK = ((22, 18, 16), (38, 28, 22), (58, 40, 28))
_IRIS = ((70, 45, 30), (40, 28, 20), (70, 110, 150), (80, 110, 70), (110, 85, 50))


@dataclass(frozen=True)
class ImageSpec:
    """Everything that determines one item's bytes; two equal specs always render equal JPEGs."""

    seed: int
    base_key: str
    identity_key: str | None
    kind: str
    skin_tone: str
    gender: str
    generator: str | None
    scene: str | None
    perturbation: str
    recropped: bool = False
    style: str = "face"

    def __post_init__(self) -> None:
        """Reject impossible items at construction, so a corpus bug cannot reach the renderer."""
        checks = (
            (self.kind in ("real", "fake"), "kind"), (self.skin_tone in _SKIN, "skin_tone"),
            (self.gender in GENDERS, "gender"), (self.style in STYLES, "style"),
            (self.generator in (GENERATORS if self.kind == "fake" else (None,)), "generator"),
            (self.scene in (SCENES if self.kind == "fake" else (None,)), "scene"),
        )
        for ok, field in checks:
            if not ok:
                raise ValueError(f"invalid {field} {getattr(self, field)!r} for a {self.kind!r} item")
        layer_of(self.perturbation, self.recropped)


def _rng(*parts: object) -> np.random.Generator:
    """A numpy stream keyed by a stable digest of ``parts`` (hash() is randomized per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True)
class _Identity:
    """Face geometry and colouring of one person, in units of a 256 px frame."""

    skin: Colour
    hair: Colour
    iris: Colour
    a: float
    b: float
    taper: float
    eye_dx: float
    eye_y: float
    eye_rx: float
    eye_ry: float
    brow_gap: float
    brow_h: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_h: float
    hairline: float
    hair_volume: float
    hair_length: float


@lru_cache(maxsize=1024)
def _identity(seed: int, key: str, skin_tone: str, gender: str) -> _Identity:
    """The person: the same key always gives the same face; gender shifts jaw, brows and hair."""
    rng = _rng(seed, "identity", key)
    male = gender == "male"
    dark = SKIN_TONES.index(skin_tone) >= 3
    hair_palette = _HAIR_DARK if dark else _HAIR_LIGHT
    u = rng.uniform
    return _Identity(
        skin=rgb(np.add(_SKIN[skin_tone], rng.normal(0.0, 4.0) + rng.normal(0.0, 2.0, 3))),
        hair=rgb(hair_palette[int(rng.integers(len(hair_palette)))]),
        iris=rgb(_IRIS[int(rng.integers(2 if dark else len(_IRIS)))]),
        a=u(60, 68) if male else u(56, 63), b=u(72, 80), taper=u(0.12, 0.28) if male else u(0.3, 0.45),
        eye_dx=u(0.36, 0.44), eye_y=u(-0.16, -0.08), eye_rx=u(9.0, 11.5), eye_ry=u(4.5, 5.8),
        brow_gap=u(9.0, 13.0), brow_h=u(2.6, 3.8) if male else u(1.8, 2.6),
        nose_w=u(7.0, 10.5), mouth_y=u(0.46, 0.54), mouth_w=u(15.0, 21.0), lip_h=u(3.2, 5.0),
        hairline=u(-0.62, -0.45), hair_volume=u(1.04, 1.1) if male else u(1.1, 1.22),
        hair_length=0.0 if male else u(0.5, 1.1),
    )


def _background(img: np.ndarray, kind: str, scene: str | None, rng: np.random.Generator) -> None:
    """Fill a frame: a plain studio backdrop for reals, a scene palette for generated images."""
    h, w = img.shape[1:]
    if kind == "real":
        base = rgb(rng.uniform(150, 215) + rng.normal(0, 12, 3))
        gradient(img, scale(base, 1.06), scale(base, 0.9))
    elif scene == "indoor":
        wall = rgb(np.add((205, 185, 155), rng.normal(0, 14, 3)))
        gradient(img, wall, scale(wall, 0.88))
        wx, wy = int(rng.uniform(0.02, 0.6) * w), int(rng.uniform(0.05, 0.2) * h)
        ww, wh = int(0.32 * w), int(0.38 * h)
        gradient(img[:, :, wx:wx + ww], (228, 236, 244), (190, 200, 212), slice(wy, wy + wh))
        fill(img, slice(wy, wy + wh), slice(wx + ww // 2 - 1, wx + ww // 2 + 2), scale(wall, 0.6))
        fill(img, slice(wy + wh // 2 - 1, wy + wh // 2 + 2), slice(wx, wx + ww), scale(wall, 0.6))
        img[:, int(0.8 * h):] *= 0.7
    elif scene == "outdoor":
        horizon = int(rng.uniform(0.55, 0.7) * h)
        gradient(img, (100, 150, 215), (195, 218, 240), slice(0, horizon))
        grass = rgb(np.add((80, 128, 60), rng.normal(0, 10, 3)))
        gradient(img, grass, scale(grass, 0.7), slice(horizon, h))
        for _ in range(int(rng.integers(3, 6))):
            r = rng.uniform(14, 34)
            ellipse(img, rng.uniform(0, w), horizon - r * 0.4, r, r * 1.2, (40, 80, 38), 0.9)
        ellipse(img, rng.uniform(0, w), rng.uniform(0.05, 0.25) * h, 30, 10, (245, 245, 245), 0.6)
    else:  # selfie: a close, defocused background full of bokeh discs
        c1, c2 = rgb(rng.uniform(60, 200, 3)), rgb(rng.uniform(60, 200, 3))
        t = np.add.outer(np.linspace(0, 0.4, h, dtype=np.float32), np.linspace(0, 0.6, w, dtype=np.float32))
        for channel in range(3):
            np.multiply(t, c2[channel] - c1[channel], out=img[channel])
            img[channel] += c1[channel]
        for _ in range(8):
            r = rng.uniform(5, 16)
            ellipse(img, rng.uniform(0, w), rng.uniform(0, h), r, r, rgb(rng.uniform(170, 255, 3)),
                     rng.uniform(0.3, 0.6))


def _face_distance(h: int, w: int, cx: float, cy: float, a: float, b: float,
                   taper: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[slice, slice]]:
    """Approximate signed distance in pixels (positive inside) to the face outline over its box.

    The outline is an ellipse narrowing towards the jaw. Returns the distance, the normalized
    coordinates (u, v) and the box slices, so shading and the hair fringe can reuse them; the box
    has a few pixels of margin so the fringe can overlap the face edge.
    """
    ys = slice(max(int(cy - b) - 4, 0), min(int(cy + b) + 5, h))
    xs = slice(max(int(cx - a) - 4, 0), min(int(cx + a) + 5, w))
    u = (np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] - cx) / a
    v = (np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] - cy) / b
    below = np.maximum(v, 0.0)
    q = np.sqrt((u / (1.0 - taper * below * below)) ** 2 + v * v)
    return (1.0 - q) * b * 0.8, u, v, (ys, xs)


def _portrait(img: np.ndarray, spec: ImageSpec, ident: _Identity) -> tuple[float, float, float, float]:
    """Draw background and head into a frame; return the face box (cx, cy, a, b) in frame pixels."""
    h, w = img.shape[1:]
    pose = _rng(spec.seed, "pose", spec.base_key)
    _background(img, spec.kind, spec.scene, _rng(spec.seed, "background", spec.base_key, spec.scene))
    unit = min(h, w) / 256 * pose.uniform(0.97, 1.03)
    cx, cy = w * 0.5 + pose.normal(0, 3) * unit, h * 0.46 + pose.normal(0, 3) * unit
    a, b = ident.a * unit, ident.b * unit
    skin, hair = ident.skin, ident.hair
    light, smile, gaze = pose.uniform(-0.5, 0.5), pose.uniform(0, 1), pose.normal(0, 0.8) * unit
    clothes = rgb(pose.uniform(30, 220, 3))

    def ears() -> None:
        for side in (-1, 1):
            ellipse(img, cx + side * a * 0.97, cy - 0.02 * b, 8 * unit, 15 * unit, scale(skin, 0.92))

    if ident.hair_length:  # long hair falls in front of the ears
        ears()
    vol = ident.hair_volume
    ellipse(img, cx, cy - 0.1 * b, a * vol, b * vol * 0.98, hair)
    if ident.hair_length:
        ellipse(img, cx, cy + 0.15 * b, a * vol * 1.04, b * (0.85 + 0.5 * ident.hair_length), hair)
    else:
        ears()
    ellipse(img, cx, cy + 1.0 * b, a * 0.46, b * 0.5, scale(skin, 0.8))
    ellipse(img, cx, h * 1.2, w * 0.55, h * 0.38, clothes)

    dist, u, v, box = _face_distance(h, w, cx, cy, a, b, ident.taper)
    region = img[:, box[0], box[1]]
    alpha = np.clip(dist + 0.5, 0.0, 1.0)
    blend(region, alpha, skin)
    region *= 1.0 + alpha * (0.1 * light * u - 0.14 * (u * u + v * v))
    # The fringe reaches 2 px past the face edge (into the hair behind it) so no skin rim shows through.
    fringe = np.clip((ident.hairline + 0.3 * u * u - v) * b * 0.5 + 0.5, 0.0, 1.0)
    blend(region, fringe * np.clip(dist + 2.5, 0.0, 1.0), hair)

    for side in (-1, 1):
        ex, ey = cx + side * ident.eye_dx * a, cy + ident.eye_y * b
        rx, ry = ident.eye_rx * unit, ident.eye_ry * unit
        ellipse(img, ex, ey, rx, ry, (236, 232, 226))
        ellipse(img, ex + gaze, ey, ry * 0.95, ry * 0.95, ident.iris)
        ellipse(img, ex + gaze, ey, ry * 0.45, ry * 0.45, (18, 14, 14))
        ellipse(img, ex + gaze + 1.2 * unit, ey - 1.2 * unit, 1.1 * unit, 1.1 * unit, (250, 250, 250))
        ellipse(img, ex, ey - ry * 0.85, rx * 1.05, 1.3 * unit, (40, 28, 26), 0.8)
        ellipse(img, ex + side * 2 * unit, ey - ident.brow_gap * unit, rx * 1.25, ident.brow_h * unit,
                 scale(hair, 0.8), 0.85, -0.12 * side)
    ellipse(img, cx + light * 4 * unit, cy + 0.1 * b, 2.5 * unit, 0.22 * b, scale(skin, 0.85), 0.35)
    ellipse(img, cx, cy + 0.3 * b, ident.nose_w * unit, ident.nose_w * 0.6 * unit, scale(skin, 0.9), 0.5)
    for side in (-1, 1):
        ellipse(img, cx + side * ident.nose_w * 0.55 * unit, cy + 0.33 * b, 2.4 * unit, 1.5 * unit,
                 scale(skin, 0.5))
    my, mw = cy + ident.mouth_y * b, ident.mouth_w * unit
    ellipse(img, cx, my, mw, ident.lip_h * unit, scale(skin, (0.78, 0.55, 0.55)))
    if smile > 0.6:
        ellipse(img, cx, my, mw * 0.7, (smile - 0.4) * 4 * unit, (232, 228, 220))
    ellipse(img, cx, my, mw * 0.95, 0.9 * unit, scale(skin, 0.35))
    return cx, cy, a, b


@lru_cache(maxsize=1)
def _guilloche() -> np.ndarray:
    """The fine wavy security print shared by every card (one issuer), computed once."""
    w, h = DOCUMENT_SIZE
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    pattern = 9.0 * np.sin(0.35 * x + 4.0 * np.sin(0.05 * y)) * np.sin(0.3 * y + 3.0 * np.sin(0.04 * x))
    pattern.flags.writeable = False
    return pattern


def _document(img: np.ndarray, spec: ImageSpec, ident: _Identity) -> tuple[float, float, float, float]:
    """An ID-card-like layout: security print, header band, portrait, text lines, machine-readable zone."""
    h, w = img.shape[1:]
    rng = _rng(spec.seed, "card", spec.base_key)
    fill(img, slice(None), slice(None), rgb(rng.uniform(205, 240, 3)))
    img += _guilloche()
    fill(img, slice(0, 28), slice(None), rgb(np.add((40, 70, 120), rng.normal(0, 8, 3))))
    fill(img, slice(9, 19), slice(14, 14 + int(rng.integers(90, 150))), (235, 235, 235))
    px, py, pw, ph = 14, 40, 96, 128
    fill(img, slice(py - 1, py + ph + 1), slice(px - 1, px + pw + 1), (90, 90, 90))
    cx, cy, a, b = _portrait(img[:, py:py + ph, px:px + pw], spec, ident)
    ink = (35.0, 35.0, 45.0)
    for row in range(6):
        top = 46 + 19 * row
        img[:, top:top + 3, 124:124 + int(rng.integers(24, 44))] *= 0.75
        fill(img, slice(top + 5, top + 12), slice(124, 124 + int(rng.integers(50, 170))), ink)
    for line in range(2):
        top = 178 + 12 * line
        for col, present in enumerate(rng.random(40) < 0.8):
            if present:
                fill(img, slice(top, top + 8), slice(14 + 7 * col, 19 + 7 * col), ink)
    ellipse(img, w - 50, h - 62, 22, 22, (200, 225, 215), 0.35)
    return cx + px, cy + py, a, b


@dataclass(frozen=True)
class _Base:
    """A rendered clean base: its stored JPEG, that JPEG decoded, and the face box as fractions."""

    jpeg: bytes
    image: Image.Image
    face: tuple[float, float, float, float]


def _render_base(spec: ImageSpec) -> _Base:
    """Draw the picture, add texture and (for fakes) the generator grid, and encode it as ``clean``."""
    w, h = DOCUMENT_SIZE if spec.style == "document" else FACE_SIZE
    ident = _identity(spec.seed, spec.identity_key or spec.base_key, spec.skin_tone, spec.gender)
    img = np.empty((3, h, w), dtype=np.float32)
    draw = _document if spec.style == "document" else _portrait
    cx, cy, a, b = draw(img, spec, ident)
    picture = finish(img, _rng(spec.seed, "texture", spec.base_key), spec.generator)
    jpeg = encode(picture, STORE_QUALITY)
    return _Base(jpeg, decode(jpeg), (cx / w, cy / h, a / w, b / h))


_BASE_LOCK = threading.Lock()
_BASES: OrderedDict[ImageSpec, _Base] = OrderedDict()
_BASE_SLOTS = 64


def _base(spec: ImageSpec) -> _Base:
    """The clean base of ``spec``, from a small LRU shared by its 17 conditions.

    The key is the spec with the condition reset, so it covers every field the picture depends on.
    Two threads missing the same base at once both render it; the result is identical, and not
    holding the lock while rendering keeps other bases flowing.
    """
    key = replace(spec, perturbation="clean", recropped=False)
    with _BASE_LOCK:
        base = _BASES.get(key)
        if base is not None:
            _BASES.move_to_end(key)
            return base
    base = _render_base(key)
    with _BASE_LOCK:
        _BASES[key] = base
        while len(_BASES) > _BASE_SLOTS:
            _BASES.popitem(last=False)
    return base


def render_jpeg(spec: ImageSpec) -> bytes:
    """The JPEG bytes of one item: pure, deterministic and safe to call from many threads."""
    base = _base(spec)
    noise = _rng(spec.seed, "noise", spec.base_key, spec.perturbation)
    return apply(spec.perturbation, base.image, base.jpeg, base.face, spec.recropped, noise)


def spec_digest(spec: ImageSpec) -> str:
    """Stable name of a spec's bytes, including ``FORMAT_VERSION`` so a renderer change invalidates."""
    fields = "\x1f".join(f"{k}={v!r}" for k, v in sorted(asdict(spec).items()))
    return hashlib.sha256(f"margen-emulator-image/{FORMAT_VERSION}\x1f{fields}".encode()).hexdigest()
