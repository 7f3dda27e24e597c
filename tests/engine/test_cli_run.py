"""How a sync run ends and what it says while it runs, driven as a user drives it: a subprocess, the
key in the environment, real signals. SIGTERM and SIGINT end it the same way (exit 130, one summary
line with the counts, a re-run that pays nothing twice); a refused run leaves no folder behind;
plan and a long sync say how long the key's rate limit makes them; status lines and the log say
what happens without ever carrying the key or a signed URL."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mirror_testkit import all_items, cli, hear_ctrl_c

import mirror

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from chaos_scenarios import (
    CliRun,
    check_mirror,
    cli_cmd,
    cli_env,
    expected_items,
    run_until_complete,
    served_sha_of,
    sync_args,
)

BENCH = "synthetic-face-v1"
INTERRUPTED = re.compile(
    r"^margen-mirror interrupted: (?P<matching>\d+) matching, (?P<new>\d+) new \((?P<charged>\d+) charged, "
    r"(?P<free>\d+) free\), (?P<here>\d+) already here, (?P<failed>\d+) failed, (?P<left>\d+) left, .*"
    r"\| interrupted; finished work is saved: run the same command again to resume$")


def _jpgs(dest: Path) -> int:
    return sum(1 for _ in (dest / "images").rglob("*.jpg")) if (dest / "images").is_dir() else 0


def _start(args: list[str], key: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cli_cmd(*args), env=cli_env(key), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=hear_ctrl_c)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_sync_with_one_summary_line_and_the_rerun_pays_nothing_twice(sig, emulator, account,
                                                                                       tmp_path):
    dest = tmp_path / "m"
    emulator.admin.set_faults(latency_ms=30)       # ~2 s for the run: time to stop it in the middle
    proc = _start(sync_args(emulator.url, dest), account.key)
    deadline = time.monotonic() + 60
    while proc.poll() is None and _jpgs(dest) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be stopped"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    stopped = CliRun(proc.returncode, out, err)

    assert stopped.code == 130, err
    assert len(stopped.lines) == 1, err
    counts = INTERRUPTED.match(stopped.lines[0])
    assert counts is not None, stopped.lines[0]
    n = {k: int(v) for k, v in counts.groupdict().items()}
    total = len(all_items(emulator, account))
    assert n["matching"] == total and 10 <= n["new"] < total and n["failed"] == 0
    assert n["left"] == total - n["new"]
    assert mirror.open_manifest(dest).count_rows() == n["new"], "every placed file's row was flushed"
    charges = emulator.admin.ledger(account.name)["charge_count"]
    assert n["charged"] <= charges <= n["charged"] + 6, "at most the reservations in flight went unreported"
    assert account.key not in out + err

    emulator.admin.set_faults(latency_ms=0)
    runs = [stopped]
    final = run_until_complete(emulator.url, account.key, dest, log=runs)
    checks = check_mirror(dest, expected={i["id"] for i in expected_items(emulator.url, account.key)},
                          served_sha=served_sha_of(emulator.admin),
                          charge_count=emulator.admin.ledger(account.name)["charge_count"], final=final, runs=runs,
                          key=account.key, refusals=emulator.admin.counters()["auth_header_refusals"])
    assert all(ok for ok, _ in checks.values()), {name: why for name, (ok, why) in checks.items() if not ok}


# (flags, key (None: the account's), exit code, what the error says). The API refuses the first four;
# the rest are refused before a request is made.
REFUSALS = {
    "wrong key": ([], "mgn_live_" + "0" * 32, 3, "unauthorized"),
    "unknown benchmark": (["--benchmark", "no-such-benchmark"], None, 2, "available: synthetic-face-v1"),
    "unknown filter value": (["skin_tone=purple"], None, 2, "allowed: very_light"),
    "unknown filter key": (["colour=red"], None, 2, "allowed filters"),
    "concurrency out of range": (["--concurrency", "5000"], None, 2, "--concurrency"),
    "negative rate limit": (["--rate-limit", "-5"], None, 2, "--rate-limit"),
    "negative budget": (["--max-credits", "-1"], None, 2, "--max-credits"),
    "bad --stats": (["--stats", "5x"], None, 2, "--stats"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_sync_creates_nothing(case, emulator, account, tmp_path):
    args, key, code, text = REFUSALS[case]
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "other").write_text("the user's own file")
    existing = tmp_path / "empty"          # a folder the user made for the mirror: it stays empty
    existing.mkdir()
    for dest in (parent / "new-dest", existing):
        before = sorted(p.name for p in parent.iterdir())
        run = cli("sync", "--benchmark", BENCH, "--dest", str(dest), "--base-url", emulator.url, *args,
                  key=key or account.key)
        assert run.returncode == code and text in run.stderr, run.stderr
        assert "Traceback" not in run.stderr and account.key not in run.stderr + run.stdout
        assert sorted(p.name for p in parent.iterdir()) == before
        assert not (parent / "new-dest").exists()
        assert list(existing.iterdir()) == []
    assert emulator.admin.ledger(account.name)["charge_count"] == 0


def test_plan_prints_the_time_at_the_rate_and_how_to_pass_it(emulator, account, tmp_path):
    args = ("--benchmark", BENCH, "--dest", str(tmp_path / "m"), "--base-url", emulator.url)
    total = len(all_items(emulator, account))
    plan = cli("plan", *args, "--rate-limit", "30", key=account.key)
    assert plan.returncode == 0, plan.stderr
    assert f"about 10 min at 30 requests/min ({total:,} downloads + 3 other API calls)" in plan.stdout
    assert "set when the key is created" in plan.stdout and "--rate-limit N" in plan.stdout
    as_json = json.loads(cli("plan", *args, "--rate-limit", "30", "--json", key=account.key).stdout)
    assert as_json["to_fetch"] == total and as_json["seconds"] == (total + 3) * 2.0
    default = cli("sync", *args, "--dry-run", key=account.key)
    assert "at 60 requests/min" in default.stdout
    assert emulator.admin.ledger(account.name)["charge_count"] == 0


def test_a_sync_the_rate_limit_keeps_busy_for_hours_says_so_first(emulator_factory, tmp_path):
    emulator = emulator_factory(items=5000)
    key = emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account="acct_long")
    proc = _start(["sync", "--benchmark", BENCH, "--dest", str(tmp_path / "m"), "--base-url", emulator.url,
                   "--rate-limit", "60"], key)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        first = proc.stderr.readline() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
    assert re.match(r"margen-mirror: 5,000 items to fetch take about 1 h 2\d min at 60 API requests/min", first), first
    assert "--rate-limit N" in first
    lines = rest.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1 and lines[0].startswith("margen-mirror interrupted:"), rest
    assert key not in first + rest + out


def test_status_lines_off_a_terminal_show_a_run_is_alive_and_never_the_key(emulator, account, tmp_path):
    emulator.admin.set_faults(latency_ms=30)
    args = ["sync", "--benchmark", BENCH, "--base-url", emulator.url, "--rate-limit", "100000", "--concurrency", "2",
            "--max-credits", "60"]
    run = cli(*args, "--dest", str(tmp_path / "a"), "--stats", "500ms", key=account.key)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 4 and lines[-1].startswith("margen-mirror budget:"), run.stderr
    status = [ln for ln in lines if ln.startswith("margen-mirror progress: ")]
    assert len(status) >= 2 and len(status) == len(lines) - 1, run.stderr
    assert re.search(r"\d+/\d+ done \(\d+%\), \d+ new \(\d+ charged, \d+ free\), 0 failed, [\d.]+ MB, [\d.]+ img/s",
                     status[-1]), status[-1]
    assert account.key not in run.stderr + run.stdout
    quiet = cli(*args, "--dest", str(tmp_path / "b"), "--stats", "0", key=account.key)
    assert quiet.returncode == 4 and len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr


def test_the_log_has_every_item_event_and_never_the_key_or_a_signed_url(emulator, account, tmp_path):
    log_file = tmp_path / "sync.log"
    emulator.admin.set_faults(storage_truncate=0.2)        # some fetches fail: their reasons are logged
    run = cli("sync", "--benchmark", BENCH, "--dest", str(tmp_path / "m"), "--base-url", emulator.url,
              "--rate-limit", "100000", "--max-credits", "40", "--retries", "1", "--log-file", str(log_file), "-v",
              key=account.key)
    assert run.returncode in (4, 5), run.stderr
    text = log_file.read_text()
    rows = mirror.open_manifest(tmp_path / "m").to_table().to_pylist()
    assert rows
    for row in rows:
        assert f"reserved {row['id']!r}: charged" in text
        assert f"fetched {row['path']}: " in text
        assert f"placed {row['id']!r} at {row['path']}: {row['bytes']} bytes" in text
    assert re.search(r"failed '[^']+' \(retryable\): [\"']storage fetch", text), text[-2000:]
    assert "margen-mirror budget:" in text or "margen-mirror partial:" in text
    assert set(text.splitlines()) <= set(run.stderr.splitlines()), "-v logs the same lines to stderr"
    for secret in (account.key, "sig=", "exp=", "/_storage/", "Authorization", "Bearer"):
        assert secret not in text and secret not in run.stderr, secret
