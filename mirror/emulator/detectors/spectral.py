"""The detectors inside the two emulated services: real spectral analysis of the submitted pixels.

The emulated Margen corpus marks generated images with a faint periodic grid: for a generator with
frequencies (fx, fy) every row gets ``A·cos(2π·fx·x)`` and every column ``A·cos(2π·fy·y)``
(``mirror.emulator.images``). That energy sits on the axes of the 2-D spectrum, at (fx, 0) and
(0, fy), i.e. in the spectra of the column means and of the row means; reading those two 1-D spectra
is the same measurement as reading the two axes of the 2-D FFT, at O(N) instead of O(N²) cost.

The two services get deliberately different detectors, so comparing them says something:

- ``PeakDetector`` (SYNTHETIQ VISION) knows the generators' exact frequencies and measures the peak
  there against the local spectral neighbourhood. Sharp on clean images; when JPEG, blur or a resize
  removes or moves the grid it has nothing left to see.
- ``BandDetector`` (Deepfake Detection) knows no frequencies: it looks for the strongest isolated
  peak anywhere in a broad high-frequency band on both axes. Searching many bins raises its noise
  floor (weaker on clean images), but it still finds a grid that a resize has shifted.

Nothing here reads labels: the verdict is a function of the bytes only. A small deterministic
jitter keyed by the bytes' hash stands in for the run-to-run noise of a real model.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mirror.emulator.images import FINGERPRINT_FREQS

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_GUARD = 3  # bins each side of a peak excluded from its neighbourhood (Hann leakage of an off-bin tone)
_REACH = 12  # neighbourhood half-width in bins


class UndecodableImage(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True)
class Verdict:
    """One image's analysis: P(fake), the raw statistic behind it and where the face probably is."""

    p_fake: float
    statistic: float
    face_box: tuple[int, int, int, int] | None  # x, y, width, height in pixels; None when no face found
    width: int
    height: int


def decode_luma(data: bytes) -> np.ndarray:
    """Decode to float luminance without rounding to 8 bits (the grid is only ~1 grey level)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UndecodableImage(str(err)) from err
    return rgb @ _LUMA


def _axis_power(profile: np.ndarray) -> np.ndarray:
    """Power spectrum of a mean profile, detrended and Hann-windowed so edges do not leak."""
    n = profile.size
    x = np.arange(n, dtype=np.float64)
    detrended = profile - np.polyval(np.polyfit(x, profile, 1), x)
    return np.abs(np.fft.rfft(detrended * np.hanning(n))) ** 2


def _axes(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power along the horizontal-frequency axis (column means) and the vertical one (row means)."""
    return _axis_power(luma.mean(axis=0, dtype=np.float64)), _axis_power(luma.mean(axis=1, dtype=np.float64))


def _peak_db(power: np.ndarray, k: int) -> float:
    """Peak at bin k (±1, for an off-bin tone) over the median of its neighbourhood, in dB."""
    lo, hi = max(k - _REACH, 1), min(k + _REACH + 1, power.size)
    if hi - lo <= 2 * _GUARD + 2 or k + 1 >= power.size:
        return 0.0
    around = np.concatenate([power[lo:max(k - _GUARD, lo)], power[min(k + _GUARD + 1, hi):hi]])
    floor = float(np.median(around)) + 1e-12
    return 10.0 * math.log10(float(power[k - 1:k + 2].max()) / floor + 1e-12)


def content_box(luma: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of the rows and columns that carry texture (a padded border carries none)."""
    rows = np.flatnonzero(luma.std(axis=1) > 1.0)
    cols = np.flatnonzero(luma.std(axis=0) > 1.0)
    if rows.size < 16 or cols.size < 16:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def face_box(luma: np.ndarray) -> tuple[int, int, int, int] | None:
    """A portrait's face region: the corpus centres faces at (0.5, 0.46) of the picture, ~half its width.

    A stand-in for a face detector, honest about what it is: a flat or tiny picture has no face.
    """
    box = content_box(luma)
    if box is None or min(box[2], box[3]) < 64:
        return None
    x, y, w, h = box
    fw, fh = round(0.5 * w), round(0.62 * h)
    return x + round(0.5 * w - fw / 2), y + round(0.46 * h - fh / 2), fw, fh


def _cropped(luma: np.ndarray) -> np.ndarray:
    """The textured part of the picture: a client that padded a small image to the minimum size
    must not change the verdict, and a constant border only adds edge leakage to the spectra."""
    box = content_box(luma)
    if box is None:
        return luma
    x, y, w, h = box
    return luma[y:y + h, x:x + w]


def _jitter(data: bytes, salt: str, sigma: float) -> float:
    """A deterministic N(0, sigma) draw keyed by the bytes: the same file always gets the same score."""
    digest = hashlib.sha256(salt.encode() + b"\x1f" + data).digest()
    u1 = (int.from_bytes(digest[:8], "big") + 1) / 2.0**64
    u2 = int.from_bytes(digest[8:16], "big") / 2.0**64
    return sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


@dataclass(frozen=True)
class PeakDetector:
    """SYNTHETIQ's model: energy at each known generator's exact frequencies, best generator wins.

    The statistic is the mean of the two axis peaks (a grid has both), in dB over the local median.
    """

    centre_db: float = 10.0
    width_db: float = 2.0
    jitter: float = 0.25
    salt: str = "synthetiq"

    def statistic(self, luma: np.ndarray) -> float:
        horizontal, vertical = _axes(luma)
        h, w = luma.shape
        return max(
            (_peak_db(horizontal, round(fx * w)) + _peak_db(vertical, round(fy * h))) / 2.0
            for fx, fy in FINGERPRINT_FREQS.values()
        )

    def analyse(self, data: bytes) -> Verdict:
        luma = decode_luma(data)
        stat = self.statistic(_cropped(luma))
        z = (stat - self.centre_db) / self.width_db + _jitter(data, self.salt, self.jitter)
        return Verdict(_logistic(z), stat, face_box(luma), luma.shape[1], luma.shape[0])


@dataclass(frozen=True)
class BandDetector:
    """Deepfake Detection's model: the strongest isolated peak anywhere in a high band, both axes.

    Blind to the generator list, so it pays a look-elsewhere penalty (noise alone makes some peak in
    ~50 bins look strong) but keeps seeing a grid that resampling moved to another frequency.
    """

    band: tuple[float, float] = (0.27, 0.47)
    centre_db: float = 13.0
    width_db: float = 2.5
    jitter: float = 0.6
    salt: str = "deepfake-detection"

    def _best(self, power: np.ndarray, n: int) -> float:
        lo, hi = math.ceil(self.band[0] * n), math.floor(self.band[1] * n)
        return max((_peak_db(power, k) for k in range(lo, hi + 1)), default=0.0)

    def statistic(self, luma: np.ndarray) -> float:
        horizontal, vertical = _axes(luma)
        h, w = luma.shape
        return (self._best(horizontal, w) + self._best(vertical, h)) / 2.0

    def analyse(self, data: bytes) -> Verdict:
        luma = decode_luma(data)
        stat = self.statistic(_cropped(luma))
        z = (stat - self.centre_db) / self.width_db + _jitter(data, self.salt, self.jitter)
        return Verdict(_logistic(z), stat, face_box(luma), luma.shape[1], luma.shape[0])
