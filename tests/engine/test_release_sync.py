"""``sync --source release|auto``: the same DEST and manifest as per image, checked against the emulator's ledger."""

from __future__ import annotations

import hashlib
import json

import pytest
from mirror_testkit import Account, all_items, cli, do_sync

import mirror
from mirror.config import ApiKey
from mirror.engine.sync import run_plan
from mirror.jobs import Selection, SyncJob
from mirror.store.reservations import Purchase, ReservationLog

BENCH = "synthetic-face-v1"


def _rows(dest) -> list[dict]:
    return mirror.open_manifest(dest).to_table().to_pylist()


def _calls(emulator, account: Account) -> int:
    return emulator.admin.counters()["api_requests_by_account"].get(account.name, 0)


def _assert_mirror(emulator, dest, expected: list[dict]) -> list[dict]:
    """Every expected image once on disk and once in the manifest, byte for byte as served."""
    rows = _rows(dest)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) == {i["id"] for i in expected}
    files = [p for p in (dest / "images").rglob("*") if p.is_file()]
    assert len(files) == len(rows), "one file per row, no stray or half-written file"
    by_id = {i["id"]: i for i in expected}
    for row in rows:
        body = (dest / row["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == row["sha256"] and len(body) == row["bytes"]
        for field in ("kind", "skin_tone", "gender", "generator", "perturbation", "layer", "base_id",
                      "source_real_id", "identity_id", "scene"):
            assert row[field] == by_id[row["id"]].get(field)
        assert json.loads(row["attributes"]) == by_id[row["id"]]["attributes"]
    for row in rows[:: max(1, len(rows) // 20)]:
        assert (dest / row["path"]).read_bytes() == emulator.admin.image_bytes(row["id"])
    assert not list((dest / ".state" / "tmp").iterdir())
    return rows


async def test_a_release_pull_fills_the_same_dest_and_a_per_image_rerun_is_a_two_call_noop(emulator, account,
                                                                                            tmp_path):
    dest = tmp_path / "m"
    report = await do_sync(emulator, account, dest, filters={"kind": "fake"}, source="release")
    fakes = all_items(emulator, account, kind="fake")
    assert report.status == "complete" and report.exit_code == 0, (report.message, report.failures[:3])
    assert report.source == "release" and report.release == f"{BENCH}.0"
    assert report.mirrored == len(fakes) == report.charged and report.failed == 0
    rows = _assert_mirror(emulator, dest, fakes)
    assert all(json.loads(r["extra"]) == {"release": f"{BENCH}.0"} and r["charged"] is True for r in rows)
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(fakes) == len(set(ledger["owned"]))
    assert [(p["release"], p["credits"]) for p in ledger["release_pulls"]] == [(f"{BENCH}.0", len(fakes))]
    assert emulator.admin.counters()["downloads"] == 0, "not one image fetched through /download"
    assert (dest / ".state" / "journal.jsonl").read_text() == "", "nothing left pending"

    before = _calls(emulator, account)
    again = await do_sync(emulator, account, dest, filters={"kind": "fake"})       # per image, the default
    assert again.status == "up-to-date" and again.charged == 0 and _calls(emulator, account) - before == 2
    status = cli("status", str(dest), "--json", key=None)
    assert status.returncode == 0 and json.loads(status.stdout)["items"] == len(fakes) == \
        json.loads(status.stdout)["charged"]
    verify = cli("verify", str(dest), "--json", key=None)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] == len(fakes)
    assert emulator.admin.ledger(account.name)["charge_count"] == len(fakes)


async def test_one_dest_mixes_both_sources_and_nothing_is_written_or_paid_twice(emulator, account, tmp_path):
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest, filters={"kind": "real", "perturbation": "clean"})
    second = await do_sync(emulator, account, dest, source="release")
    everything = all_items(emulator, account)
    assert second.status == "complete", second.message
    assert second.charged == len(everything) - first.mirrored == second.mirrored
    rows = _assert_mirror(emulator, dest, everything)
    by_source = [json.loads(r["extra"] or "{}").get("release") for r in rows]
    assert by_source.count(None) == first.mirrored and by_source.count(f"{BENCH}.0") == second.mirrored
    assert all(r["charged"] for r in rows), "every image was bought once, by one way or the other"
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(everything) == len(set(ledger["owned"]))
    third = await do_sync(emulator, account, dest, source="release")
    assert third.status == "up-to-date" and third.charged == 0 and third.mirrored == 0


async def test_auto_takes_the_release_only_when_it_covers_the_selection_for_no_more_credits(emulator, account,
                                                                                             tmp_path):
    whole = await do_sync(emulator, account, tmp_path / "a", filters={"kind": "fake"}, source="auto")
    assert whole.source == "release" and whole.status == "complete"
    gen = all_items(emulator, account, kind="fake")[0]["generator"]
    other = Account(emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account="acct_auto"),
                    "acct_auto")
    # generator= alone: the release would add the real sets, which per image does not buy
    narrow = await do_sync(emulator, other, tmp_path / "b", filters={"generator": gen}, source="auto")
    assert narrow.source == "per-image" and narrow.status == "complete"
    assert narrow.charged == len(all_items(emulator, other, generator=gen))
    assert emulator.admin.ledger("acct_auto")["release_pulls"] == []
    lineage = await do_sync(emulator, other, tmp_path / "c", filters={"source_real_id": "real_000001"},
                            source="auto")
    assert lineage.source == "per-image" and lineage.status == "complete"


async def test_nothing_is_bought_past_max_credits_or_the_balance(emulator, account, tmp_path):
    fakes = len(all_items(emulator, account, kind="fake"))
    stopped = await do_sync(emulator, account, tmp_path / "a", filters={"kind": "fake"}, source="release",
                            max_credits=fakes - 1)
    assert stopped.status == "budget" and stopped.exit_code == 4 and "nothing was bought" in stopped.message
    assert f"up to {fakes:,} credits" in stopped.message and stopped.mirrored == 0
    assert emulator.admin.ledger(account.name)["charge_count"] == 0
    # auto buys what the budget allows, image by image
    partial = await do_sync(emulator, account, tmp_path / "a", filters={"kind": "fake"}, source="auto",
                            max_credits=10)
    assert partial.source == "per-image" and partial.status == "budget" and partial.charged == 10
    poor = Account(emulator.admin.create_key("live", balance=5, rate_limit=100_000, account="acct_poor"), "acct_poor")
    broke = await do_sync(emulator, poor, tmp_path / "b", filters={"kind": "fake"}, source="release")
    assert broke.status == "budget" and "the balance is 5" in broke.message
    assert emulator.admin.ledger("acct_poor")["charge_count"] == 0


async def test_bad_input_costs_nothing_and_says_what_would_match(emulator, account, tmp_path):
    with pytest.raises(mirror.UsageError, match=f"available: {BENCH}.0"):
        await do_sync(emulator, account, tmp_path / "a", source="release", release=f"{BENCH}.9")
    with pytest.raises(mirror.UsageError, match=r"no shard set matches.*condition: .*clean"):
        await do_sync(emulator, account, tmp_path / "a", filters={"layer": "clean", "perturbation": "jpeg_q70"},
                      source="release")
    with pytest.raises(mirror.UsageError, match="does not select whole shard sets"):
        await do_sync(emulator, account, tmp_path / "a", filters={"scene": "indoor"}, source="release")
    with pytest.raises(mirror.UsageError, match="--source release"):
        await do_sync(emulator, account, tmp_path / "a", release=f"{BENCH}.0")
    with pytest.raises(mirror.UsageError, match="local DEST only"):
        await mirror.sync("s3://bucket/faces", benchmark=BENCH, api_key=account.key, base_url=emulator.url,
                          source="release")
    assert emulator.admin.ledger(account.name)["charge_count"] == 0
    assert not (tmp_path / "a").exists(), "a refused run creates nothing"


async def test_test_keys_have_no_release_and_auto_mirrors_their_sample(emulator, tmp_path):
    test = Account(emulator.admin.create_key("test", rate_limit=100_000, account="acct_t"), "acct_t")
    with pytest.raises(mirror.UsageError, match=r"coverage partial.*--source per-image"):
        await do_sync(emulator, test, tmp_path / "a", filters={"kind": "fake"}, source="release")
    assert not (tmp_path / "a").exists()
    auto = await do_sync(emulator, test, tmp_path / "b", filters={"kind": "fake"}, source="auto")
    assert auto.source == "per-image" and auto.status == "complete" and auto.mirrored > 0


async def test_plan_shows_both_ways_and_the_choice(emulator, account, tmp_path):
    job = SyncJob(selection=Selection(benchmark=BENCH, filters={"kind": ("fake",)}), dest=tmp_path / "m")
    plan = await run_plan(job, api_key=ApiKey(account.key), base_url=emulator.url, source="auto")
    fakes = len(all_items(emulator, account, kind="fake"))
    ways = plan.ways
    assert ways is not None and ways.choice == "release" and ways.release == f"{BENCH}.0"
    assert ways.per_image.credits == fakes == ways.release_costs.credits == ways.release_costs.items
    assert ways.per_image.api_calls > ways.release_costs.api_calls
    text = "\n".join(plan.lines())
    assert "per image" in text and f"release          {BENCH}.0" in text and "would use        release" in text
    assert emulator.admin.ledger(account.name)["charge_count"] == 0 and not (tmp_path / "m").exists()
    plain = await run_plan(job, api_key=ApiKey(account.key), base_url=emulator.url)
    assert plain.ways.choice == "per-image" and "the default" in plain.ways.reason


async def test_a_later_release_pulls_only_what_is_new(emulator, account, tmp_path):
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest, filters={"kind": "fake"}, source="release")
    mtimes = {p: p.stat().st_mtime_ns for p in (dest / "images").rglob("*.jpg")}
    emulator.admin.append_items(80)
    second = await do_sync(emulator, account, dest, filters={"kind": "fake"}, source="release")
    fakes = all_items(emulator, account, kind="fake")
    assert second.release == f"{BENCH}.1" and second.status == "complete"
    assert second.charged == second.mirrored == len(fakes) - first.mirrored
    _assert_mirror(emulator, dest, fakes)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items()), "images already here are not written again"
    assert emulator.admin.ledger(account.name)["charge_count"] == len(fakes)


async def test_an_older_release_then_per_image_for_the_rest(emulator, account, tmp_path):
    dest = tmp_path / "m"
    emulator.admin.append_items(40)
    old = await do_sync(emulator, account, dest, filters={"kind": "real"}, source="release", release=f"{BENCH}.0")
    reals = all_items(emulator, account, kind="real")
    assert old.status == "complete" and old.release == f"{BENCH}.0" and old.mirrored < len(reals)
    rest = await do_sync(emulator, account, dest, filters={"kind": "real"})
    assert rest.status == "complete" and rest.charged == len(reals) - old.mirrored
    _assert_mirror(emulator, dest, reals)
    assert emulator.admin.ledger(account.name)["charge_count"] == len(reals)


async def test_a_pending_purchase_whose_request_never_left_is_dropped_and_a_402_buys_nothing(emulator, tmp_path):
    poor = Account(emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account="acct_p"),
                   "acct_p")
    dest = tmp_path / "m"
    await do_sync(emulator, poor, dest, filters={"kind": "real", "perturbation": "clean"})    # DEST exists
    reals = len(all_items(emulator, poor, kind="real"))
    key = f"{BENCH} {BENCH}.0 " + json.dumps({"kind": ["real"]})
    spec = {"benchmark": BENCH, "release": f"{BENCH}.0", "filters": {"kind": ["real"]},
            "selections": [{"kind": ["real"]}]}
    clean = len(all_items(emulator, poor, kind="real", perturbation="clean"))
    journal = ReservationLog(dest / ".state" / "journal.jsonl")       # as if killed right after journaling the buy
    journal.purchasing(Purchase(key, {**spec, "quote": reals - clean, "owned_before": clean, "here_before": clean}))
    journal.close()
    dropped = await do_sync(emulator, poor, dest, filters={"kind": "real", "perturbation": "clean"})
    assert dropped.status == "up-to-date" and not ReservationLog(dest / ".state" / "journal.jsonl").purchases

    journal = ReservationLog(dest / ".state" / "journal.jsonl")       # owned moved since: it may have been bought
    journal.purchasing(Purchase(key, {**spec, "quote": reals, "owned_before": 0, "here_before": 0}))
    journal.close()
    emulator.admin.set_balance("acct_p", 3)
    refused = await do_sync(emulator, poor, dest, filters={"kind": "real", "perturbation": "clean"})
    assert refused.status == "budget" and f"needs {reals - clean:,} credits; the balance is 3" in refused.message
    assert emulator.admin.ledger("acct_p")["charge_count"] == clean and emulator.admin.ledger("acct_p")["balance"] == 3
    assert not ReservationLog(dest / ".state" / "journal.jsonl").purchases, "a 402 buys nothing: nothing left pending"
