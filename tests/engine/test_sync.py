"""A full mirror, the no-op re-run, incremental appends and selections, checked against the emulator."""

from __future__ import annotations

import hashlib

import pyarrow.dataset as ds
from mirror_testkit import all_items, do_sync

import mirror


async def test_full_mirror_matches_emulator_byte_for_byte(emulator, account, tmp_path):
    dest = tmp_path / "m"
    report = await do_sync(emulator, account, dest)
    expected = all_items(emulator, account)
    assert report.status == "complete" and report.exit_code == 0
    assert report.mirrored == len(expected) == report.matching
    assert report.charged == len(expected)

    table = mirror.open_manifest(dest).to_table()
    assert isinstance(mirror.open_manifest(dest), ds.Dataset)
    assert table.num_rows == len(expected)
    rows = table.to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(i["id"] for i in expected)
    keys = [(r["source_real_id"], r["base_id"], r["id"]) for r in rows]
    assert keys == sorted(keys), "manifest is sorted by source_real_id, base_id, id"
    by_id = {i["id"]: i for i in expected}
    for row in rows[:: max(1, len(rows) // 60)]:           # ~60 files compared byte for byte
        body = (dest / row["path"]).read_bytes()
        assert body == emulator.admin.image_bytes(row["id"])
        assert hashlib.sha256(body).hexdigest() == row["sha256"] and len(body) == row["bytes"]
        assert row["width"] > 0 and row["height"] > 0 and row["charged"] is True
        src = by_id[row["id"]]
        for field in ("kind", "skin_tone", "gender", "generator", "perturbation", "layer", "base_id",
                      "source_real_id", "identity_id", "scene"):
            assert row[field] == src.get(field)
        assert row["path"].startswith(f"images/synthetic-face-v1/{row['source_real_id']}/")
    for row in rows:
        assert (dest / row["path"]).is_file()

    ledger = emulator.admin.ledger(account.name)
    assert ledger["charge_count"] == len(expected) == len(set(ledger["owned"]))
    assert not list((dest / ".state" / "tmp").iterdir())
    # a finished run leaves nothing pending, so the next one has no journal lines to replay
    assert (dest / ".state" / "journal.jsonl").read_text() == ""


async def test_second_run_charges_nothing_and_makes_at_most_three_api_calls(emulator, account, tmp_path):
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest)
    charges = emulator.admin.ledger(account.name)["charge_count"]
    before = emulator.admin.counters()["api_requests_by_account"].get(account.name, 0)
    second = await do_sync(emulator, account, dest)
    after = emulator.admin.counters()["api_requests_by_account"].get(account.name, 0)
    assert second.status == "up-to-date" and second.exit_code == 0
    assert second.mirrored == 0 and second.charged == 0
    assert after - before <= 3, f"no-op re-run made {after - before} API calls"
    assert emulator.admin.ledger(account.name)["charge_count"] == charges == first.charged


async def test_rerun_after_append_fetches_only_new_items(emulator, account, tmp_path):
    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest)
    emulator.admin.append_items(40)
    before = emulator.admin.counters()["api_requests_by_account"].get(account.name, 0)
    second = await do_sync(emulator, account, dest)
    calls = emulator.admin.counters()["api_requests_by_account"].get(account.name, 0) - before
    assert second.status == "complete"
    assert second.mirrored == second.charged == 40, second.to_dict()
    assert calls <= 3 + 40 + 1, "resumes from the last page instead of walking everything"
    assert mirror.open_manifest(dest).count_rows() == first.mirrored + 40
    assert emulator.admin.ledger(account.name)["charge_count"] == first.mirrored + 40


async def test_filters_or_within_and_across_and_metadata(emulator, account, tmp_path):
    dest = tmp_path / "m"
    tones = sorted({i["skin_tone"] for i in all_items(emulator, account, kind="fake")})[:2]
    assert len(tones) == 2, "the test corpus has fakes in at least two skin-tone bands"
    filters = {"kind": "fake", "skin_tone": ",".join(tones), "perturbation": "clean,jpeg_q70,fb_pipeline"}
    report = await do_sync(emulator, account, dest, filters=filters, include_metadata=True)
    expected = all_items(emulator, account, **filters)
    assert expected and report.mirrored == len(expected)
    assert len(expected) < len(all_items(emulator, account, kind="fake"))
    table = mirror.open_manifest(dest).to_table().to_pylist()
    assert {r["kind"] for r in table} == {"fake"}
    assert {r["skin_tone"] for r in table} == set(tones)
    assert {r["perturbation"] for r in table} == {"clean", "jpeg_q70", "fb_pipeline"}
    assert all(r["metadata"] and r["metadata"].startswith("{") for r in table)


async def test_lineage_mode_mirrors_whole_lineages(emulator, account, tmp_path):
    dest = tmp_path / "m"
    report = await do_sync(emulator, account, dest, filters={"kind": "real", "perturbation": "clean"}, lineage=True)
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    lineages = {r["source_real_id"] for r in rows}
    expected = [i for i in all_items(emulator, account) if i["source_real_id"] in lineages]
    assert report.status == "complete" and len(rows) == len(expected) == report.mirrored
    assert {r["kind"] for r in rows} == {"real", "fake"}


async def test_unknown_filter_value_is_a_clear_error_and_spends_nothing(emulator, account, tmp_path):
    import pytest
    with pytest.raises(mirror.UsageError, match=r"allowed: .*very_light"):
        await do_sync(emulator, account, tmp_path / "m", filters={"skin_tone": "purple"})
    with pytest.raises(mirror.UsageError, match="unknown filter 'colour'"):
        await do_sync(emulator, account, tmp_path / "m", filters={"colour": "red"})
    assert emulator.admin.ledger(account.name)["charge_count"] == 0
    assert emulator.admin.counters()["api_requests_by_route"].get("download", 0) == 0


async def test_first_page_rides_with_catalog_and_is_dropped_when_catalog_renames_a_filter(emulator, account, tmp_path):
    """A first walk asks for its first page alongside /catalog; the page is used only if /catalog
    takes the selection as given: ``condition`` is an alias, so that page is dropped and walked anew."""
    def calls() -> int:
        return emulator.admin.counters()["api_requests_by_account"].get(account.name, 0)

    clean = {i["id"] for i in all_items(emulator, account, perturbation="clean")}
    before = calls()
    canonical = await do_sync(emulator, account, tmp_path / "a", filters={"perturbation": "clean"})
    # /catalog, the early first page (used), the exclude_owned probe, one /download per item
    assert canonical.api_calls == calls() - before == 3 + len(clean)
    before = calls()
    alias = await do_sync(emulator, account, tmp_path / "b", filters={"condition": "clean"})
    assert alias.api_calls == calls() - before == 4 + len(clean)        # + the first page, asked again
    for dest, report in ((tmp_path / "a", canonical), (tmp_path / "b", alias)):
        assert report.status == "complete" and report.mirrored == len(clean)
        assert set(mirror.open_manifest(dest).to_table(columns=["id"]).column("id").to_pylist()) == clean
    assert emulator.admin.ledger(account.name)["charge_count"] == len(clean)   # the second copy was free


async def test_fetches_reuse_the_connections_reservations_release(emulator, account, tmp_path):
    """Signed URLs here are on the API's origin: a worker's fetch reuses the connection its
    reservation just released (one shared pool), so a run opens about one connection per worker,
    not two. The storage requests still carry no key (the emulator counts any that do)."""
    emulator.admin.set_faults(latency_ms=10)          # every worker is in flight at once
    report = await do_sync(emulator, account, tmp_path / "m", concurrency=8)
    counters = emulator.admin.counters()
    assert report.status == "complete" and report.mirrored == counters["storage_ok"] >= 100
    assert 8 <= counters["connections"] <= 8 + 4, counters["connections"]
    assert counters["auth_header_refusals"] == 0


async def test_an_unreadable_manifest_file_is_named_and_moving_it_away_brings_its_rows_back_free(
        emulator, account, tmp_path):
    """A damaged manifest file stops sync, status and verify with one line naming it; once it is
    moved away, as that line says, the next sync walks again (it is not "up-to-date") and re-fetches
    its items for free."""
    import pytest

    from mirror.errors import DestinationError
    from mirror.inspect.status import read_status
    from mirror.inspect.verify import verify_files

    dest = tmp_path / "m"
    first = await do_sync(emulator, account, dest)
    charges = emulator.admin.ledger(account.name)["charge_count"]
    [damaged] = (dest / "manifest").glob("*.parquet")
    damaged.write_bytes(damaged.read_bytes()[:300])
    for attempt in (lambda: do_sync(emulator, account, dest), lambda: _call(read_status, dest),
                    lambda: _call(verify_files, dest)):
        with pytest.raises(DestinationError, match=f"manifest file {damaged} is unreadable .*move it out"):
            await attempt()
    damaged.rename(tmp_path / damaged.name)
    again = await do_sync(emulator, account, dest)
    assert again.status == "complete" and again.mirrored == first.mirrored, again.to_dict()
    assert mirror.open_manifest(dest).count_rows() == first.mirrored
    assert emulator.admin.ledger(account.name)["charge_count"] == charges          # nothing paid twice
    assert (await do_sync(emulator, account, dest)).status == "up-to-date"


async def _call(fn, *args):
    return fn(*args)
