"""Selections beyond plain filters: distinct identities, attribute-backed dimensions of another benchmark,
an omitted benchmark, the blocking library call and the shipped job files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mirror_testkit import Account, all_items, do_sync

import mirror
from mirror.jobs import load_job_file

ROOT = Path(__file__).resolve().parents[2]


async def test_distinct_identities_mirrors_one_item_per_person(emulator, account, tmp_path):
    dest = tmp_path / "m"
    selection = mirror.Selection(benchmark="synthetic-face-v1", filters={"kind": ("real",)}, distinct_identities=True)
    job = mirror.SyncJob(selection=selection, dest=dest, limits=mirror.Limits(rate_limit=100_000))
    report = await mirror.sync(job, api_key=account.key, base_url=emulator.url)
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    identities = [r["identity_id"] for r in rows if r["identity_id"]]
    people = {i["identity_id"] for i in all_items(emulator, account, kind="real") if i["identity_id"]}
    assert report.status == "complete" and report.matching is None
    assert len(identities) == len(set(identities)) and set(identities) == people


@pytest.fixture
def two_benchmark_account(emulator) -> Account:
    key = emulator.admin.create_key("live", balance=10_000, rate_limit=100_000, account="acct_both",
                                    benchmarks=["synthetic-face-v1", "passport-pad-v1"])
    return Account(key, "acct_both")


async def test_attribute_backed_dimension_of_another_benchmark(emulator, two_benchmark_account, tmp_path):
    dest = tmp_path / "m"
    report = await do_sync(emulator, two_benchmark_account, dest, benchmark="passport-pad-v1",
                           filters={"document_type": "passport"})
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    assert report.status == "complete" and rows and len(rows) == report.mirrored
    assert {json.loads(r["attributes"])["document_type"] for r in rows} == {"passport"}
    assert all(r["path"].startswith("images/passport-pad-v1/") for r in rows)
    with pytest.raises(mirror.UsageError, match="allowed: "):
        await do_sync(emulator, two_benchmark_account, dest, benchmark="passport-pad-v1",
                      filters={"document_type": "boarding_pass"})
    plan = await mirror.plan(dest, benchmark="passport-pad-v1", filters={"document_type": "passport"},
                             api_key=two_benchmark_account.key, base_url=emulator.url)
    assert plan.mirrored_here == len(rows) and plan.to_charge == 0


async def test_omitted_benchmark_is_resolved_or_explained(emulator, account, two_benchmark_account, tmp_path):
    report = await do_sync(emulator, account, tmp_path / "one", benchmark=None, filters={"kind": "real"})
    assert report.status == "complete" and report.selection.startswith("synthetic-face-v1")
    with pytest.raises(mirror.ApiError) as info:
        await do_sync(emulator, two_benchmark_account, tmp_path / "two", benchmark=None)
    assert info.value.code == "ambiguous_benchmark" and info.value.exit_code == 2
    assert {b["id"] for b in info.value.available} == {"synthetic-face-v1", "passport-pad-v1"}
    assert emulator.admin.ledger("acct_both")["charge_count"] == 0


def test_sync_blocking_for_code_without_an_event_loop(emulator, account, tmp_path):
    report = mirror.sync_blocking(tmp_path / "m", benchmark="synthetic-face-v1", filters={"perturbation": "clean"},
                                  limits=mirror.Limits(rate_limit=100_000), api_key=account.key,
                                  base_url=emulator.url)
    assert report.status == "complete"
    assert report.mirrored == len(all_items(emulator, account, perturbation="clean"))


def test_shipped_job_files_load():
    jobs = sorted((ROOT / "manifests").glob("*.toml"))
    assert len(jobs) >= 2
    for path in jobs:
        job = load_job_file(path)
        assert job.selection.benchmark == "synthetic-face-v1" and job.selection.filters
        assert job.max_credits and job.limits.rate_limit == 60
