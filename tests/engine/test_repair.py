"""``verify --repair`` re-fetches damaged files only where that is free: items the account owns."""

from __future__ import annotations

import json
import urllib.request

from mirror_testkit import Account, all_items, cli, do_sync

import mirror
from mirror.store.reservations import ReservationLog, read_pending

BENCH = "synthetic-face-v1"


def _damage(dest, rows) -> None:
    """Remove the first row's file and garble the second's."""
    (dest / rows[0]["path"]).unlink()
    (dest / rows[1]["path"]).write_bytes(b"\xff\xd8\xff garbled \xff\xd9")


def _buy(emulator, account: Account, item_id: str) -> None:
    req = urllib.request.Request(f"{emulator.url}/api/v1/data/download/{item_id}",
                                 headers={"Authorization": f"Bearer {account.key}", "Idempotency-Key": f"t-{item_id}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["charged"] is True


async def test_repair_never_buys_an_item_the_account_does_not_own(emulator_factory, tmp_path):
    """A DEST filled by one account, repaired with another key: only what that account owns comes back."""
    emulator = emulator_factory(items=1500)
    owner, other = (Account(emulator.admin.create_key("live", balance=1000, rate_limit=100_000, account=name), name)
                    for name in ("acct_owner", "acct_other"))
    dest = tmp_path / "m"
    await do_sync(emulator, owner, dest, filters={"perturbation": "clean"})    # one item per base image
    rows = sorted(mirror.open_manifest(dest).to_table().to_pylist(), key=lambda r: r["base_id"])
    assert len({r["base_id"] for r in rows}) == len(rows) > 50, "more base images than one ownership request asks"
    _damage(dest, rows)
    for row in rows[2:]:
        (dest / row["path"]).unlink()
    bought = [rows[1], rows[-1]]                  # one in each ownership request (50 base images each)
    for row in bought:
        _buy(emulator, other, row["id"])
    listings = emulator.admin.counters()["api_requests_by_route"].get("items", 0)

    proc = cli("verify", str(dest), "--repair", "--base-url", emulator.url, "--rate-limit", "100000", key=other.key)
    assert proc.returncode == 5, proc.stderr
    assert f"2 repaired, {len(rows) - 2} not repaired: not owned by this account" in proc.stdout, proc.stdout
    assert emulator.admin.ledger(other.name)["charge_count"] == 2, "only the purchases above: the repair bought nothing"
    asked = emulator.admin.counters()["api_requests_by_route"]["items"] - listings
    assert -(-len(rows) // 50) <= asked < len(rows) // 4, f"{asked} listings: ownership is asked in batches"
    for row in bought:
        assert (dest / row["path"]).read_bytes() == emulator.admin.image_bytes(row["id"])
    assert not (dest / rows[0]["path"]).exists(), "not owned: left as it was"
    assert rows[0]["id"] not in (dest / ".state" / "journal.jsonl").read_text(), "not queued for the next run"

    again = cli("verify", str(dest), "--repair", "--base-url", emulator.url, "--rate-limit", "100000", key=owner.key)
    assert again.returncode == 0 and f"{len(rows) - 2} repaired" in again.stdout, again.stdout
    assert emulator.admin.ledger(owner.name)["charge_count"] == len(rows), "the owner's repair is free"
    assert cli("verify", str(dest), key=None).returncode == 0


async def test_a_test_tier_repair_is_free_without_asking_ownership(emulator, tmp_path):
    tester = Account(emulator.admin.create_key("test", rate_limit=100_000, account="acct_tester"), "acct_tester")
    dest = tmp_path / "m"
    report = await do_sync(emulator, tester, dest)
    assert report.status == "complete" and report.mirrored >= 2 and report.charged == 0
    rows = sorted(mirror.open_manifest(dest).to_table().to_pylist(), key=lambda r: r["id"])
    _damage(dest, rows)
    listings = emulator.admin.counters()["api_requests_by_route"].get("items", 0)
    proc = cli("verify", str(dest), "--repair", "--base-url", emulator.url, "--rate-limit", "100000", key=tester.key)
    assert proc.returncode == 0 and "2 repaired" in proc.stdout, proc.stdout + proc.stderr
    assert emulator.admin.counters()["api_requests_by_route"].get("items", 0) == listings, "nothing to ask"
    for row in rows[:2]:
        assert (dest / row["path"]).read_bytes() == emulator.admin.image_bytes(row["id"])


async def test_repair_leaves_an_unanswered_reservation_of_an_interrupted_sync_for_the_next_sync(emulator, account,
                                                                                              tmp_path):
    """A journal entry whose /download answer never came may not have reached the server: finishing
    it could buy it, so a repair leaves it pending. One whose answer came (owned) is finished."""
    dest = tmp_path / "m"
    await do_sync(emulator, account, dest, filters={"kind": "real"})
    rows = sorted(mirror.open_manifest(dest).to_table().to_pylist(), key=lambda r: r["id"])
    (dest / rows[0]["path"]).unlink()
    fakes = sorted(i["id"] for i in all_items(emulator, account, kind="fake"))
    unanswered, answered = fakes[0], fakes[1]
    _buy(emulator, account, answered)             # its answer came: owned, charged
    journal = ReservationLog(dest / ".state" / "journal.jsonl")
    journal.reserving(unanswered, BENCH, "t1")         # killed before the answer: never reached the server
    journal.reserving(answered, BENCH, "t2")
    journal.reserved(answered, charged=True)
    journal.close()
    charges = emulator.admin.ledger(account.name)["charge_count"]

    proc = cli("verify", str(dest), "--repair", "--base-url", emulator.url, "--rate-limit", "100000", key=account.key)
    assert proc.returncode == 0 and "1 repaired" in proc.stdout, proc.stdout + proc.stderr
    assert emulator.admin.ledger(account.name)["charge_count"] == charges, "the repair bought nothing"
    ids = set(mirror.open_manifest(dest).to_table(columns=["id"]).column("id").to_pylist())
    assert answered in ids and unanswered not in ids
    assert set(read_pending(dest / ".state" / "journal.jsonl")) == {unanswered}    # for the next sync
