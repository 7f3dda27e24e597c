"""``verify [--repair]`` and ``compact`` on ``s3://…``, against SeaweedFS and the emulator's ledger."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from pyarrow import fs

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

from mirror_testkit import Account, cli, do_sync

import mirror

_names = itertools.count()
NARROW = {"kind": "fake", "skin_tone": "light"}


@pytest.fixture
def account(emulator) -> Account:
    name = f"acct_verbs_{next(_names)}"
    return Account(emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account=name), name)


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MARGEN_MIRROR_STATE", str(tmp_path / "machine-a"))


def _store(seaweed) -> fs.S3FileSystem:
    return fs.S3FileSystem(endpoint_override=seaweed.endpoint, scheme="http", region="us-east-1")


def _run(verb: str, *args: str, account: Account | None = None, emulator=None):
    extra = ["--base-url", emulator.url] if emulator is not None and verb == "verify" and "--repair" in args else []
    return cli(verb, *args, *extra, key=account.key if account else None,
               env_extra={"MARGEN_MIRROR_STATE": os.environ["MARGEN_MIRROR_STATE"]})


async def test_verify_finds_and_repair_refetches_free(emulator, account, seaweed, bucket):
    url = f"s3://{bucket}/v"
    first = await do_sync(emulator, account, Path(url), filters=NARROW)
    paid = emulator.admin.ledger(account.name)["charge_count"]
    assert paid == first.mirrored > 2
    ok = _run("verify", url, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] == first.mirrored

    rows = sorted(mirror.open_manifest(url).to_table().to_pylist(), key=lambda r: r["id"])
    store = _store(seaweed)
    store.delete_file(f"{bucket}/v/{rows[0]['path']}")
    with store.open_output_stream(f"{bucket}/v/{rows[1]['path']}") as out:
        out.write(b"\xff\xd8 not the image \xff\xd9")
    bad = _run("verify", url)
    assert bad.returncode == 5 and "1 missing, 1 corrupt" in bad.stdout and "--repair" in bad.stdout, bad

    fixed = _run("verify", url, "--repair", account=account, emulator=emulator)
    assert fixed.returncode == 0 and "2 repaired" in fixed.stdout, fixed.stderr + fixed.stdout
    assert emulator.admin.ledger(account.name)["charge_count"] == paid       # a repair never buys
    again = _run("verify", url, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["ok"] == first.mirrored, again.stdout
    keys = [i.path for i in store.get_file_info(fs.FileSelector(f"{bucket}/v", recursive=True))
            if i.type == fs.FileType.File]
    assert not [k for k in keys if "/.state/" in k or ("/images/" not in k and "/manifest/" not in k)]


async def test_compact_merges_the_buckets_manifest(emulator, account, seaweed, bucket):
    url = f"s3://{bucket}/c"
    await do_sync(emulator, account, Path(url), filters={"kind": "fake"}, max_credits=10)
    await do_sync(emulator, account, Path(url), filters={"kind": "real"}, max_credits=10)
    store = _store(seaweed)
    [only] = [i.path for i in store.get_file_info(fs.FileSelector(f"{bucket}/c/manifest"))]
    store.copy_file(only, f"{bucket}/c/manifest/part-from-another-run.parquet")     # a second file, same rows
    before = mirror.open_manifest(url).to_table()
    assert before.num_rows == 40
    run = _run("compact", url)
    assert run.returncode == 0 and "20 rows" in run.stdout, run.stderr
    names = [i.base_name for i in store.get_file_info(fs.FileSelector(f"{bucket}/c/manifest"))]
    assert len(names) == 1 and names[0] != "part-from-another-run.parquet", names
    after = mirror.open_manifest(url).to_table()
    assert after.num_rows == 20 and set(after.column("id").to_pylist()) == set(before.column("id").to_pylist())


def test_verify_and_compact_refuse_a_prefix_with_nothing(seaweed, bucket):
    for verb in ("verify", "compact"):
        run = _run(verb, f"s3://{bucket}/empty")
        assert run.returncode == 2 and "nothing is mirrored there" in run.stderr, run.stderr
