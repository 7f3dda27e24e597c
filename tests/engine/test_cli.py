"""Every CLI verb and exit code, run as a user runs them: a subprocess, the key in the environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from mirror_testkit import all_items, cli

import mirror
from mirror.store import DestLock, Layout

BENCH = "synthetic-face-v1"


def _no_key(proc: subprocess.CompletedProcess[str], key: str) -> None:
    assert key not in proc.stdout and key not in proc.stderr


def test_read_only_verbs(emulator, account):
    args = ("--base-url", emulator.url)
    bench = cli("benchmarks", *args, "--json", key=account.key)
    assert bench.returncode == 0 and [b["id"] for b in json.loads(bench.stdout)] == [BENCH]
    usage = cli("usage", *args, key=account.key)
    assert usage.returncode == 0 and "balance 100000" in usage.stdout
    cat = cli("catalog", *args, "--benchmark", BENCH, key=account.key)
    assert cat.returncode == 0 and "perturbation (alias condition)" in cat.stdout and "jpeg_q70" in cat.stdout
    for proc in (bench, usage, cat):
        _no_key(proc, account.key)


def test_plan_sync_status_verify_compact_and_job_file(emulator, account, tmp_path):
    dest = tmp_path / "m"
    args = ("--base-url", emulator.url)
    plan = cli("plan", "kind=real", "--benchmark", BENCH, "--dest", str(dest), *args, "--json",
               key=account.key)
    reals = len(all_items(emulator, account, kind="real"))
    assert plan.returncode == 0 and json.loads(plan.stdout)["to_charge"] == reals
    dry = cli("sync", "kind=real", "--benchmark", BENCH, "--dest", str(dest), "--dry-run", *args, key=account.key)
    assert dry.returncode == 0 and "to be charged" in dry.stdout
    assert emulator.admin.ledger(account.name)["charge_count"] == 0

    job = tmp_path / "job.toml"
    job.write_text(f'benchmark = "{BENCH}"\ndest = "{dest}"\nrate_limit = 100000\n[filters]\nkind = "real"\n')
    sync = cli("sync", str(job), *args, key=account.key)
    assert sync.returncode == 0, sync.stderr
    assert sync.stderr.strip().splitlines()[-1].startswith("margen-mirror complete:")
    assert emulator.admin.ledger(account.name)["charge_count"] == reals
    again = cli("sync", str(job), *args, "--json", key=account.key)
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "up-to-date"

    status = cli("status", str(dest), key=None)
    assert status.returncode == 0 and f"{reals:,} items" in status.stdout and "by perturbation:" in status.stdout
    assert cli("compact", str(dest), key=None).returncode == 0
    verify = cli("verify", str(dest), *args, key=account.key)
    assert verify.returncode == 0 and f"{reals} ok" in verify.stdout

    rows = mirror.open_manifest(dest).to_table().to_pylist()
    (dest / rows[0]["path"]).unlink()
    (dest / rows[1]["path"]).write_bytes(b"\xff\xd8\xff broken \xff\xd9")
    broken = cli("verify", str(dest), *args, key=account.key)
    assert broken.returncode == 5 and "1 missing, 1 corrupt" in broken.stdout
    assert f"run margen-mirror verify {dest} --repair" in broken.stdout      # the line says what to do
    repaired = cli("verify", str(dest), "--repair", *args, key=account.key)
    assert repaired.returncode == 0 and "2 repaired" in repaired.stdout, repaired.stderr
    for row in rows[:2]:
        assert (dest / row["path"]).read_bytes() == emulator.admin.image_bytes(row["id"])
    assert cli("verify", str(dest), *args, key=account.key).returncode == 0
    assert emulator.admin.ledger(account.name)["charge_count"] == reals, "repair is free"
    for proc in (plan, dry, sync, again, verify, broken, repaired):
        _no_key(proc, account.key)


def test_usage_errors_exit_2_with_one_line_and_spend_nothing(emulator, account, tmp_path):
    args = ("--base-url", emulator.url, "--dest", str(tmp_path / "m"), "--benchmark", BENCH)
    bad_value = cli("sync", "skin_tone=purple", *args, key=account.key)
    assert bad_value.returncode == 2 and "allowed: very_light" in bad_value.stderr
    assert len(bad_value.stderr.strip().splitlines()) == 1
    bad_word = cli("sync", "kind", *args, key=account.key)
    assert bad_word.returncode == 2 and "KEY=VALUE" in bad_word.stderr
    no_key = cli("sync", *args, key=None)
    assert no_key.returncode == 2 and "MARGEN_API_KEY" in no_key.stderr
    job = tmp_path / "bad.toml"
    job.write_text('dest = "x"\nbudget = 3\n')
    bad_job = cli("sync", str(job), "--base-url", emulator.url, key=account.key)
    assert bad_job.returncode == 2 and "unknown key 'budget'" in bad_job.stderr
    assert emulator.admin.ledger(account.name)["charge_count"] == 0


def test_auth_budget_partial_and_lock_exit_codes(emulator, account, tmp_path):
    args = ("--base-url", emulator.url, "--benchmark", BENCH, "--rate-limit", "100000")
    revoked = emulator.admin.create_key("live", balance=100, account="acct_revoked")
    emulator.admin.revoke_key(revoked)
    denied = cli("sync", "--dest", str(tmp_path / "r"), *args, key=revoked)
    assert denied.returncode == 3 and "unauthorized" in denied.stderr
    _no_key(denied, revoked)

    budget = cli("sync", "--dest", str(tmp_path / "b"), "--max-credits", "5", *args, key=account.key)
    assert budget.returncode == 4 and "--max-credits 5 reached" in budget.stderr
    assert emulator.admin.ledger(account.name)["charge_count"] == 5

    dest = tmp_path / "l"
    with DestLock(Layout.prepare(dest)):
        locked = cli("sync", "--dest", str(dest), *args, key=account.key)
    assert locked.returncode == 6 and "pid" in locked.stderr
    assert emulator.admin.ledger(account.name)["charge_count"] == 5

    emulator.admin.set_faults(storage_truncate=1.0)
    partial = cli("sync", "--dest", str(tmp_path / "p"), "kind=real", "perturbation=clean", "--retries", "1",
                  *args, key=account.key)
    emulator.admin.set_faults(storage_truncate=0.0)
    assert partial.returncode == 5 and "run the same command again" in partial.stderr
    resumed = cli("sync", "--dest", str(tmp_path / "p"), "kind=real", "perturbation=clean", *args, key=account.key)
    assert resumed.returncode == 0
    reals = {i["id"] for i in all_items(emulator, account, kind="real", perturbation="clean")}
    ledger = emulator.admin.ledger(account.name)
    assert reals <= set(ledger["owned"])
    assert ledger["charge_count"] == len(set(ledger["owned"])), "failed fetches were not paid twice"


def _hear_ctrl_c() -> None:
    """A shell starts a background job (``pytest … &``) with SIGINT ignored, and its children inherit
    that: the sync would then never hear the Ctrl-C this test sends. Give it the terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_and_resumes(emulator, account, tmp_path):
    dest = tmp_path / "m"
    emulator.admin.set_faults(latency_ms=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_")}
    env["MARGEN_API_KEY"] = account.key
    proc = subprocess.Popen([sys.executable, "-m", "mirror", "sync", "--dest", str(dest), "--benchmark", BENCH,
                             "--base-url", emulator.url, "--rate-limit", "100000", "--concurrency", "4"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_hear_ctrl_c)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any((dest / "images").rglob("*.jpg")):
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run the same command again to resume" in err, out + err
    emulator.admin.set_faults(latency_ms=0)
    done = cli("sync", "--dest", str(dest), "--benchmark", BENCH, "--base-url", emulator.url, "--rate-limit",
               "100000", key=account.key)
    assert done.returncode == 0
    total = len(all_items(emulator, account))
    assert mirror.open_manifest(dest).count_rows() == total
    assert emulator.admin.ledger(account.name)["charge_count"] == total


def test_demo_runs_the_whole_loop_sync_score_report(tmp_path):
    dest = tmp_path / "demo"
    demo = cli("demo", "--detectors", "--items", "150", "--dest", str(dest), key=None, cwd=tmp_path, timeout=240)
    assert demo.returncode == 0, demo.stderr
    assert "margen-mirror complete: 150 matching" in demo.stderr and "up-to-date" in demo.stderr
    assert mirror.open_manifest(dest).count_rows() == 150
    for name in ("synthetiq", "deepfake-detection", "mirror.detectors.reference.spectral_peakiness"):
        assert f"score {'python:' if 'reference' in name else ''}" in demo.stderr
        assert list((dest / "scores" / name).glob("*.parquet")), name
    metrics = json.loads((dest / "reports" / "demo" / "metrics.json").read_text())
    assert sorted(metrics["detectors"]) == sorted(["synthetiq", "deepfake-detection",
                                                   "mirror.detectors.reference.spectral_peakiness"])
    html = (dest / "reports" / "demo" / "report.html").read_text()
    assert "loses most under" in html and "http://" not in html and "https://" not in html


def test_emulator_verbs_print_ready(tmp_path):
    verbs = (["emulator", "--items", "100", "--data-dir", str(tmp_path / "emu")],
             ["detector-emulator", "--service", "synthetiq"],
             ["detector-emulator", "--service", "deepfake-detection"])
    for verb in verbs:
        proc = subprocess.Popen([sys.executable, "-m", "mirror", *verb, "--port", "0"], stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout.readline().startswith("READY http://127.0.0.1:")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_a_sync_never_imports_pyarrow_dataset_or_anyios_backend(emulator, account, tmp_path):
    """pyarrow.dataset is for readers (status, score, report): its import costs a sync ~10 ms and ~15 MB.
    anyio's asyncio backend (for the score run) cost a sync 30-50 ms of CPU before its first download."""
    dest = tmp_path / "m"
    code = ("import sys; from mirror.cli import main; code = main(sys.argv[1:]); "
            "print('pyarrow.dataset' in sys.modules or 'anyio._backends._asyncio' in sys.modules, file=sys.stderr); "
            "sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_")}
    env["MARGEN_API_KEY"] = account.key
    proc = subprocess.run([sys.executable, "-c", code, "sync", "--benchmark", BENCH, "--dest", str(dest),
                           "--base-url", emulator.url, "--rate-limit", "100000", "-q", "kind=real"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "False"
    assert [p.name[:10] for p in (dest / "manifest").glob("*.parquet")] == ["compacted-"]


@pytest.mark.parametrize("verb", ["status", "verify", "compact"])
def test_a_verb_that_reads_a_mirror_refuses_a_path_that_is_not_one(verb, tmp_path):
    """A typo'd DEST in a cron job must not read as "0 items, all ok" with exit 0."""
    missing = cli(verb, str(tmp_path / "no-such-dest"), key=None)
    assert missing.returncode == 2 and "does not exist: nothing is mirrored there" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (tmp_path / "no-such-dest").exists()
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli(verb, str(afile), key=None).returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(verb, str(empty), key=None).returncode == 0          # an empty folder is a fresh DEST


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version
    run = cli("--version", key=None)
    assert run.returncode == 0 and run.stdout.strip() == f"margen-mirror {version('margen-mirror')}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_name_every_verb_and_bash_parses_it(shell, tmp_path):
    run = cli("completion", shell, key=None)
    assert run.returncode == 0, run.stderr
    for word in ("benchmarks", "sync", "verify", "score", "report", "completion", "--api-key-file", "--max-credits"):
        assert word in run.stdout, word
    if shell == "bash":
        script = tmp_path / "margen-mirror.bash"
        script.write_text(run.stdout)
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True).returncode == 0
        # and, sourced, it completes the verbs
        probe = (f'source {script}; COMP_WORDS=(margen-mirror sy); COMP_CWORD=1; COMP_LINE="margen-mirror sy"; '
                 'COMP_POINT=${#COMP_LINE}; _shtab_margen_mirror; echo "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
        assert "sync" in done.stdout.split(), done.stdout + done.stderr


def test_emulator_prints_its_keys_under_ready_and_they_work(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mirror", "emulator", "--items", "50", "--port", "0",
                             "--data-dir", str(tmp_path / "emu")], stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("READY http://127.0.0.1:")
        url = ready.split()[1]
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        live, test, try_line = lines
        assert live.startswith("key mgn_live_demo: live tier, balance 1,000,000 credits, 6,000 requests/min")
        assert test.startswith("key mgn_test_demo: test tier") and "6,000 requests/min" in test
        assert url in try_line and "MARGEN_API_KEY=mgn_live_demo" in try_line
        usage = cli("usage", "--base-url", url, key="mgn_live_demo")
        assert usage.returncode == 0 and "tier live, balance 1000000" in usage.stdout, usage.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    helped = cli("emulator", "--help", key=None)
    assert "mgn_live_demo" in helped.stdout and "mgn_test_demo" in helped.stdout and "requests/min" in helped.stdout
