"""The CI subset of scripts/chaos.py: the same scenarios and invariant checks, on a smaller corpus.

All fault types (seeded), 3 SIGKILLs at random moments, an emulator crash + restart mid-run, a
key revoked mid-run, writes refused by a file-size limit, and (where root may mount a tmpfs) a full
disk and a DEST made read-only mid-run; each scenario must hold every invariant of issue 4 (see
``chaos_scenarios.check_mirror``).
"""

from __future__ import annotations

import pytest
from chaos_scenarios import (
    can_mount,
    scenario_disk_full,
    scenario_emulator_restart,
    scenario_faults,
    scenario_file_size_limit,
    scenario_key_revoked_mid_run,
    scenario_read_only,
    scenario_sigkill,
)

needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root and mount (a tmpfs, a bind mount)")


def _held(outcome) -> None:
    print(outcome.scenario, "|", outcome.notes)
    assert outcome.held, outcome.failures()


def test_all_faults_at_once(sub_emulator, live, tmp_path):
    out = scenario_faults(sub_emulator, *live, tmp_path / "dest")
    _held(out)
    assert out.extra["faults_total"] > 20, "the faults were not injected"


def test_three_sigkills_then_complete(sub_emulator, live, tmp_path):
    _held(scenario_sigkill(sub_emulator, *live, tmp_path / "dest", kills=3, seed=11))


def test_emulator_crash_and_restart_mid_run(sub_emulator, live, tmp_path):
    _held(scenario_emulator_restart(sub_emulator, *live, tmp_path / "dest", restarts=1))


def test_key_revoked_mid_run(sub_emulator, live, tmp_path):
    _held(scenario_key_revoked_mid_run(sub_emulator, *live, tmp_path / "dest"))


def test_writes_refused_by_a_file_size_limit(sub_emulator, live, tmp_path):
    _held(scenario_file_size_limit(sub_emulator, *live, tmp_path / "dest", limit_bytes=8192))


@needs_mount
def test_disk_full_then_grown(sub_emulator, live, tmp_path):
    _held(scenario_disk_full(sub_emulator, *live, tmp_path / "dest", size_kb=256))


@needs_mount
def test_dest_made_read_only_mid_run(sub_emulator, live, tmp_path):
    _held(scenario_read_only(sub_emulator, *live, tmp_path / "dest"))
