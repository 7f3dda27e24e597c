"""Release pulls as a user runs them: the CLI verbs, faults on every step, and SIGKILLs at any moment."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mirror_testkit import FAST_RETRIES, Account, all_items, cli, do_sync

import mirror
from mirror.config import Retries
from mirror.store.reservations import ReservationLog, read_purchases

sys.path.insert(0, str(Path(__file__).parents[1] / "chaos"))

from chaos_scenarios import CliRun, check_mirror, cli_cmd, cli_env, served_sha_of

BENCH = "synthetic-face-v1"


def _sync_args(url: str, dest: Path, *extra: str) -> list[str]:
    return ["sync", "--benchmark", BENCH, "--dest", str(dest), "--base-url", url, "--rate-limit", "100000",
            "--quiet", "--source", "release", *extra]


def test_releases_plan_and_sync_verbs(emulator, account, tmp_path):
    args = ("--base-url", emulator.url)
    emulator.admin.append_items(30)
    listed = cli("releases", *args, "--benchmark", BENCH, key=account.key)
    assert listed.returncode == 0 and f"{BENCH}.1  (newest, the default)" in listed.stdout
    assert f"{BENCH}.0" in listed.stdout and "coverage for this key: full" in listed.stdout
    as_json = json.loads(cli("releases", *args, "--json", key=account.key).stdout)
    assert as_json["releases"] == [f"{BENCH}.0", f"{BENCH}.1"] and as_json["newest"] == f"{BENCH}.1"

    dest = tmp_path / "m"
    plan = cli("plan", "kind=fake", "--benchmark", BENCH, "--dest", str(dest), "--source", "auto", *args,
               key=account.key)
    assert plan.returncode == 0 and "would use        release (--source auto)" in plan.stdout
    assert "per image " in plan.stdout and "releases         " in plan.stdout

    pinned = cli(*_sync_args(emulator.url, dest, "--release", f"{BENCH}.0", "kind=fake"), key=account.key)
    assert pinned.returncode == 0, pinned.stderr
    line = pinned.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("margen-mirror complete:") and f"via release {BENCH}.0" in line[0]
    alone = cli("sync", "--benchmark", BENCH, "--dest", str(dest), "--release", f"{BENCH}.0", *args, "--quiet",
                key=account.key)
    assert alone.returncode == 2 and len(alone.stderr.strip().splitlines()) == 1 and "--source" in alone.stderr
    unknown = cli(*_sync_args(emulator.url, dest, "--release", "nope"), key=account.key)
    assert unknown.returncode == 2 and f"available: {BENCH}.0, {BENCH}.1" in unknown.stderr
    for proc in (listed, plan, pinned, alone, unknown):
        assert account.key not in proc.stdout + proc.stderr
    fakes_0 = emulator.admin.ledger(account.name)["release_pulls"][0]["items"]
    assert emulator.admin.ledger(account.name)["charge_count"] == fakes_0


async def test_faults_on_every_step_still_mirror_everything_once_and_report_the_true_cost(emulator, account,
                                                                                         tmp_path):
    emulator.admin.set_faults(release_500_after_purchase=1.0)        # the purchase's answer is lost
    dest = tmp_path / "m"
    stuck = await do_sync(emulator, account, dest, filters={"kind": "real"}, source="release",
                          retries=Retries(attempts=1, backoff=0.01))
    assert stuck.status == "partial" and "run the same command again" in stuck.message
    assert emulator.admin.ledger(account.name)["charge_count"] > 0
    assert ReservationLog(dest / ".state" / "journal.jsonl").purchases, "bought, answer lost: pending"
    emulator.admin.set_faults(release_500_after_purchase=0.0, part_drop=0.15, part_truncate=0.15, part_500=0.15,
                              storage_drop=0.05)
    report = await do_sync(emulator, account, dest, filters={"kind": "real"}, source="release",
                           retries=Retries(attempts=8, backoff=0.01, max_backoff=0.05))
    reals = all_items(emulator, account, kind="real")
    assert report.status == "complete", (report.message, report.failures[:3])
    assert report.charged == len(reals), "the lost answer's credits, counted from what the account owns now"
    faults = emulator.admin.counters()["faults"]
    assert faults.get("part_drop") and faults.get("part_truncate") and faults.get("part_500")
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(i["id"] for i in reals)
    assert all(r["charged"] for r in rows), {r["charged"] for r in rows}
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(reals) and [p["credits"] for p in ledger["release_pulls"]][1:] == [0]


async def test_expired_part_urls_are_renewed_by_one_free_pull(emulator, account, tmp_path):
    # ~150 parts, 8 at a time, 200 ms each: several seconds, with URLs that live one
    emulator.admin.set_faults(url_ttl=1, latency_ms=200)
    report = await do_sync(emulator, account, tmp_path / "m", filters={"kind": "real"}, source="release")
    assert report.status == "complete", (report.message, report.failures[:3])
    pulls = emulator.admin.ledger(account.name)["release_pulls"]
    assert len(pulls) >= 2, "the part URLs expired and were renewed"
    assert [p["credits"] for p in pulls[1:]] == [0] * (len(pulls) - 1), "renewals are free"
    assert emulator.admin.ledger(account.name)["charge_count"] == report.charged == report.mirrored


async def test_parts_already_placed_are_not_fetched_again(emulator, account, tmp_path):
    dest = tmp_path / "m"
    emulator.admin.set_faults(part_500=0.4)
    first = await do_sync(emulator, account, dest, filters={"kind": "fake"}, source="release",
                          retries=Retries(attempts=1, backoff=0.01))
    assert first.status == "partial" and first.failed > 0 and first.exit_code == 5
    assert "run the same command again" in first.message
    placed = len(ReservationLog(dest / ".state" / "journal.jsonl").purchases.popitem()[1].parts_done)
    emulator.admin.set_faults(part_500=0.0)
    emulator.admin.reset_counters()
    second = await do_sync(emulator, account, dest, filters={"kind": "fake"}, source="release",
                           retries=FAST_RETRIES)
    assert second.status == "complete" and second.charged == 0 and second.recovered == second.mirrored > 0
    assert emulator.admin.counters()["storage_ok"] == first.failed, "only the parts that failed"
    assert placed > 0
    fakes = all_items(emulator, account, kind="fake")
    assert mirror.open_manifest(dest).count_rows() == len(fakes) == first.mirrored + second.mirrored
    assert emulator.admin.ledger(account.name)["charge_count"] == len(fakes)


def _count_files(dest: Path) -> int:
    return sum(1 for p in (dest / "images").rglob("*.jpg")) if (dest / "images").exists() else 0


def test_sigkill_at_any_moment_then_rerun_every_image_once_and_charged_once(emulator_factory, tmp_path):
    """Killed before the purchase, right after it, mid-explode, after parts were journaled, and at
    random moments (with dropped parts and lost purchase answers), then run to the end."""
    emu = emulator_factory(items=1200)
    account = Account(emu.admin.create_key("live", balance=100_000, rate_limit=100_000, account="acct_k"), "acct_k")
    emu.admin.set_faults(latency_ms=15, part_drop=0.05, release_500_after_purchase=0.3)
    dest = tmp_path / "m"
    journal = dest / ".state" / "journal.jsonl"
    rng = random.Random(23)
    triggers = {
        "before buying": lambda: False,
        "bought, nothing placed": lambda: emu.admin.ledger(account.name)["charge_count"] > 0,
        "mid-explode": lambda: _count_files(dest) > 40,
        "parts journaled": lambda: journal.exists() and '"op":"parts"' in journal.read_text(),
        "random": lambda: False,
    }
    log: list[CliRun] = []
    killed: list[str] = []
    for phase, reached in triggers.items():
        proc = subprocess.Popen(cli_cmd(*_sync_args(emu.url, dest)), env=cli_env(account.key),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait = {"before buying": 0.3, "random": rng.uniform(0.3, 3.0)}.get(phase, 60.0)
        deadline = time.monotonic() + wait
        while proc.poll() is None and time.monotonic() < deadline and not reached():
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.append(phase)
        out, err = proc.communicate()
        log.append(CliRun(proc.returncode, out, err))
    assert {"bought, nothing placed", "mid-explode", "parts journaled"} <= set(killed), \
        f"killed only at {killed}: slow the emulator down"
    emu.admin.set_faults(latency_ms=0, part_drop=0.0, release_500_after_purchase=0.0)
    final = subprocess.run(cli_cmd(*_sync_args(emu.url, dest)), env=cli_env(account.key), capture_output=True,
                           text=True, timeout=300)
    last = CliRun(final.returncode, final.stdout, final.stderr)
    log.append(last)
    expected = {i["id"] for i in all_items(emu, account)}
    ledger = emu.admin.ledger(account.name)
    checks = check_mirror(dest, expected=expected, served_sha=served_sha_of(emu.admin),
                          charge_count=ledger["charge_count"], final=last, runs=log, key=account.key,
                          refusals=emu.admin.counters()["auth_header_refusals"])
    assert all(ok for ok, _ in checks.values()), {k: why for k, (ok, why) in checks.items() if not ok}
    assert len(set(ledger["owned"])) == len(expected) and all(p["release"] == f"{BENCH}.0"
                                                              for p in ledger["release_pulls"])
    assert not read_purchases(journal)


async def test_parts_streamed_to_temp_files_are_verified_and_leave_nothing_behind(emulator, account, tmp_path,
                                                                                monkeypatch):
    """Every part past the in-memory threshold (here: all of them) is streamed to .state/tmp; dropped
    and truncated ones are fetched again, and no temp file outlives its part."""
    import mirror.engine.release_parts as parts
    monkeypatch.setattr(parts, "SPILL_BYTES", 0)
    emulator.admin.set_faults(part_drop=0.2, part_truncate=0.2)
    dest = tmp_path / "m"
    report = await do_sync(emulator, account, dest, filters={"kind": "fake", "perturbation": "clean"},
                           source="release", retries=Retries(attempts=10, backoff=0.01, max_backoff=0.05))
    assert report.status == "complete", (report.message, report.failures[:3])
    faults = emulator.admin.counters()["faults"]
    assert faults.get("part_drop") and faults.get("part_truncate")
    expected = all_items(emulator, account, kind="fake", perturbation="clean")
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(i["id"] for i in expected)
    assert all((dest / r["path"]).read_bytes() == emulator.admin.image_bytes(r["id"]) for r in rows[:20])
    assert not list((dest / ".state" / "tmp").iterdir())
