"""A DEST with a URL scheme is never taken for a relative local folder.

``--dest s3://bucket/prefix`` used to create a local folder named ``s3:`` and charge every image
into it, with exit 0. Each verb that takes DEST must refuse a scheme it does not handle with one
line, before a credit is spent or a folder is created (checked against the emulator's ledger and
the working directory).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

from mirror_testkit import cli

import mirror
from mirror.errors import UsageError
from mirror.jobs import SyncJob

BENCH = "synthetic-face-v1"
# s3:// is a real destination now (tests/objectstore); every other scheme is refused.
URLS = ["gs://bucket/x", "az://container/x", "file:///tmp/x", "hdfs://nn/x", "S3x://bucket/prefix"]


@pytest.fixture
def acct(emulator):
    return emulator.admin.create_key("live", balance=1000, rate_limit=100_000, account="acct_url"), "acct_url"


@pytest.mark.parametrize("url", URLS)
def test_sync_to_a_url_is_refused_before_any_credit_or_folder(emulator, acct, tmp_path, url):
    key, account = acct
    work = tmp_path / "cwd"
    work.mkdir()
    before = emulator.admin.ledger(account)["charge_count"]
    run = cli("sync", "--benchmark", BENCH, "--dest", url, "--base-url", emulator.url, "--quiet",
              "--rate-limit", "100000", "--max-credits", "3", key=key, cwd=work)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1 and url.split(":")[0] in lines[0] and "Traceback" not in run.stderr, run.stderr
    assert emulator.admin.ledger(account)["charge_count"] == before
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("verb", [["status"], ["verify"], ["compact"], ["report"], ["score", "--detector", "synthetiq"],
                                  ["score", "--detector", "deepfake-detection", "--import-history"]])
def test_other_verbs_refuse_an_unhandled_url_in_one_line(tmp_path, verb):
    run = cli(verb[0], "hdfs://namenode/mirror", *verb[1:], key=None, cwd=tmp_path)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 2 and len(lines) == 1 and "hdfs" in lines[0], run.stderr
    assert list(tmp_path.iterdir()) == []


def test_job_file_with_a_url_dest_is_refused(emulator, acct, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    job = work / "job.toml"
    job.write_text(f'benchmark = "{BENCH}"\ndest = "gs://bucket/faces"\n')
    before = emulator.admin.ledger(acct[1])["charge_count"]
    run = cli("sync", str(job), "--base-url", emulator.url, "--quiet", "--rate-limit", "100000", "--max-credits", "3",
              key=acct[0], cwd=work)
    assert run.returncode == 2 and "gs://" in run.stderr, run.stderr
    assert emulator.admin.ledger(acct[1])["charge_count"] == before
    assert sorted(p.name for p in work.iterdir()) == ["job.toml"]


async def test_library_refuses_a_url_dest(emulator, acct, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(UsageError, match="hdfs://"):
        await mirror.sync("hdfs://nn/faces", benchmark=BENCH, api_key=acct[0], base_url=emulator.url)
    with pytest.raises(UsageError):
        SyncJob(selection=mirror.Selection(benchmark=BENCH), dest=Path("gs://bucket/x"))
    assert list(work.iterdir()) == []
