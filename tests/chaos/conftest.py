"""Fixtures for the CI chaos subset: a crashable subprocess emulator and a fresh live account."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chaos_scenarios import SubprocessEmulator

_accounts = itertools.count()


@pytest.fixture
def sub_emulator(tmp_path: Path) -> Iterator[SubprocessEmulator]:
    emu = SubprocessEmulator(tmp_path / "emulator", items=120, seed=4).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def live(sub_emulator: SubprocessEmulator) -> tuple[str, str]:
    """(key, account) of a fresh live account with plenty of credits."""
    name = f"acct_chaos_{next(_accounts)}"
    return sub_emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account=name), name
