"""A reference local detector: the example of a user's ``python:`` callable, and the demo's third detector.

``margen-mirror score DEST --detector python:mirror.detectors.reference:spectral_peakiness`` runs it.
Generators that leave a periodic fingerprint put isolated peaks into the high-frequency spectrum;
camera noise and natural texture do not. The score is how far the strongest high-band peak
stands above the band's median, mapped to a probability. It knows nothing of the corpus or its
labels, so JPEG, blur, resizing and platform pipelines defeat it the way they defeat real detectors.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["spectral_peakiness"]

_BAND = (0.25, 0.49)        # cycles per pixel: above most image content, below Nyquist
_MIDPOINT = math.log(12.0)  # a peak 12x the band median reads as P(fake) = 0.5
_SLOPE = 2.5


def spectral_peakiness(path: str) -> float:
    """P(fake) for the image at ``path``, from the peakiness of its high-frequency spectrum."""
    with Image.open(path) as img:
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    grey -= grey.mean()
    spectrum = np.abs(np.fft.rfft2(grey))
    fy = np.abs(np.fft.fftfreq(grey.shape[0]))[:, None]
    fx = np.fft.rfftfreq(grey.shape[1])[None, :]
    radius = np.hypot(fx, fy)
    band = spectrum[(radius > _BAND[0]) & (radius < _BAND[1])]
    peak = band.max() / (np.median(band) + 1e-9)
    return 1.0 / (1.0 + math.exp(-_SLOPE * (math.log(peak) - _MIDPOINT)))
