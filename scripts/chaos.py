#!/usr/bin/env python3
"""The full chaos and security suite of issue 4; ends with one table of scenarios x invariants.

    python scripts/chaos.py [--items 600] [--kills 20] [--seed 7] [--out docs/chaos-results.md]

Every scenario runs the real CLI against a subprocess emulator (seeded faults, crashable) and is
followed by the invariant checks of ``tests/chaos/chaos_scenarios.py``, the same code the CI
subset (``tests/chaos``) runs. Disk-full and read-only DEST use a tmpfs and a read-only bind
mount, so they need root; without it they are reported as skipped, never as held. Hostile server
data is the pytest module ``tests/hostile`` (a real HTTP impersonation of the API), run here once.
Exit status 0 only when every invariant of every scenario held.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "chaos"))

import chaos_scenarios as cs  # noqa: E402

_n = itertools.count()


def _fresh(work: Path, items: int, seed: int) -> tuple[cs.SubprocessEmulator, str, str]:
    emu = cs.SubprocessEmulator(work / f"emulator-{next(_n)}", items=items, seed=seed).start()
    name = f"acct_chaos_{next(_n)}"
    return emu, emu.admin.create_key("live", balance=1_000_000, rate_limit=100_000, account=name), name


def _run(label: str, fn, work: Path, items: int, emu_seed: int, **kw) -> cs.Outcome:
    print(f"-- {label} …", flush=True)
    emu, key, name = _fresh(work, items, emu_seed)
    started = time.monotonic()
    try:
        out = fn(emu, key, name, work / f"dest-{next(_n)}", **kw)
    finally:
        emu.stop()
    out.extra["elapsed_s"] = round(time.monotonic() - started, 1)
    _print_outcome(out)
    return out


def _print_outcome(out: cs.Outcome) -> None:
    for inv, (ok, why) in out.checks.items():
        print(f"   {'held  ' if ok else 'FAILED'} {inv:<18} {why}")
    print(f"   {out.notes}", flush=True)


def _user_mistakes(work: Path, seed: int) -> list[cs.Outcome]:
    from mirror.store import DestLock, Layout
    emu, key, name = _fresh(work, 60, seed)
    base = ["--base-url", emu.url, "--quiet"]
    d = work / "user"
    d.mkdir()
    (d / "afile").write_text("x")
    (d / "bad.toml").write_text('dest = "x"\nbenchmark = [')
    scoped_name = f"acct_scope_{next(_n)}"
    scoped = emu.admin.create_key("live", balance=100, rate_limit=100_000, account=scoped_name,
                                  benchmarks=["passport-pad-v1"])
    revoked_name = f"acct_revoked_{next(_n)}"
    revoked = emu.admin.create_key("live", balance=100, rate_limit=100_000, account=revoked_name)
    emu.admin.revoke_key(revoked)
    sync = ["sync", "--benchmark", cs.BENCH, "--dest"]
    outs = []
    try:
        for label, k, acct, args, code, text in (
            ("user: unknown benchmark", key, name, ["sync", "--benchmark", "nope-v9", "--dest", str(d / "a")], 2,
             "nope-v9"),
            ("user: unknown filter key", key, name, [*sync, str(d / "a"), "colour=red"], 2, "unknown filter"),
            ("user: unknown filter value", key, name, [*sync, str(d / "a"), "kind=alien"], 2, "unknown value"),
            ("user: malformed job file", key, name, ["sync", str(d / "bad.toml")], 2, "not valid TOML"),
            ("user: DEST is a file", key, name, [*sync, str(d / "afile")], 2, "is a file"),
            ("user: key scoped to another benchmark", scoped, scoped_name, [*sync, str(d / "a")], 2,
             "unknown benchmark"),
            ("user: revoked key", revoked, revoked_name, [*sync, str(d / "a")], 3, "unauthorized"),
        ):
            outs.append(cs.user_mistake(label, emu, k, acct, [*args, *base], want_exit=code, want_text=text))
        with DestLock(Layout.prepare(d / "locked")):
            outs.append(cs.user_mistake("user: second run on a locked DEST", emu, key, name,
                                        [*sync, str(d / "locked"), *base], want_exit=6, want_text="in use"))
    finally:
        emu.stop()
    for out in outs:
        print(f"-- {out.scenario}")
        _print_outcome(out)
    return outs


def _hostile_server() -> cs.Outcome:
    print("-- hostile server data (pytest tests/hostile/test_hostile_server.py) …", flush=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "hostile" / "test_hostile_server.py")],
                          capture_output=True, text=True, cwd=ROOT)
    last = cs._last(proc.stdout)
    ok = proc.returncode == 0
    checks = {"one-line error": (ok, last), "exit code": (ok, last), "zero credits": (ok, "no charge path reached"),
              "no key leak": (ok, "key never at storage or the redirect target")}
    out = cs.Outcome("hostile server: ../ / %2F NUL long unicode ids, duplicates, lying has_more, "
                     "not-JPEG, over cap, bad JSON, redirects", checks, last, columns=cs.USER_INVARIANTS)
    _print_outcome(out)
    return out


def _table(outcomes: list[cs.Outcome]) -> list[str]:
    columns = list(dict.fromkeys([*cs.INVARIANTS, *cs.USER_INVARIANTS]))
    lines = ["| scenario | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for out in outcomes:
        cells = []
        for col in columns:
            if col not in out.checks:
                cells.append("—")
            else:
                cells.append("held" if out.checks[col][0] else "**FAILED**")
        lines.append(f"| {out.scenario} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "chaos-results.md")
    a = p.parse_args()
    started = time.monotonic()
    outcomes: list[cs.Outcome] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="margen-chaos-") as tmp:
        work = Path(tmp)
        outcomes.append(_run("faults", cs.scenario_faults, work, a.items, a.seed))
        outcomes.append(_run("sigkill", cs.scenario_sigkill, work, a.items, a.seed, kills=a.kills, seed=a.seed,
                             max_wait=3.0))
        outcomes.append(_run("emulator restart", cs.scenario_emulator_restart, work, a.items, a.seed,
                             restarts=a.restarts))
        outcomes.append(_run("key revoked", cs.scenario_key_revoked_mid_run, work, a.items, a.seed))
        outcomes.append(_run("file-size limit", cs.scenario_file_size_limit, work, a.items, a.seed, limit_bytes=8192))
        if cs.can_mount():
            outcomes.append(_run("disk full", cs.scenario_disk_full, work, a.items, a.seed, size_kb=1024))
            outcomes.append(_run("read-only", cs.scenario_read_only, work, a.items, a.seed))
        else:
            skipped.append("disk full and read-only DEST: need root and mount (tmpfs, bind mount); not run")
        outcomes.extend(_user_mistakes(work, a.seed))
    outcomes.append(_hostile_server())
    elapsed = time.monotonic() - started
    failures = [f for out in outcomes for f in out.failures()]
    kills = sum(o.extra.get("kills", 0) for o in outcomes)
    faults = sum(o.extra.get("faults_total", 0) for o in outcomes)
    restarts = sum(o.extra.get("restarts", 0) for o in outcomes)
    items = max((o.extra.get("items", 0) for o in outcomes), default=0)
    verdict = "ALL HELD" if not failures else f"{len(failures)} INVARIANT(S) FAILED"
    doc = [
        "# Chaos and security results",
        "",
        f"Written by `scripts/chaos.py` on {datetime.now(UTC).isoformat(timespec='seconds')} (seed {a.seed}, "
        f"{items} items per mirror, {elapsed:.0f} s). Do not edit by hand: run the script again.",
        "",
        f"**{verdict}**: {len(outcomes)} scenarios, {kills} SIGKILLs of the sync, {restarts} emulator "
        f"crashes + restarts, {faults} injected faults in the all-faults scenario.",
        "",
        *_table(outcomes),
        "",
        "## What happened in each scenario",
        "",
        *[f"- **{o.scenario}**: {o.notes}" for o in outcomes],
        *[f"- skipped: {s}" for s in skipped],
        *(["", "## Failures", "", *[f"- {f}" for f in failures]] if failures else []),
        "",
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(doc), encoding="utf-8")
    print("\n" + "\n".join(_table(outcomes)))
    print(f"\n{verdict} in {elapsed:.0f} s; written to {a.out}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
