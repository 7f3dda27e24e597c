"""Fixtures for the detector emulators (SYNTHETIQ VISION and the Deepfake Detection API) on 127.0.0.1.

Registered from tests/conftest.py through ``pytest_plugins`` so every test folder can use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _running(service: str, data_dir: Path) -> Iterator[Any]:
    from mirror.emulator.detectors import DetectorEmulatorConfig, start_detector_thread
    emu = start_detector_thread(DetectorEmulatorConfig(service=service, data_dir=data_dir))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def synthetiq_emulator(tmp_path: Path) -> Iterator[Any]:
    yield from _running("synthetiq", tmp_path / "synthetiq")


@pytest.fixture
def dfd_emulator(tmp_path: Path) -> Iterator[Any]:
    yield from _running("deepfake-detection", tmp_path / "dfd")
