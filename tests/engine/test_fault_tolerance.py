"""A 429 storm and server errors on every route: the mirror finishes with no lost item and no double charge."""

from __future__ import annotations

import hashlib

from mirror_testkit import all_items, do_sync

import mirror


async def test_429_storm_and_500s_finish_with_every_item_once(emulator, account, tmp_path):
    dest = tmp_path / "m"
    emulator.admin.set_faults(api_429=0.3, api_500=0.1, download_500_after_debit=0.1, storage_drop=0.05,
                              storage_truncate=0.05)
    subset = {"perturbation": "clean,jpeg_q30,blur_4,noise_10,resize_0.5,fb_pipeline,x_pipeline"}
    report = await do_sync(emulator, account, dest, concurrency=8, filters=subset)
    emulator.admin.set_faults(api_429=0.0, api_500=0.0, download_500_after_debit=0.0, storage_drop=0.0,
                              storage_truncate=0.0)
    counters = emulator.admin.counters()
    assert counters["faults"].get("api_429", 0) > 10 and report.throttled > 10, "the storm really happened"
    assert counters["faults"].get("download_500_after_debit", 0) > 0
    if report.status != "complete":                      # an item may exhaust its retries: a re-run finishes
        report = await do_sync(emulator, account, dest, filters=subset)
    assert report.status == "complete", report.failures[:3]

    expected = {i["id"] for i in all_items(emulator, account, **subset)}
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(expected)
    for row in rows:
        body = (dest / row["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == row["sha256"]
    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(expected) == len(set(ledger["owned"]))
    assert counters["auth_header_refusals"] == 0
