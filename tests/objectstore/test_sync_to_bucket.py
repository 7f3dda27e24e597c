"""``sync --dest s3://bucket/prefix`` against SeaweedFS: the same guarantees as a local DEST.

Every check reads the bucket back with an independent client (pyarrow's S3FileSystem) and the
account's charges from the emulator's ledger: objects complete and hashed as the manifest says,
no temp objects or lock left, nothing paid twice across a SIGKILL, a stopped server or a second
run, and two runs on one DEST (from two machines: two working folders) never both write.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyarrow import fs

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

from mirror_testkit import Account, all_items, do_sync
from seaweed import READER

import mirror

_names = itertools.count()
NARROW = {"kind": "fake", "skin_tone": "light"}


@pytest.fixture
def account(emulator) -> Account:
    name = f"acct_bucket_{next(_names)}"
    return Account(emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account=name), name)


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch):
    """This test's 'machine': the local working folders of remote DESTs."""
    monkeypatch.setenv("MARGEN_MIRROR_STATE", str(tmp_path / "machine-a"))
    return tmp_path / "machine-a"


def _objects(seaweed, bucket: str) -> dict[str, bytes]:
    store = fs.S3FileSystem(endpoint_override=seaweed.endpoint, scheme="http", region="us-east-1")
    out = {}
    for info in store.get_file_info(fs.FileSelector(bucket, recursive=True)):
        if info.type == fs.FileType.File:
            with store.open_input_stream(info.path) as src:
                out[info.path[len(bucket) + 1:]] = src.read()
    return out


def _check_bucket(seaweed, bucket: str, prefix: str, want: int) -> None:
    """Exactly the manifest's images and manifest files; each image whole and hashed as its row says."""
    objects = _objects(seaweed, bucket)
    rows = mirror.open_manifest(f"s3://{bucket}/{prefix}").to_table().to_pylist()
    assert len(rows) == want and len({r["id"] for r in rows}) == want
    images = {k for k in objects if k.startswith(f"{prefix}/images/")}
    assert images == {f"{prefix}/{r['path']}" for r in rows}
    for r in rows:
        body = objects[f"{prefix}/{r['path']}"]
        assert len(body) == r["bytes"] and hashlib.sha256(body).hexdigest() == r["sha256"]
        assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
    others = set(objects) - images - {k for k in objects if k.startswith(f"{prefix}/manifest/")}
    assert others == set(), others          # no lock, no temp object, nothing beside


def _charges(emulator, account: Account) -> int:
    return emulator.admin.ledger(account.name)["charge_count"]


async def test_sync_into_a_bucket_then_nothing_new(emulator, account, seaweed, bucket):
    url = f"s3://{bucket}/faces"
    want = len(all_items(emulator, account, **NARROW))
    assert want > 20
    report = await do_sync(emulator, account, Path(url), filters=NARROW)
    assert report.status == "complete" and report.dest == url
    assert report.mirrored == want and report.charged == want and _charges(emulator, account) == want
    _check_bucket(seaweed, bucket, "faces", want)
    again = await do_sync(emulator, account, Path(url), filters=NARROW)
    assert again.status == "up-to-date" and again.mirrored == 0 and again.charged == 0
    assert _charges(emulator, account) == want
    _check_bucket(seaweed, bucket, "faces", want)


async def test_lost_objects_are_fetched_again_free(emulator, account, seaweed, bucket):
    url = f"s3://{bucket}/p"
    first = await do_sync(emulator, account, Path(url), filters=NARROW)
    store = fs.S3FileSystem(endpoint_override=seaweed.endpoint, scheme="http", region="us-east-1")
    row = mirror.open_manifest(url).to_table().to_pylist()[0]
    store.delete_file(f"{bucket}/p/{row['path']}")
    report = await do_sync(emulator, account, Path(url), filters=NARROW)
    assert report.mirrored == 1 and report.charged == 0 and report.free == 1
    assert _charges(emulator, account) == first.mirrored
    _check_bucket(seaweed, bucket, "p", first.mirrored)


def _cli_sync(emulator, account, url: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_API")}
    run_env.update({"MARGEN_API_KEY": account.key, **(env or {})})
    return subprocess.Popen([sys.executable, "-m", "mirror", "sync", "--benchmark", "synthetic-face-v1", "--dest", url,
                             "--base-url", emulator.url, "--rate-limit", "100000", "--quiet", *extra],
                            env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_resume_pays_once(emulator, account, seaweed, bucket):
    url = f"s3://{bucket}/k"
    proc = _cli_sync(emulator, account, url, "--concurrency", "4")
    deadline = time.monotonic() + 60
    while _charges(emulator, account) < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    paid_before = _charges(emulator, account)
    assert 0 < paid_before < 300
    done = _cli_sync(emulator, account, url)
    _, err = done.communicate(timeout=240)
    assert done.returncode == 0, err
    items = mirror.open_manifest(url).count_rows()
    assert items == 300 and _charges(emulator, account) == 300        # each item paid exactly once
    _check_bucket(seaweed, bucket, "k", 300)


def test_a_second_machine_is_refused_while_a_run_holds_the_dest(emulator, account, seaweed, bucket, tmp_path):
    url = f"s3://{bucket}/two"
    first = _cli_sync(emulator, account, url, "--concurrency", "2")
    deadline = time.monotonic() + 60
    while _charges(emulator, account) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = _cli_sync(emulator, account, url, env={"MARGEN_MIRROR_STATE": str(tmp_path / "machine-b")})
    _, err = second.communicate(timeout=120)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert second.returncode == 6 and len(lines) == 1 and "in use by another" in lines[0], err


def test_read_only_credentials_refused_before_any_credit(emulator, account, seaweed, bucket):
    env = {"AWS_ACCESS_KEY_ID": READER[0], "AWS_SECRET_ACCESS_KEY": READER[1]}
    run = _cli_sync(emulator, account, f"s3://{bucket}/ro", env=env)
    _, err = run.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, err
    assert READER[1] not in err and "Traceback" not in err
    assert _charges(emulator, account) == 0
    assert _objects(seaweed, bucket) == {}


def test_report_json_names_the_url(emulator, account, seaweed, bucket):
    run = _cli_sync(emulator, account, f"s3://{bucket}/j", "--max-credits", "3", "--json")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 4, err
    doc = json.loads(out)
    assert doc["dest"] == f"s3://{bucket}/j" and doc["mirrored"] == 3
    for secret in (seaweed.env()["AWS_SECRET_ACCESS_KEY"], account.key):
        assert secret not in out + err


def test_server_stopped_mid_run_then_restarted(emulator, account, seaweed, bucket):
    """The store goes away mid-run: one line, exit 5 (run again); once it is back, the next run
    finishes with every item paid once and nothing left behind but the mirror."""
    url = f"s3://{bucket}/down"
    proc = _cli_sync(emulator, account, url, "--concurrency", "4")
    deadline = time.monotonic() + 60
    while _charges(emulator, account) < 30 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    seaweed.stop()
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        seaweed.start()
    lines = err.strip().splitlines()
    assert proc.returncode == 5, err
    assert len(lines) == 1 and str(url) in lines[0] and "Traceback" not in err, err
    assert seaweed.env()["AWS_SECRET_ACCESS_KEY"] not in err
    paid = _charges(emulator, account)
    assert 0 < paid < 300
    done = _cli_sync(emulator, account, url)
    _, err = done.communicate(timeout=240)
    assert done.returncode == 0, err
    assert _charges(emulator, account) == 300
    _check_bucket(seaweed, bucket, "down", 300)


def test_missing_bucket_refused_before_any_credit_or_local_folder(emulator, account, seaweed, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    run = subprocess.run([sys.executable, "-m", "mirror", "sync", "--benchmark", "synthetic-face-v1", "--dest",
                          "s3://no-such-bucket-here/x", "--base-url", emulator.url, "--rate-limit", "100000",
                          "--quiet"],
                         env={**os.environ, "MARGEN_API_KEY": account.key}, cwd=work, capture_output=True,
                         text=True, timeout=120)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "no-such-bucket-here" in lines[0], run.stderr
    assert _charges(emulator, account) == 0 and list(work.iterdir()) == []


async def test_plan_counts_what_the_bucket_holds(emulator, account, seaweed, bucket):
    url = f"s3://{bucket}/plan"
    first = await do_sync(emulator, account, Path(url), filters=NARROW)
    plan = await mirror.plan(url, benchmark="synthetic-face-v1", filters=NARROW, api_key=account.key,
                             base_url=emulator.url)
    assert plan.dest == url and plan.mirrored_here == first.mirrored and plan.to_charge == 0
    assert _charges(emulator, account) == first.mirrored
