"""``scripts/bench.py --quick`` writes a complete BENCHMARKS file whose figures parse.

Behaviour only: no target (speed-up, ratio, RSS) is asserted, because wall-clock figures on a
shared CI machine say nothing about the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench_report  # noqa: E402

SECTIONS = ["## 1. Against the official SDK", "## 2. Against the transport ceiling",
            "## 3. Against the key's rate limit", "## 4. Resume and no-op", "## 5. Scale", "## 6. Scale out on Ray",
            "## 8. Bulk release",
            "## History"]
_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?( ms)?$")
_WORDS = {"yes", "**no**", "n/a", "—", ""}


def _cells(text: str) -> list[tuple[str, str]]:
    """(column header, cell) for every cell of every table in the file."""
    out: list[tuple[str, str]] = []
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not header:
            header = cells
        elif not all(set(c) <= {"-"} for c in cells):
            out += list(zip(header, cells, strict=True))
    return out


def test_quick_run_writes_every_section_with_parsable_numbers(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# old\n\n## History\n\n- 2020-01-01 `abc1234` an earlier full run: kept\n")
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--quick", "--output", str(output),
                           "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "reproduce: `python scripts/bench.py --quick`" in text
    assert "- 2020-01-01 `abc1234` an earlier full run: kept" in text      # a quick run never rewrites history
    figures, history = bench_report.read_previous(output)
    assert figures is not None and figures["mode"] == "quick"
    assert history == ["- 2020-01-01 `abc1234` an earlier full run: kept"]
    for key in ("sdk_0ms.speedup", "sdk_20ms.speedup", "ceiling.ratio", "ceiling.mirror_cpu_ms", "rate.ratio",
                "rate.throttled", "noop.api_calls", "noop.rss_mb", "scale.max_rss_mb", "scale.max_cpu_ms",
                "scale.rss_growth", "scale.cpu_growth", "ray.speedup", "ray.model_ms", "ray.in_process_s",
                "ray.ray_init_s", "release.ratio", "release.mirror_cpu_ms", "release.rss_growth"):
        value = bench_report.get(figures, key)
        assert isinstance(value, int | float) and value >= 0, (key, value)
    assert figures["noop"]["status"] == "up-to-date"
    assert [r["items"] for r in figures["scale"]["runs"]] == figures["sizes"]["scale"]
    ray = figures["ray"]
    assert ray["items"] == figures["sizes"]["ray_items"] and [r["workers"] for r in ray["runs"]] == [1, 2]
    assert all(r["scored"] == ray["items"] for r in ray["runs"])
    assert isinstance(ray["overhead_ms"], float)          # may be negative on a noisy quick run: not judged here
    assert "From 1 to 2 workers: **" in text and "Ray's overhead per image" in text
    cells = _cells(text)
    assert len(cells) > 40
    for column, cell in cells:
        if column in ("latency/request", "case", "target", "function", "inclusive share"):
            continue
        lists = ("emulator CPU ms/img (", "mirror runs s", "of which user")       # columns listing several figures
        parts = [p.strip() for p in cell.split(",")] if column.startswith(lists) else [cell]
        for part in parts:
            assert part in _WORDS or _NUMBER.match(part), (column, cell)
    assert "(target ≥ 0.8:" in text and "achieved ≥ 0.98 × limit" in text
    assert "CPU budget: the client and the emulator each work on one event loop" in text
    runs = figures["scale"]["runs"]
    assert all(abs(r["user_ms"] + r["sys_ms"] - r["cpu_ms"]) < 1e-6 for r in runs)
    if os.access("/dev/shm", os.W_OK):
        assert [r["items"] for r in figures["scale"]["tmpfs_runs"]] == [runs[0]["items"], runs[-1]["items"]]
        assert "again with DEST on tmpfs" in text and "On tmpfs, CPU per image ×" in text
    probes = figures["cpu_probe_ms"]
    assert set(probes) == {"§1 at 0 ms", "§1 at 20 ms", "§2", "§3", "§4-5", "§6", "§7", "§8", "end"}
    store = figures["objectstore"]
    assert store["s3_ips"] > 0 and store["disk_ips"] > 0 and "## 7. Object store" in text
    release = figures["release"]
    assert [w["rate"] for w in release["ways"]] == [60, 600] and all(w["release_s"] > 0 for w in release["ways"])
    assert [r["items"] for r in release["rss"]] == figures["sizes"]["release_rss"] and "## 8. Bulk release" in text
    assert all(isinstance(ms, float) and ms > 0 for ms in probes.values())
    probe_line = next(line for line in text.splitlines() if line.startswith("- CPU probe"))
    assert all(f"{where} " in probe_line for where in probes)
    again = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--render-only", "--output", str(output)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and output.read_text(encoding="utf-8") == text, again.stderr  # same page again


def test_cpu_budget_bounds_each_run_by_its_busier_process_and_by_the_cores() -> None:
    runs = [{"bare_cpu_ms": 0.2, "bare_emu_cpu_ms": 0.25, "mirror_cpu_ms": 0.4, "mirror_emu_cpu_ms": 0.25},
            {"bare_cpu_ms": 0.2, "bare_emu_cpu_ms": 0.25, "mirror_cpu_ms": 0.3, "mirror_emu_cpu_ms": 0.25},
            {"bare_cpu_ms": 0.5, "bare_emu_cpu_ms": 0.5, "mirror_cpu_ms": 0.5, "mirror_emu_cpu_ms": 1.0}]
    text = "".join(bench_report.cpu_budget_lines(runs, cores=2))
    # bare: 4,000/s (the emulator binds) in rounds 1-2, 2,000/s in round 3 (2 cores / 1.0 ms, or either alone)
    # mirror: 2,500 and 3,333/s (the client binds), then 1,000/s (the emulator); ratios 0.625, 0.833, 0.5
    assert "the bare loop 0.200 ms and its emulator 0.250 ms per image (the emulator binds)" in text
    assert "the mirror 0.400 ms and its emulator 0.250 ms (the client binds)" in text
    assert "allow a ratio of **0.625** (median) from CPU alone" in text
    assert bench_report.cpu_budget_lines([{"bare_cpu_ms": 0.2}], cores=2) == []      # an older run's figures: no line


def test_history_has_one_line_per_run_naming_each_moved_figure() -> None:
    machine = {"commit": "abc1234"}
    old = {"mode": "full", "date": "2026-01-01T00:00:00+00:00", "machine": machine,
           "ceiling": {"ratio": 0.5, "mirror_ips": 1000.0, "mirror_cpu_ms": 1.0}, "noop": {"api_calls": 2}}
    new = {"mode": "full", "date": "2026-01-02T00:00:00+00:00", "machine": {"commit": "def5678"},
           "ceiling": {"ratio": 0.8, "mirror_ips": 1010.0, "mirror_cpu_ms": 1.2}, "noop": {"api_calls": 2}}
    lines = bench_report.history_lines(old, new, "inline small-file writes")
    assert lines == ["- 2026-01-02 `def5678` inline small-file writes: mirror / transport ceiling "
                     "0.500 → 0.800 (better); mirror CPU ms/image 1.000 → 1.200 (worse)"]
    assert bench_report.history_lines(new, new, "again") == [
        "- 2026-01-02 `def5678` again: no tracked figure moved by more than 5%"]
    assert "baseline" in bench_report.history_lines(None, new, "first")[0]
    assert "baseline" in bench_report.history_lines({**old, "mode": "quick"}, new, "after quick")[0]


def test_history_says_when_the_machine_itself_moved() -> None:
    def run(commit: str, bare_cpu: list[float], ratio: float) -> dict:
        return {"mode": "full", "date": "2026-01-02T00:00:00+00:00", "machine": {"commit": commit},
                "ceiling": {"ratio": ratio, "runs": [{"bare_cpu_ms": ms} for ms in bare_cpu]}}

    old = run("abc1234", [0.27, 0.26, 0.28], 0.875)
    slower = run("def5678", [0.35, 0.57, 0.69], 0.769)
    assert bench_report.history_lines(old, slower, "emulator change") == [
        "- 2026-01-02 `def5678` emulator change: the machine first (the bare loop's CPU per image, the same work "
        "in both runs, 0.270 → 0.570 ms, 2.11x: absolute and CPU-bound figures moved with it, not only with the "
        "code); mirror / transport ceiling 0.875 → 0.769 (worse)"]
    same_box = run("def5678", [0.28, 0.27, 0.29], 0.769)             # within 20 %: no machine line
    assert "the machine" not in bench_report.history_lines(old, same_box, "x")[0]
    assert bench_report.history_lines(old, run("def5678", [0.50], 0.875), "y")[0].endswith(
        "not only with the code); no tracked figure moved by more than 5%")


def test_history_of_an_older_version_is_merged_into_one_line_per_run() -> None:
    older = [
        "- 2026-01-01 `abc1234` first: first full run, the baseline for every figure above",
        "- 2026-01-02 `def5678` the machine: the bare loop's CPU per image (the same work in both runs) 0.270 → "
        "0.570 ms, 2.11x; absolute and CPU-bound figures below moved with the machine, not only with the code",
        "- 2026-01-02 `def5678` ledger: group commit: SDK speed-up at 0 ms 9.504 → 8.719 (worse)",
        "- 2026-01-02 `def5678` ledger: group commit: mirror images/s 2,143 → 1,264 (worse)",
        "- 2026-01-03 `0123abc` same engine: no tracked figure moved by more than 5%",
        "- 2026-01-04 `4567def` pages: mirror CPU ms/image 1.140 → 1.003 (better)",
    ]
    merged = bench_report.one_line_per_run(older)
    assert merged == [
        older[0],
        "- 2026-01-02 `def5678` ledger: group commit: the machine first (the bare loop's CPU per image, the same "
        "work in both runs, 0.270 → 0.570 ms, 2.11x: absolute and CPU-bound figures moved with it, not only with "
        "the code); SDK speed-up at 0 ms 9.504 → 8.719 (worse); mirror images/s 2,143 → 1,264 (worse)",
        older[4],
        older[5],
    ]
    assert bench_report.one_line_per_run(merged) == merged          # the current format is left as it is


def test_the_rate_after_the_last_429_leaves_out_its_pause_and_the_quiet_end() -> None:
    import bench

    # 429 at 30 s; nothing accepted until 45 s (the window was full); then 10 a second to 85 s;
    # then the run's end sends nothing for 5 s.
    samples = [(30.0, 300), (35.0, 300), (40.0, 300), (45.0, 300)]
    samples += [(45.0 + 0.5 * i, 300 + 5 * i) for i in range(1, 81)]
    samples += [(86.0, 700), (90.0, 700)]
    assert bench.steady_rate(samples, 30.0) == 600.0
    assert bench.steady_rate(samples[:8], 30.0) is None          # under 10 s of movement
