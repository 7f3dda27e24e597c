"""Crash and expiry recovery: SIGKILL at several points, journal-pending items, expired signed URLs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from mirror_testkit import FAST_RETRIES, FAST_TIMEOUTS, all_items, do_sync

import mirror
from mirror.api.client import MargenClient
from mirror.config import ApiKey, Limits
from mirror.engine.fetch import Fetcher
from mirror.engine.outcome import SyncReport
from mirror.engine.reserve import Budget, Reserver, idempotency_key
from mirror.engine.run import Pipeline, _Work
from mirror.ratelimit import RateLimiter
from mirror.store import Layout, ManifestIndex
from mirror.store.reservations import ReservationLog, read_pending


def _count_files(dest) -> int:
    root = dest / "images"
    return sum(len(files) for _, _, files in os.walk(root)) if root.exists() else 0


def _start(emulator, key, dest) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_")}
    env["MARGEN_API_KEY"] = key
    return subprocess.Popen([sys.executable, "-m", "mirror", "sync", "--benchmark", "synthetic-face-v1",
                             "--dest", str(dest), "--base-url", emulator.url, "--rate-limit", "100000",
                             "--concurrency", "4", "--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


async def test_sigkill_at_several_points_resumes_with_one_charge_per_item(emulator, account, tmp_path):
    dest = tmp_path / "m"
    emulator.admin.set_faults(latency_ms=4)
    kills = 0
    for threshold in (0, 15, 60, 140):
        proc = _start(emulator, account.key, dest)
        deadline = time.monotonic() + 60
        while _count_files(dest) <= threshold and proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 3, "the run finished before it could be killed: slow the emulator down"
    emulator.admin.set_faults(latency_ms=0)
    final = await do_sync(emulator, account, dest)
    assert final.status == "complete", final.failures[:3]

    expected = {i["id"] for i in all_items(emulator, account)}
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    assert all((dest / r["path"]).is_file() for r in rows)
    assert _count_files(dest) == len(expected), "no stray file from a killed run"
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(expected) == len(set(ledger["owned"]))
    assert not list((dest / ".state" / "tmp").iterdir())


async def _stage(emulator, account, dest):
    layout = Layout.prepare(dest)
    journal = ReservationLog(layout.state / "journal.jsonl")
    client = MargenClient(ApiKey(account.key), emulator.url, limiter=RateLimiter(100_000),
                          timeouts=FAST_TIMEOUTS, retries=FAST_RETRIES)
    fetcher = Fetcher(layout, Limits(concurrency=2), FAST_TIMEOUTS, FAST_RETRIES)
    return layout, journal, client, fetcher


async def test_expired_signed_url_is_renewed_for_free(emulator, account, tmp_path):
    item = all_items(emulator, account)[0]
    emulator.admin.set_faults(url_ttl=1)
    layout, journal, client, fetcher = await _stage(emulator, account, tmp_path / "m")
    async with client, fetcher:
        reserver = Reserver(client, journal, Budget(None))
        stale = await reserver.reserve(item["id"], item["benchmark"])
        assert stale.charged
        await asyncio.sleep(1.3)            # the URL is now expired on the server
        # The client does not trust its own clock alone: pretend it still looks valid locally.
        stale = type(stale)(**{**stale.__dict__, "expires_at": time.monotonic() + 60, "ttl": 60})
        report = SyncReport(selection="t", dest=str(layout.dest))
        pipeline = Pipeline(layout=layout, client=client, fetcher=fetcher, journal=journal,
                            index=ManifestIndex.load(layout), reserver=reserver, report=report, concurrency=2)
        await pipeline._fetch_one(_Work(item["id"], item["benchmark"], item), stale)
        pipeline._flush_sync()
    journal.close()
    assert report.mirrored == 1 and report.failed == 0
    assert emulator.admin.counters()["storage_forbidden"] >= 1
    assert emulator.admin.ledger(account.name)["charge_count"] == 1 == reserver.budget.spent, "the renewal was free"
    assert reserver.free == 0, "the item counts once, as charged: the summary's charged + free is its new items"
    row = mirror.open_manifest(layout.dest).to_table().to_pylist()[0]
    assert (layout.dest / row["path"]).read_bytes() == emulator.admin.image_bytes(item["id"])


async def test_paid_but_unwritten_items_are_fetched_free_on_the_next_run(emulator, account, tmp_path):
    items = all_items(emulator, account)[:5]
    dest = tmp_path / "m"
    layout, journal, client, _ = await _stage(emulator, account, dest)
    async with client:
        reserver = Reserver(client, journal, Budget(None))
        for item in items:                  # paid for, then "the process died" before fetching
            await reserver.reserve(item["id"], item["benchmark"])
    journal.close()
    assert emulator.admin.ledger(account.name)["charge_count"] == 5

    report = await do_sync(emulator, account, dest, filters={"kind": "real", "perturbation": "clean"})
    assert report.recovered == 5 and report.failed == 0
    assert emulator.admin.ledger(account.name)["charge_count"] == 5 + report.charged
    rows = {r["id"]: r for r in mirror.open_manifest(dest).to_table().to_pylist()}
    assert all(rows[i["id"]]["charged"] for i in items), "rows remember the earlier run paid"
    assert not ReservationLog(layout.state / "journal.jsonl").pending


async def test_a_reservation_whose_answer_was_lost_is_sent_again_with_its_own_key(emulator, account, tmp_path):
    """Killed after /download was sent, before its answer: the next run repeats that very request,
    so the server answers as it did (charged, and no second debit) and the row says it was paid."""
    items = all_items(emulator, account)[:5]
    reached = items[:3]         # the server got these and charged; the other two never left the process
    dest = tmp_path / "m"
    layout, journal, client, _ = await _stage(emulator, account, dest)
    emulator.admin.set_faults(url_ttl=1)        # so the answers the server replays hold expired URLs
    async with client:
        for item in items:
            journal.reserving(item["id"], item["benchmark"], f"tok-{item['id']}")
        for item in reached:
            key = idempotency_key(item["benchmark"], item["id"], f"tok-{item['id']}")
            await client.download(item["id"], idempotency_key=key)
    journal.close()
    assert emulator.admin.ledger(account.name)["charge_count"] == 3
    await asyncio.sleep(1.2)
    emulator.admin.set_faults(url_ttl=300)

    report = await do_sync(emulator, account, dest, filters={"kind": "real", "perturbation": "clean"})
    assert report.recovered == 5 and report.failed == 0
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(ledger["owned"]) == len(set(ledger["owned"])), "nothing paid twice"
    assert ledger["charge_count"] == report.charged, "the killed run never reported its three"
    assert emulator.admin.counters()["storage_forbidden"] >= 3, "the replayed URLs were stale and renewed"
    rows = {r["id"]: r for r in mirror.open_manifest(dest).to_table().to_pylist()}
    assert all(rows[i["id"]]["charged"] for i in items), "every one of them was paid for"
    assert all((dest / rows[i["id"]]["path"]).read_bytes() == emulator.admin.image_bytes(i["id"]) for i in items)
    assert not ReservationLog(layout.state / "journal.jsonl").pending


async def test_answers_ride_with_the_next_record_and_a_kill_that_loses_them_costs_nothing(emulator, account,
                                                                                         tmp_path):
    """An answer's journal record is written with the next record, not by a system call of its own.
    A kill before that next record leaves those reservations looking unanswered: the next run
    sends their keys again, is told they were charged, and pays nothing more."""
    items = all_items(emulator, account, kind="real", perturbation="clean")[:4]
    dest = tmp_path / "m"
    layout, journal, client, _ = await _stage(emulator, account, dest)
    path = layout.state / "journal.jsonl"
    async with client:
        reserver = Reserver(client, journal, Budget(None))
        await reserver.reserve(items[0]["id"], items[0]["benchmark"])
        assert read_pending(path)[items[0]["id"]].charged is None          # its answer is not on disk yet...
        await reserver.reserve(items[1]["id"], items[1]["benchmark"])
        assert read_pending(path)[items[0]["id"]].charged is True          # ...until the next record is
        for item in items[2:]:
            await reserver.reserve(item["id"], item["benchmark"])
    lost = [i for i, entry in read_pending(path).items() if entry.charged is None]
    assert lost == [items[-1]["id"]]         # killed here: the last answer never reached the disk
    os.close(journal._log._fd)              # killed: the log is left as it is, not compacted
    assert emulator.admin.ledger(account.name)["charge_count"] == 4

    report = await do_sync(emulator, account, dest, filters={"kind": "real", "perturbation": "clean"})
    assert report.recovered == 4 and report.failed == 0
    ledger = emulator.admin.ledger(account.name)
    new = report.mirrored - 4                 # the rest of the selection, bought by this run
    assert ledger["charge_count"] == len(set(ledger["owned"])) == 4 + new, "nothing paid twice"
    assert report.charged == new + 1, "the killed run never reported the lost answer's credit; this one does"
    rows = {r["id"]: r for r in mirror.open_manifest(dest).to_table().to_pylist()}
    assert all(rows[i["id"]]["charged"] for i in items), "each row says it was paid for, the lost one too"


async def test_a_replayed_answer_is_the_servers_answer_of_then_and_leaves_the_balance_alone(emulator, account,
                                                                                            tmp_path):
    lost, other = all_items(emulator, account)[:2]
    _, journal, client, _ = await _stage(emulator, account, tmp_path / "m")
    async with client:
        journal.reserving(lost["id"], lost["benchmark"], "t")     # sent, charged, and its answer never arrived
        await client.download(lost["id"], idempotency_key=idempotency_key(lost["benchmark"], lost["id"], "t"))
        reserver = Reserver(client, journal, Budget(None))
        await reserver.reserve(other["id"], other["benchmark"])
        now = reserver.balance
        replayed = await reserver.reserve(lost["id"], lost["benchmark"])
    journal.close()
    assert now is not None and replayed.charged and replayed.balance == now + 1
    assert reserver.balance == now == emulator.admin.ledger(account.name)["balance"]
    assert emulator.admin.ledger(account.name)["charge_count"] == 2


async def test_an_older_versions_unanswered_reservation_is_finished_free(emulator, account, tmp_path):
    """A journal written before reservations carried a token: its unanswered entry cannot be sent
    again with its own key, so it gets a new one; the account owns the item, so that costs nothing."""
    lost = all_items(emulator, account)[0]
    dest = tmp_path / "m"
    layout, _, client, _ = await _stage(emulator, account, dest)
    async with client:      # the older version's request reached the server and was charged
        await client.download(lost["id"], idempotency_key="mm1-an-older-versions-key")
    (layout.state / "journal.jsonl").write_text(
        f'{{"op":"reserve","id":"{lost["id"]}","b":"{lost["benchmark"]}"}}\n')
    assert emulator.admin.ledger(account.name)["charge_count"] == 1

    report = await do_sync(emulator, account, dest, filters={"kind": "real", "perturbation": "clean"})
    assert report.status == "complete" and report.recovered == 1 and report.failed == 0
    assert emulator.admin.ledger(account.name)["charge_count"] == 1 + report.charged, "not paid twice"
    row = {r["id"]: r for r in mirror.open_manifest(dest).to_table().to_pylist()}[lost["id"]]
    assert (dest / row["path"]).read_bytes() == emulator.admin.image_bytes(lost["id"])
    assert not ReservationLog(layout.state / "journal.jsonl").pending


async def test_an_image_a_killed_run_left_half_written_is_removed_by_the_next_sync(emulator, account, tmp_path):
    """Images are written hidden beside their final path, then renamed; a kill between the two
    leaves the hidden file and a pending reservation, and the next sync removes the one and
    finishes the other."""
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest, max_credits=3)
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    folder = (dest / rows[0]["path"]).parent
    half = folder / ".0123456789ab-41.part"
    half.write_bytes(b"\xff\xd8\xff half a JPEG")
    pending = next(i for i in all_items(emulator, account) if i["id"] not in {r["id"] for r in rows})
    journal = ReservationLog(dest / ".state" / "journal.jsonl")
    journal.reserving(pending["id"], pending["benchmark"], "tok")      # killed before the answer came
    journal.close()

    second = await do_sync(emulator, account, dest, max_credits=3)
    assert first.mirrored == 3 and second.recovered == 1 and second.failed == 0
    assert not half.exists()
    assert not [p for p in (dest / "images").rglob("*") if p.name.endswith(".part")]
    ids = set(mirror.open_manifest(dest).to_table(columns=["id"]).column("id").to_pylist())
    assert pending["id"] in ids
