"""``score --ray`` with local detectors, on a real local Ray cluster: the in-process run's rows, resumable
either way, one model per worker, and a worker killed mid-run changes nothing in the result."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from ray_kit import score_workers

from mirror.cluster import run_score_ray
from mirror.detectors import open_scores, run_score
from mirror.store import open_manifest

SAME = ("id", "sha256", "detector", "label", "p_fake", "raw", "faces", "status", "error")


def _rows(dest: Path, detector: str) -> list[tuple]:
    return sorted(tuple(r[k] for k in SAME) for r in open_scores(dest, detector).to_table().to_pylist())


def _log(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "userdet" / "calls.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def test_ray_run_equals_in_process_run_row_for_row(ray_address, mirrored: Path, twin: Path, userdet: str) -> None:
    detector = f"python:{userdet}:by_path"
    local = await run_score(mirrored, detector, concurrency=4)
    remote = await anyio.to_thread.run_sync(lambda: run_score_ray(twin, detector, workers=2, batch_size=8))
    manifest = open_manifest(mirrored).to_table().to_pylist()
    assert local.status == remote.status == "complete"
    assert remote.scored == local.scored == len(manifest) and remote.failed == 0
    assert remote.submissions == local.submissions and remote.skipped_already == 0
    assert len(_rows(twin, detector)) == len(manifest)
    assert _rows(twin, detector) == _rows(mirrored, detector)


async def test_batch_model_loads_once_per_worker_and_scores_like_in_process(
        ray_address, mirrored: Path, twin: Path, userdet: str, tmp_path: Path) -> None:
    detector = f"python:{userdet}:Model"
    remote = await anyio.to_thread.run_sync(lambda: run_score_ray(twin, detector, workers=2, batch_size=8))
    inits = [int(line[1]) for line in _log(tmp_path) if line[0] == "init"]
    sizes = [int(line[2]) for line in _log(tmp_path) if line[0] == "call"]
    assert remote.status == "complete" and remote.scored > 0
    assert 1 <= len(inits) <= 2 and len(set(inits)) == len(inits) and os.getpid() not in inits   # once per actor
    assert sum(sizes) == remote.scored and max(sizes) > 1                 # files came in batches
    local = await run_score(mirrored, detector, concurrency=8)      # in-process: the same class, batches of <= 8
    assert local.scored == remote.scored
    assert _rows(twin, detector) == _rows(mirrored, detector)
    assert {r[4] for r in _rows(twin, detector)} != {None}


async def test_a_run_resumes_the_other_kind_of_run(ray_address, mirrored: Path, userdet: str) -> None:
    detector = f"python:{userdet}:PerFile"
    manifest = open_manifest(mirrored).to_table().to_pylist()
    fakes = [m for m in manifest if m["kind"] == "fake"]
    first = await anyio.to_thread.run_sync(lambda: run_score_ray(mirrored, detector, filters={"kind": ("fake",)},
                                                                 workers=1, batch_size=16))
    assert first.scored == len(fakes) > 0
    rest = await run_score(mirrored, detector)                           # in-process picks up the rest
    assert rest.skipped_already == len(fakes) and rest.scored == len(manifest) - len(fakes)
    again = await anyio.to_thread.run_sync(lambda: run_score_ray(mirrored, detector, workers=2))
    assert again.scored == 0 and again.skipped_already == len(manifest) and again.status == "complete"
    ids = Counter(r["id"] for r in open_scores(mirrored, detector).to_table().to_pylist())
    assert ids == Counter(m["id"] for m in manifest)                     # every item exactly once


async def test_a_killed_worker_is_replaced_and_every_file_is_scored_once(
        ray_address, mirrored: Path, userdet: str, tmp_path: Path) -> None:
    detector = f"python:{userdet}:slow"
    manifest = open_manifest(mirrored).to_table().to_pylist()

    def kill_one_worker_mid_run() -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(_log(tmp_path)) >= 6:
                victim = int(_log(tmp_path)[-1][0])
                assert victim in score_workers()
                os.kill(victim, signal.SIGKILL)
                return victim
            time.sleep(0.02)
        raise AssertionError("the run never got going")

    with ThreadPoolExecutor(1) as pool:
        killer = pool.submit(kill_one_worker_mid_run)
        report = await anyio.to_thread.run_sync(lambda: run_score_ray(mirrored, detector, workers=2, batch_size=4))
        victim = killer.result()
    assert report.status == "complete" and report.failed == 0
    calls = Counter(int(line[0]) for line in _log(tmp_path))
    assert victim in calls and len(calls) >= 3                           # a new worker took over
    rows = open_scores(mirrored, detector).to_table().to_pylist()
    assert Counter(r["id"] for r in rows) == Counter(m["id"] for m in manifest)
    assert {r["status"] for r in rows} == {"ok"}


def test_bad_requests_are_refused_before_ray_is_asked(ray_address, mirrored: Path, userdet: str) -> None:
    from mirror.errors import DestinationError, UsageError
    with pytest.raises(UsageError, match="CPUs"):
        run_score_ray(mirrored, f"python:{userdet}:by_path", workers=3)
    with pytest.raises(UsageError, match="GPUs"):
        run_score_ray(mirrored, f"python:{userdet}:by_path", gpus_per_worker=1)
    with pytest.raises(UsageError, match="batch-size"):
        run_score_ray(mirrored, f"python:{userdet}:by_path", batch_size=0)
    with pytest.raises(UsageError, match=r"python:package\.module"):
        run_score_ray(mirrored, "python:nowhere")
    plain = mirrored.parent / "plain"
    plain.mkdir()
    with pytest.raises(DestinationError, match="not a mirror folder"):
        run_score_ray(plain, f"python:{userdet}:by_path")
    assert list(plain.iterdir()) == [] and not list((mirrored / "scores").rglob("*.parquet"))
