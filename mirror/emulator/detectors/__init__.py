"""Strict local emulators of two deepfake-detection services, each with a real spectral detector.

SYNTHETIQ VISION (``synthetiq``) and the Deepfake Detection API (``deepfake-detection``, Resemble's
"Detect") on 127.0.0.1, implemented from the reference docs, so detector adapters are tested against
the contract. Independent of the client side of ``mirror``.
"""

from mirror.emulator.detectors.admin import AdminClient
from mirror.emulator.detectors.server import RunningDetector, build_app, main, serve, start_detector_thread
from mirror.emulator.detectors.spectral import BandDetector, PeakDetector, Verdict
from mirror.emulator.detectors.uploads import DetectorEmulatorConfig

__all__ = [
    "AdminClient", "BandDetector", "DetectorEmulatorConfig", "PeakDetector", "RunningDetector", "Verdict",
    "build_app", "main", "serve", "start_detector_thread",
]
