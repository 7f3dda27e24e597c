"""Fixtures shared by the whole test suite: emulators on 127.0.0.1 and the OpenAPI document.

``tests/`` is put on ``sys.path`` so test modules can ``from contract import
assert_matches_schema`` without an ``__init__.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from mirror.emulator import EmulatorConfig, RunningEmulator, start_emulator_thread  # noqa: E402

pytest_plugins = ["detector_fixtures"]

DEFAULTS: dict[str, Any] = {"items": 300, "seed": 7, "admin": True}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEmulator]:
    """A fresh emulator per test: admin on, 300 items, seed 7, data under tmp_path."""
    emu = start_emulator_thread(EmulatorConfig(**DEFAULTS, data_dir=tmp_path / "emulator"))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[Callable[..., RunningEmulator]]:
    """``emulator_factory(**EmulatorConfig fields)``: unset fields default to admin on, 300 items,
    seed 7 and a fresh data_dir under tmp_path.  Every emulator is stopped at teardown."""
    started: list[RunningEmulator] = []

    def make(**fields: Any) -> RunningEmulator:
        config = {**DEFAULTS, "data_dir": tmp_path / f"emulator-{len(started)}", **fields}
        emu = start_emulator_thread(EmulatorConfig(**config))
        started.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in started:
            emu.stop()


@pytest.fixture(scope="session")
def openapi_spec() -> dict[str, Any]:
    """The official OpenAPI document (a copy kept in tests/data)."""
    return json.loads((TESTS_DIR / "data" / "margen-openapi.json").read_text())
