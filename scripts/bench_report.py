"""Renders ``BENCHMARKS.md`` for ``scripts/bench.py``: machine, versions, every figure, the history.

The file ends with its figures as a JSON block, so the next full run can tell which figures moved
and append one history line for the run: its date, git commit and ``--note``, then every tracked
figure that moved. Quick runs never touch the history: their small sizes are not comparable with
a full run's.
"""

from __future__ import annotations

import collections
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

FIGURES_START = "<!-- figures:"
MOVED = 0.05            # a figure moved when it changed by more than 5 % (these machines are noisy)
MACHINE_MOVED = 0.2     # the same bare-loop work costing this much more or less CPU: another machine, in effect
HISTORY_HEADER = "## History"

# (figure key, label, lower is better) tracked in the history
TRACKED = [
    ("sdk_0ms.speedup", "SDK speed-up at 0 ms", False),
    ("sdk_20ms.speedup", "SDK speed-up at 20 ms", False),
    ("ceiling.ratio", "mirror / transport ceiling", False),
    ("ceiling.tmpfs_ratio", "mirror on tmpfs / transport ceiling", False),
    ("ceiling.mirror_ips", "mirror images/s", False),
    ("ceiling.mirror_cpu_ms", "mirror CPU ms/image", True),
    ("rate.ratio", "achieved / key limit", False),
    ("rate.throttled", "429s at the right limit", True),
    ("converge.throttled", "429s when told 2x the limit", True),
    ("converge.converged_s", "seconds to converge", True),
    ("noop.api_calls", "no-op API calls", True),
    ("noop.wall_s", "no-op wall s", True),
    ("noop.rss_mb", "no-op peak RSS MB", True),
    ("scale.max_rss_mb", "peak RSS MB at the largest size", True),
    ("scale.max_cpu_ms", "CPU ms/image at the largest size", True),
]


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines()
                          if x.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "versions": {n: version(n) for n in ("margen-mirror", "margen", "aiohttp", "pyarrow", "anyio")},
        "commit": git_commit(), "load_start": round(os.getloadavg()[0], 2),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def get(figures: dict[str, Any], dotted: str) -> Any:
    node: Any = figures
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def read_previous(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The figures and history lines of an earlier file at ``path`` (none when absent or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None, []
    history: list[str] = []
    if HISTORY_HEADER in text:
        tail = text.split(HISTORY_HEADER, 1)[1]
        history = one_line_per_run([ln for ln in tail.split(FIGURES_START, 1)[0].splitlines()
                                    if ln.startswith("- ")])
    found = re.search(re.escape(FIGURES_START) + r"\n(.*?)\n-->", text, re.S)
    try:
        return (json.loads(found.group(1)) if found else None), history
    except ValueError:
        return None, history


def previous_command(path: Path) -> str | None:
    """The reproduce command an earlier file at ``path`` names (None when absent)."""
    try:
        found = re.search(r"^- reproduce: `([^`]+)`$", path.read_text(encoding="utf-8"), re.M)
    except OSError:
        return None
    return found.group(1) if found else None


def bare_cpu_ms(figures: dict[str, Any]) -> float | None:
    """The bare loop's CPU ms per image, median over the ceiling rounds: the same work in every run,
    so the best figure there is of how fast the machine itself was."""
    values = [r.get("bare_cpu_ms") for r in get(figures, "ceiling.runs") or []]
    values = [v for v in values if isinstance(v, int | float)]
    return statistics.median(values) if values else None


def history_lines(previous: dict[str, Any] | None, figures: dict[str, Any], note: str) -> list[str]:
    """This run's line of the history: what its ``--note`` says changed, then each tracked figure that
    moved by more than ``MOVED`` (first of all the machine, when the same bare-loop work cost more or less)."""
    stamp = f"{figures['date'][:10]} `{figures['machine']['commit']}`"
    why = note or "no --note given"
    if previous is None or previous.get("mode") != "full":
        return [f"- {stamp} {why}: first full run, the baseline for every figure above"]
    machine: list[str] = []
    old_cpu, new_cpu = bare_cpu_ms(previous), bare_cpu_ms(figures)
    if old_cpu and new_cpu and abs(new_cpu - old_cpu) > MACHINE_MOVED * old_cpu:
        machine.append(_machine_moved(f"{fmt(old_cpu)} → {fmt(new_cpu)} ms, {new_cpu / old_cpu:.2f}x"))
    moved: list[str] = []
    for key, label, lower_better in TRACKED:
        old, new = get(previous, key), get(figures, key)
        if not isinstance(old, int | float) or not isinstance(new, int | float) or old == new:
            continue
        if abs(new - old) <= MOVED * max(abs(old), 1e-9):
            continue
        better = (new < old) == lower_better
        moved.append(f"{label} {fmt(old)} → {fmt(new)} ({'better' if better else 'worse'})")
    moved = moved or [f"no tracked figure moved by more than {MOVED:.0%}"]
    return [f"- {stamp} {why}: " + "; ".join(machine + moved)]


def _machine_moved(change: str) -> str:
    return (f"the machine first (the bare loop's CPU per image, the same work in both runs, {change}: absolute and "
            "CPU-bound figures moved with it, not only with the code)")


_OLD_LINE = re.compile(r"- (?P<stamp>\d{4}-\d\d-\d\d `[^`]+`) (?P<rest>.*)")
_OLD_MACHINE = re.compile(r"the machine: the bare loop's CPU per image \(the same work in both runs\) (?P<change>.*?); "
                          r"absolute and CPU-bound figures below moved with the machine, not only with the code")


def one_line_per_run(lines: list[str]) -> list[str]:
    """The history with one line per run. Earlier versions of this script wrote a line per moved
    figure (and one for the machine), each repeating the run's date, commit and note: those lines
    of one run are merged here into the line this version writes. Other lines are kept as they are."""
    runs: list[tuple[str | None, str | None, list[str]]] = []     # (stamp, note, changes); stamp None: kept as is
    for line in lines:
        found = _OLD_LINE.fullmatch(line)
        stamp, rest = (found["stamp"], found["rest"]) if found else (None, "")
        why: str | None = None
        change = None
        if (machine := _OLD_MACHINE.fullmatch(rest)) is not None:
            change = _machine_moved(machine["change"])
        else:
            for _, label, _ in TRACKED:
                before, sep, after = rest.rpartition(f": {label} ")
                if sep and " → " in after:
                    why, change = before, f"{label} {after}"
                    break
        if stamp is None or change is None:
            runs.append((None, line, []))
        elif runs and runs[-1][0] == stamp and (why is None or runs[-1][1] in (None, why)):
            runs[-1] = (stamp, runs[-1][1] or why, runs[-1][2] + [change])
        else:
            runs.append((stamp, why, [change]))
    return [(text or "") if stamp is None else f"- {stamp} {text or 'no --note given'}: {'; '.join(changes)}"
            for stamp, text, changes in runs]


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits + (1 if abs(value) < 10 and digits == 2 else 0)}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return out


def _met(value: Any, target: float, *, at_most: bool = False) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    ok = value <= target if at_most else value >= target
    return "yes" if ok else "**no**"


def probe_line(probes: dict[str, float] | None) -> list[str]:
    """The machine's speed before each section (a fixed pure-Python workload, ``bench.cpu_probe``)."""
    if not probes:
        return []
    spread = max(probes.values()) / min(probes.values())
    return ["- CPU probe, ms for one fixed pure-Python workload before each section (lower is a faster machine; "
            f"{spread:.2f}x between the slowest and the fastest moment of this run): "
            + " · ".join(f"{where} {fmt(ms)}" for where, ms in sorted(probes.items(), key=_in_run_order))]


def _in_run_order(probe: tuple[str, float]) -> tuple[bool, str]:
    """Sections in the order they ran ("§1 ..." to "§4-5"), then "end": the recorded figures are key-sorted."""
    return probe[0] == "end", probe[0]


def cpu_budget_lines(runs: list[dict[str, Any]], cores: int) -> list[str]:
    """What the CPU alone allows. The client and the emulator each do their work on one event loop
    and share the run's ``cores``, so a run's rate is at most 1000 / (its busier process's CPU ms
    per image) and 1000 x cores / (both together). Taken round by round: the machine's speed moves
    between rounds, so a bound from medians would pair one round's bare loop with another's mirror."""
    try:
        bounds = [(_rate_bound(r["bare_cpu_ms"], r["bare_emu_cpu_ms"], cores),
                   _rate_bound(r["mirror_cpu_ms"], r["mirror_emu_cpu_ms"], cores)) for r in runs]
        ratio = statistics.median(mirror[0] / bare[0] for bare, mirror in bounds)
    except (KeyError, TypeError, ZeroDivisionError, statistics.StatisticsError):
        return []

    def binds(which: int) -> str:      # the most common; a tie goes to the earliest round's
        return collections.Counter(pair[which][1] for pair in bounds).most_common(1)[0][0]

    def median_of(key: str) -> str:
        return fmt(statistics.median(r[key] for r in runs), 3)

    return ["", f"CPU budget: the client and the emulator each work on one event loop and share the machine's "
                f"{cores} cores, so a run's rate is at most 1000 / the CPU ms per image of its busier process, and "
                f"{1000 * cores:,} / their sum. Medians over the rounds: the bare loop {median_of('bare_cpu_ms')} ms "
                f"and its emulator {median_of('bare_emu_cpu_ms')} ms per image ({binds(0)} binds), the mirror "
                f"{median_of('mirror_cpu_ms')} ms and its emulator {median_of('mirror_emu_cpu_ms')} ms ({binds(1)} "
                f"binds). The rounds' bounds allow a ratio of **{fmt(ratio)}** (median) from CPU alone."]


def _rate_bound(client_ms: float, emulator_ms: float, cores: int) -> tuple[float, str]:
    """Images/s that ``client_ms`` and ``emulator_ms`` of CPU per image allow, and what binds."""
    return min((1000 / client_ms, "the client"), (1000 / emulator_ms, "the emulator"),
               (1000 * cores / (client_ms + emulator_ms), "the cores"))


def render(figures: dict[str, Any], history: list[str], command: str, extra: list[str] | None = None) -> str:
    """The whole BENCHMARKS.md; ``extra``: sections rendered elsewhere (bench_release), after section 5."""
    m, mode = figures["machine"], figures["mode"]
    v = m["versions"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.py`; do not edit by hand. Every target is a ratio of two runs made",
        "back to back on the same machine, because absolute times on a shared 2-core box are noisy.",
        "",
        f"- date: {figures['date']} · mode: **{mode}** · commit `{m['commit']}` · run took {fmt(figures['total_s'])} s",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}; load average at start "
        f"{m['load_start']}, at end {fmt(figures.get('load_end'))}",
        *probe_line(figures.get("cpu_probe_ms")),
        f"- versions: Python {m['python']}, margen-mirror {v['margen-mirror']}, official SDK margen {v['margen']}, "
        f"aiohttp {v['aiohttp']}, pyarrow {v['pyarrow']}, anyio {v['anyio']}",
        f"- reproduce: `{command}`",
        "- method: the emulator runs in its own process; every measured client runs in a fresh process "
        "of its own, so its CPU time and peak RSS come from `wait4`. Times are of the measured part "
        "(after imports); the emulator's image cache is warmed by a throwaway account first, and it keeps "
        "every image of its corpus in memory (past 256 MiB it used to read them back from disk through a "
        "thread pool, doubling its CPU per image on the cores the client shares). Finished "
        "DESTs are renamed aside and deleted only when the run ends: on this journal-less ext4, files "
        "deleted in the last minutes make every new file creation scan past their inodes (~20x the "
        "kernel CPU), so deleting as it went made the benchmark measure its own clean-up; for the same "
        "reason a run starts only 390 s after the previous run's clean-up (this one waited "
        f"{fmt(figures.get('disk_settle_s'), 0)} s). Deletions by other programs are not controlled. "
        "The mirror's modules are compiled to bytecode first, as installing the package would: this "
        "sandbox sets PYTHONDONTWRITEBYTECODE=1, under which an editable checkout is compiled from source "
        "by every worker, within the timed part for modules imported on first use.",
        "",
    ]
    sdk = [figures[k] for k in ("sdk_0ms", "sdk_20ms") if k in figures]
    lines += ["## 1. Against the official SDK", "",
              "The whole benchmark of an emulator with N items: the SDK's `iter_items` + `download_selection` "
              f"(sequential) against `margen-mirror sync` (concurrency {figures.get('concurrency', '?')}, its default; "
              "a fresh account each). One SDK run against the median of several mirror runs: a mirror run lasts "
              "about half a second, where a moment of noise on this shared machine moves the ratio by 10%, while "
              "the SDK's long run averages it out. Every mirror run is listed. Each mirror run is paired with a "
              "run of section 2's bare transport loop (no disk, no manifest, no journal), alternating which goes "
              "first: its speed-up over the SDK is what any client of this emulator reached on this machine at "
              "that moment.", ""]
    lines += _table(["latency/request", "N items", "SDK s", "mirror s (median)", "mirror runs s", "SDK img/s",
                     "mirror img/s", "speed-up", "target", "met", "bare loop s (median)", "bare loop speed-up"],
                    [[f"{s['latency_ms']} ms", s["items"], s["sdk_s"], s["mirror_s"],
                      ", ".join(f"{w:.3f}" for w in s.get("mirror_runs_s", [s["mirror_s"]])), s["sdk_ips"],
                      s["mirror_ips"], s["speedup"], f"≥ {s['target']}×", _met(s["speedup"], s["target"]),
                      s.get("bare_s"), s.get("bare_speedup")]
                     for s in sdk])
    c = figures["ceiling"]
    tmpfs = c.get("tmpfs_ratio") is not None
    lines += ["", "## 2. Against the transport ceiling", "",
              f"A bare aiohttp loop (cursor walk, then `GET /download/{{id}}` and the signed URL per item over one "
              f"connection pool, as the mirror's, the body read and dropped: no disk, no hashing, no manifest) "
              f"against the full mirror, {c['items']:,} items, "
              f"concurrency {c['concurrency']} for both, in alternating order, {len(c['runs'])} round(s); "
              "ratios are medians over the rounds."
              + (" The tmpfs columns are the same mirror with DEST on /dev/shm: the engine without the disk."
                 if tmpfs else ""), ""]
    header = ["round", "bare img/s", "mirror img/s", "ratio", "bare CPU ms/img", "mirror CPU ms/img",
              "emulator CPU ms/img (bare, mirror)"]
    if tmpfs:
        header += ["tmpfs img/s", "tmpfs ratio", "tmpfs CPU ms/img"]
    rows = []
    for i, r in enumerate(c["runs"]):
        row = [i + 1, r["bare_ips"], r["mirror_ips"], r["ratio"], r["bare_cpu_ms"], r["mirror_cpu_ms"],
               f"{fmt(r['bare_emu_cpu_ms'])}, {fmt(r['mirror_emu_cpu_ms'])}"]
        if tmpfs:
            row += [r["tmpfs_ips"], r["tmpfs_ratio"], r["tmpfs_cpu_ms"]]
        rows.append(row)
    lines += _table(header, rows)
    fc = c.get("file_create_us") or {}
    lines += ["", f"Median ratio **{fmt(c['ratio'])}** (target ≥ 0.8: {_met(c['ratio'], 0.8)})"
              + (f"; with DEST on tmpfs **{fmt(c['tmpfs_ratio'])}**" if tmpfs else "")
              + f". Mirror {fmt(c['mirror_ips'])} images/s at {fmt(c['mirror_cpu_ms'])} ms CPU per image; mean "
              f"image {fmt(c['mean_kb'], 1)} KB; creating one such file on this disk costs "
              f"{fmt(fc.get('sys'), 0)} µs of kernel CPU and {fmt(fc.get('user'), 0)} µs of user CPU."]
    lines += cpu_budget_lines(c["runs"], m.get("cores") or 1)
    if "mirror_slow_disk" in c["runs"][0]:
        moved = {what: sum(r.get(f"{what}_slow_disk", False) for r in c["runs"]) for what in ("mirror", "tmpfs")}
        lines += ["", f"Files were placed from the event loop unless creating them was slow (see `mirror/engine/"
                      f"place.py`); placement moved to a worker thread in {moved['mirror']} of {len(c['runs'])} "
                      f"disk run(s)" + (f" and {moved['tmpfs']} tmpfs run(s)" if tmpfs else "") + "."]
    lines += ["", "## 3. Against the key's rate limit", "",
              "API requests the server accepted per minute of sync, from the emulator's per-account counter; "
              "429s from its `rate_limited` counter. The server's window is a rolling 60 s.", ""]
    rows = []
    for key in ("rate", "converge"):
        r = figures.get(key)
        if r is None:
            continue
        if r.get("skipped"):
            rows.append([r["case"], r["limit"], r["told"], "—", "—", "—", "—", "—", "—", "—", "—"])
            continue
        rows.append([r["case"], r["limit"], r["told"], r["items"], r["accepted"], r["elapsed_s"], r["achieved_pm"],
                     r["ratio"], r["throttled"], r["first_429_s"], r["converged_s"]])
    lines += _table(["case", "server limit/min", "client told/min", "items", "requests accepted", "elapsed s",
                     "achieved/min", "achieved / limit", "429s", "first 429 at s", "last 429 at s"], rows)
    r = figures.get("rate", {})
    lines += ["", f"Target: achieved ≥ 0.98 × limit: {_met(r.get('ratio'), 0.98)}."]
    conv = figures.get("converge", {})
    if conv.get("skipped"):
        lines += ["", f"Over-limit case: {conv['skipped']}"]
    elif conv:
        lines += ["", f"Told {fmt(conv['told'])}/min against a server limit of {fmt(conv['limit'])}/min, the client "
                  f"took {fmt(conv['throttled'])} 429s; the last came {fmt(conv['converged_s'])} s into the run, and "
                  f"once the pause it began was over, the rate held at {fmt(conv['steady_pm'])}/min "
                  f"({fmt(conv['steady_ratio'])} × the limit). "
                  f"429s per minute of the run: {', '.join(str(x) for x in conv['per_minute'])}."]
    n = figures["noop"]
    lines += ["", "## 4. Resume and no-op", "",
              f"A complete mirror of {n['items']:,} items synced again with the same key.", ""]
    lines += _table(["items", "process wall s", "sync s", "API calls (client)", "API calls (server)", "peak RSS MB",
                     "CPU s", "target API calls ≤ 3"],
                    [[n["items"], n["wall_s"], n["sync_s"], n["api_calls"], n["server_calls"], n["rss_mb"],
                      n["cpu_s"], _met(n["api_calls"], 3, at_most=True)]])
    s = figures["scale"]
    lines += ["", "## 5. Scale", "",
              "One fresh sync per size into an empty folder (fresh account). CPU per image is the sync's own "
              "(after imports); the process column includes interpreter start-up and imports.", ""]
    split = "user_ms" in s["runs"][0]          # older figures have no user/system split
    lines += _table(["items", "sync s", "img/s", "peak RSS MB", "CPU ms/img (sync)"]
                    + (["of which user, system"] if split else []) + ["CPU ms/img (process)", "emulator CPU ms/img"],
                    [[x["items"], x["sync_s"], x["ips"], x["rss_mb"], x["cpu_ms"]]
                     + ([f"{fmt(x['user_ms'])}, {fmt(x['sys_ms'])}"] if split else [])
                     + [x["proc_cpu_ms"], x["emu_cpu_ms"]] for x in s["runs"]])
    lines += ["", f"From {s['runs'][0]['items']:,} to {s['runs'][-1]['items']:,} items: peak RSS × "
              f"{fmt(s['rss_growth'])}, CPU per image × {fmt(s['cpu_growth'])} (flat = 1.00)"
              + (f", its user part × {fmt(s['user_growth'])}" if "user_growth" in s else "") + ". Peak RSS at "
              f"{s['runs'][-1]['items']:,} items: {fmt(s['max_rss_mb'])} MB (target ≤ 150: "
              f"{_met(s['max_rss_mb'], 150, at_most=True)})."]
    if s.get("tmpfs_runs"):
        lines += ["", "The smallest and the largest size again with DEST on tmpfs (same emulator, another fresh "
                  "account): the engine without the disk's kernel time.", ""]
        lines += _table(["items", "img/s", "peak RSS MB", "CPU ms/img (sync)", "of which user, system",
                         "emulator CPU ms/img"],
                        [[x["items"], x["ips"], x["rss_mb"], x["cpu_ms"], f"{fmt(x['user_ms'])}, {fmt(x['sys_ms'])}",
                          x["emu_cpu_ms"]] for x in s["tmpfs_runs"]])
        if "tmpfs_cpu_growth" in s:
            lines += ["", f"On tmpfs, CPU per image × {fmt(s['tmpfs_cpu_growth'])} from "
                      f"{s['tmpfs_runs'][0]['items']:,} to {s['tmpfs_runs'][-1]['items']:,} items."]
    if s.get("note"):
        lines += ["", s["note"]]
    lines += ray_lines(figures.get("ray"))
    o = figures.get("objectstore")
    if o:
        lines += ["", "## 7. Object store", "",
                  f"`sync --dest s3://…` into a local SeaweedFS server, {o['items']:,} items at concurrency "
                  f"{o['concurrency']}, against the same sync into a local folder and against a bare loop that PUTs "
                  "the same JPEGs with the same client (obstore) at the same concurrency: the store's ceiling on "
                  "this machine (the server shares its two cores with the mirror and the emulator).", ""]
        lines += _table(["local disk img/s", "s3 img/s", "bare PUT img/s", "s3 / bare PUT", "target", "met",
                         "s3 CPU ms/img"],
                        [[o["disk_ips"], o["s3_ips"], o["put_ips"] or "failed", o["ratio"] or "n/a", "≥ 0.8",
                          _met(o["ratio"], 0.8) if o["ratio"] else "n/a", o["s3_cpu_ms"]]])
    lines += extra or []
    prof = figures.get("profile")
    if prof:
        lines += ["", "## Profile of the mirror", "",
                  f"py-spy, GIL-holding samples of one {fmt(prof['items'])}-item sync (share of samples):", ""]
        lines += _table(["inclusive share", "function"], [[f"{p:.1%}", f"`{f}`"] for f, p in prof["top"]])
    lines += ["", HISTORY_HEADER, "", "Appended by each full run: one line with its commit and `--note`, then each "
              f"tracked figure that moved by more than {MOVED:.0%}.", ""]
    lines += history or ["(no full run yet)"]
    lines += ["", FIGURES_START, json.dumps(figures, indent=1, sort_keys=True), "-->", ""]
    return "\n".join(lines)


def ray_lines(r: dict[str, Any] | None) -> list[str]:
    """Section 6 (``scripts/bench_ray.py``): in-process vs Ray with 1 and 2 workers; nothing for older figures."""
    if not r:
        return []
    n = r["items"]
    rows = [["in-process (threads)", "—", r["in_process_s"], n / r["in_process_s"], 1000 * r["in_process_s"] / n]]
    rows += [["Ray", x["workers"], x["wall_s"], n / x["wall_s"], 1000 * x["wall_s"] / n] for x in r["runs"]]
    return ["", "## 6. Scale out on Ray", "",
            f"`score` with a CPU-bound local detector (`scripts/bench_ray.py`: a fixed amount of numpy work per "
            f"image, {fmt(r['model_ms'])} ms when called directly, holding the GIL) over {n:,} mirrored images, "
            "from scratch each time, each in a fresh process: in-process (its thread pool), then `run_score_ray` "
            f"on a local Ray cluster ({r['cores']} CPUs, started once in {fmt(r['ray_init_s'])} s, not counted) "
            f"with 1 and 2 workers, batches of {r['batch_size']}. A Ray run's time includes its actor pool's start.",
            "", *_table(["case", "workers", "wall s", "img/s", "ms/img"], rows),
            "", f"From 1 to 2 workers: **{fmt(r['speedup'])}×** (target ≥ {r['target']}×: "
            f"{_met(r['speedup'], r['target'])}). Ray's overhead per image over calling the model directly: "
            f"**{fmt(r['overhead_ms'])} ms** (the 1-worker run's {fmt(1000 * r['runs'][0]['wall_s'] / n)} ms per "
            f"image less the model's {fmt(r['model_ms'])} ms: reading and hashing each file, the verdict rows, "
            f"Ray's batches and the pool's start spread over the images); over the in-process run: "
            f"{fmt(r.get('over_in_process_ms'))} ms. The driver took {fmt(r['runs'][-1].get('driver_cpu_ms'))} ms "
            "of CPU per image (receiving and writing the verdicts)."]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line(argv: list[str]) -> str:
    shown = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--note", "--output", "--workdir"):
            skip = True
            continue
        if arg.startswith(("--note=", "--output=", "--workdir=")):
            continue
        shown.append(arg)
    return " ".join(["python", "scripts/bench.py", *shown])


if __name__ == "__main__":
    sys.exit("run scripts/bench.py")
