"""Fixtures for the detector tests: a small mirrored corpus, and detector credentials in the environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from mirror_testkit import Account, do_sync


@pytest.fixture
def margen(emulator_factory):
    """A small Margen corpus (40 items, reals and fakes) and a live key on it."""
    emulator = emulator_factory(items=40)
    key = emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account="scorer")
    return emulator, Account(key, "scorer")


@pytest.fixture
async def mirrored(margen, tmp_path: Path) -> Path:
    """DEST holding a mirror of the whole small corpus."""
    emulator, account = margen
    dest = tmp_path / "mirror"
    report = await do_sync(emulator, account, dest)
    assert report.status == "complete" and report.mirrored > 0
    return dest


@pytest.fixture
def synthetiq_env(synthetiq_emulator, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SYNTHETIQ_URL", synthetiq_emulator.url)
    monkeypatch.setenv("SYNTHETIQ_API_TOKEN", synthetiq_emulator.token)
    return synthetiq_emulator


@pytest.fixture
def dfd_env(dfd_emulator, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DEEPFAKE_DETECTION_URL", dfd_emulator.url)
    monkeypatch.setenv("DEEPFAKE_DETECTION_TOKEN", dfd_emulator.token)
    return dfd_emulator
