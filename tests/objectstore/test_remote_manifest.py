"""A mirror that lives in a bucket can be read: ``mirror.open_manifest("s3://…")`` and ``status s3://…``.

The mirror is made locally by a real sync against the emulator, then copied into the SeaweedFS
bucket as a user would (``aws s3 sync``). Reads go over the bucket, with credentials and the
endpoint from the AWS_* environment only; a wrong bucket, missing credentials or a stopped server
are one line, never an empty "all ok".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from pyarrow import fs

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

from mirror_testkit import Account, cli, do_sync

import mirror
from mirror.errors import DestinationError, UsageError


@pytest.fixture
def account(emulator) -> Account:
    return Account(emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account="acct_s3"),
                   "acct_s3")


def _upload(local: Path, seaweed, bucket: str, prefix: str) -> None:
    store = fs.S3FileSystem(endpoint_override=seaweed.endpoint, scheme="http", region="us-east-1")
    fs.copy_files(str(local / "manifest"), f"{bucket}/{prefix}/manifest", destination_filesystem=store)
    fs.copy_files(str(local / "images"), f"{bucket}/{prefix}/images", destination_filesystem=store)


@pytest.fixture
async def mirrored(emulator, account, tmp_path, seaweed, bucket):
    local = tmp_path / "local"
    report = await do_sync(emulator, account, local, filters={"kind": "fake"}, max_credits=40)
    assert report.mirrored == 40
    _upload(local, seaweed, bucket, "faces/v1")
    return local, f"s3://{bucket}/faces/v1"


async def test_open_manifest_over_the_bucket(mirrored):
    local, url = mirrored
    dataset = mirror.open_manifest(url)
    assert isinstance(dataset, ds.Dataset)
    assert isinstance(dataset.filesystem, fs.S3FileSystem)
    want = mirror.open_manifest(local).to_table().sort_by("id")
    got = dataset.to_table().sort_by("id")
    assert got.num_rows == 40 and got.equals(want)
    # a Path that pathlib collapsed ("s3:/bucket/…") names the same place
    assert mirror.open_manifest(Path(url)).count_rows() == 40


async def test_status_of_a_bucket_matches_the_local_mirror(mirrored, seaweed):
    local, url = mirrored
    remote = cli("status", url, "--json", key=None, env_extra=seaweed.env())
    here = cli("status", str(local), "--json", key=None)
    assert remote.returncode == 0, remote.stderr
    import json
    a, b = json.loads(remote.stdout), json.loads(here.stdout)
    assert a.pop("dest") == url and b.pop("dest") == str(local)
    assert a == b and a["items"] == 40
    for secret in seaweed.env().values():
        if "secret" in secret:
            assert secret not in remote.stdout + remote.stderr


def test_empty_prefix_reads_as_empty_but_status_refuses_it(seaweed, bucket):
    assert mirror.open_manifest(f"s3://{bucket}/nothing/here").count_rows() == 0
    run = cli("status", f"s3://{bucket}/nothing/here", key=None, env_extra=seaweed.env())
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "nothing is mirrored there" in lines[0], run.stderr


def test_missing_bucket_is_one_line(seaweed):
    with pytest.raises(DestinationError, match="does not exist"):
        mirror.open_manifest("s3://no-such-bucket-xyz/p")
    run = cli("status", "s3://no-such-bucket-xyz/p", key=None, env_extra=seaweed.env())
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_wrong_credentials_are_one_line_without_the_secret(mirrored, seaweed):
    _, url = mirrored
    env = {**seaweed.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123"}
    run = cli("status", url, key=None, env_extra=env)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "wrong-secret-value-123" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_unsupported_or_malformed_urls(seaweed):
    for url, text in (("gs://b/p", "not supported yet"), ("s3:///p", "BUCKET"), ("s3://b/../x", "BUCKET")):
        with pytest.raises(UsageError, match=text):
            mirror.open_manifest(url)


def test_credentials_never_come_from_options():
    from mirror.store.objectstore import storage_options
    with pytest.raises(UsageError, match="never from a flag"):
        storage_options({"secret_key": "x"})
    assert storage_options({"region": "eu-west-1"}) == {"region": "eu-west-1"}
    assert "AWS_SECRET_ACCESS_KEY" in os.environ    # the session's server credentials, from the environment
