"""Money: --max-credits is never exceeded, a 402 stops cleanly and resumes after a top-up, test keys pay nothing."""

from __future__ import annotations

import asyncio

from mirror_testkit import Account, all_items, do_sync

import mirror
from mirror.config import ApiKey
from mirror.engine.sync import run_plan
from mirror.jobs import Selection, SyncJob


async def test_max_credits_is_never_exceeded_and_a_rerun_finishes(emulator, account, tmp_path):
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest, max_credits=25, concurrency=16)
    assert first.status == "budget" and first.exit_code == mirror.errors.EXIT_BUDGET
    assert first.charged == 25 == emulator.admin.ledger(account.name)["charge_count"]
    assert mirror.open_manifest(dest).count_rows() == 25, "every paid item was fetched and written"
    assert "run the same command again" in first.message
    second = await do_sync(emulator, account, dest)
    total = len(all_items(emulator, account))
    assert second.status == "complete"
    assert emulator.admin.ledger(account.name)["charge_count"] == total
    assert mirror.open_manifest(dest).count_rows() == total


async def test_402_mid_run_stops_cleanly_and_resumes_after_top_up(emulator, tmp_path):
    key = emulator.admin.create_key("live", balance=40, rate_limit=100_000, account="acct_poor")
    account = Account(key, "acct_poor")
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest, concurrency=16)
    ledger = emulator.admin.ledger("acct_poor")
    assert first.status == "budget" and first.exit_code == 4
    assert "out of credits" in first.message and "run the same command again" in first.message
    assert ledger["balance"] == 0 and ledger["charge_count"] == 40 == first.charged
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    assert len(rows) == 40 and all((dest / r["path"]).is_file() for r in rows)

    emulator.admin.add_credits("acct_poor", 10_000)
    second = await do_sync(emulator, account, dest)
    total = len(all_items(emulator, account))
    assert second.status == "complete"
    assert emulator.admin.ledger("acct_poor")["charge_count"] == total == first.charged + second.charged
    assert mirror.open_manifest(dest).count_rows() == total


async def test_plan_counts_before_spending(emulator, account, tmp_path):
    dest = tmp_path / "m"
    selection = Selection(benchmark="synthetic-face-v1", filters={"kind": ("fake",)})
    job = SyncJob(selection=selection, dest=dest, max_credits=10)
    plan = await run_plan(job, api_key=ApiKey(account.key), base_url=emulator.url)
    fakes = len(all_items(emulator, account, kind="fake"))
    assert (plan.matching, plan.mirrored_here, plan.owned, plan.to_charge) == (fakes, 0, 0, fakes)
    # /catalog, the count, /usage, and the release listing that shows the other way (issue 23)
    assert plan.balance == 100_000 and not plan.fits and plan.api_calls <= 4
    assert emulator.admin.ledger(account.name)["charge_count"] == 0

    await do_sync(emulator, account, dest, filters={"kind": "fake", "skin_tone": "dark"})
    plan = await run_plan(SyncJob(selection=selection, dest=dest), api_key=ApiKey(account.key),
                          base_url=emulator.url)
    dark = len(all_items(emulator, account, kind="fake", skin_tone="dark"))
    assert (plan.mirrored_here, plan.owned, plan.to_charge) == (dark, dark, fakes - dark)
    assert plan.fits


async def test_test_key_mirrors_the_free_sample_without_touching_the_balance(emulator, tmp_path):
    key = emulator.admin.create_key("test", rate_limit=100_000, account="acct_sampler")
    account = Account(key, "acct_sampler")
    dest = tmp_path / "m"
    report = await do_sync(emulator, account, dest)
    sample = all_items(emulator, account)
    assert report.status == "complete" and report.mirrored == len(sample) > 0
    assert report.charged == 0 and report.free == len(sample)
    assert emulator.admin.ledger("acct_sampler")["charge_count"] == 0


async def test_a_budget_smaller_than_the_concurrency_still_mirrors_every_free_item(emulator, tmp_path):
    """Eight workers, --max-credits 2, every answer free: a worker finding the headroom all out in
    flight waits for it to come back instead of dropping its item (the run said "complete" with 2)."""
    key = emulator.admin.create_key("test", rate_limit=100_000, account="acct_frugal")
    dest = tmp_path / "m"
    report = await do_sync(emulator, Account(key, "acct_frugal"), dest, max_credits=2, concurrency=8)
    sample = all_items(emulator, Account(key, "acct_frugal"))
    assert len(sample) > 8
    assert report.status == "complete" and (report.mirrored, report.free) == (len(sample), len(sample))
    assert mirror.open_manifest(dest).count_rows() == len(sample)


async def test_items_the_account_owns_are_reported_free_in_a_new_dest_and_after_local_loss(emulator, account,
                                                                                         tmp_path):
    """Pulling a selection the account already owns, into a second DEST or again after the manifest
    was lost, costs nothing, and the report, the rows and --max-credits all say so: an earlier version
    sent each item's first key again and was answered with its first reservation ("charged: true")."""
    first = await do_sync(emulator, account, tmp_path / "a", filters={"kind": "real"})
    total = first.mirrored
    assert first.status == "complete" and first.charged == total > 10
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == total

    second = await do_sync(emulator, account, tmp_path / "b", filters={"kind": "real"}, max_credits=5)
    assert second.status == "complete" and second.mirrored == total, second.to_dict()
    assert (second.charged, second.free) == (0, total), "owned: free, and --max-credits was never reached"
    assert second.balance == emulator.admin.ledger(account.name)["balance"] == ledger["balance"]
    rows = mirror.open_manifest(tmp_path / "b").to_table(columns=["charged"]).column("charged").to_pylist()
    assert rows == [False] * total

    for part in (tmp_path / "a" / "manifest").glob("*.parquet"):
        part.unlink()
    again = await do_sync(emulator, account, tmp_path / "a", filters={"kind": "real"}, max_credits=5)
    assert again.status == "complete" and (again.mirrored, again.charged, again.free) == (total, 0, total)
    assert emulator.admin.ledger(account.name)["charge_count"] == total, "nothing paid twice"


async def test_two_machines_pulling_one_selection_at_once_pay_once_and_report_it_once(emulator, account, tmp_path):
    """Each reservation has its own key, so nothing but the account's own-once rule stops two DESTs
    from buying the same item twice while both are in flight: each item is charged once, and the two
    reports together claim exactly the ledger's charges."""
    emulator.admin.set_faults(latency_ms=5)          # so both are in flight on the same items
    one, two = await asyncio.gather(do_sync(emulator, account, tmp_path / "a", concurrency=16),
                                    do_sync(emulator, account, tmp_path / "b", concurrency=16))
    total = len(all_items(emulator, account))
    ledger = emulator.admin.ledger(account.name)
    assert one.status == two.status == "complete" and one.mirrored == two.mirrored == total
    assert ledger["charge_count"] == len(set(ledger["owned"])) == total, "each item paid once"
    assert one.charged + two.charged == total and one.free + two.free == total
    assert min(one.charged, two.charged) > 0, "both were buying at the same time"
    rows = [r for d in ("a", "b") for r in mirror.open_manifest(tmp_path / d).to_table(columns=["charged"]).to_pylist()]
    assert sum(r["charged"] for r in rows) == total
