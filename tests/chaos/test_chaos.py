"""The CI subset of scripts/chaos.py: the same scenarios and invariant checks, on a smaller corpus.

All fault types (seeded), 3 SIGKILLs at random moments, and an emulator crash + restart mid-run;
each scenario must hold every invariant of issue 4 (see ``chaos_scenarios.check_mirror``).
Disk-full and read-only DEST need root and mounts: they run in scripts/chaos.py only.
"""

from __future__ import annotations

from chaos_scenarios import scenario_emulator_restart, scenario_faults, scenario_sigkill


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
