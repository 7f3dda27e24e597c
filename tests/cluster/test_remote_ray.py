"""A remote detector scored from several Ray workers: one rate budget for the token, one submission log, no
file sent twice after a worker is killed, and the token in no Ray log."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from ray_kit import score_workers

from mirror.cluster import run_score_ray
from mirror.detectors import DeepfakeDetectionOptions, open_scores
from mirror.store import open_manifest

DFD = "deepfake-detection"


@pytest.fixture
def dfd(tmp_path: Path):
    """``dfd(**config)``: a Deepfake Detection emulator with its own random token; stopped at teardown."""
    from mirror.emulator.detectors import DetectorEmulatorConfig, start_detector_thread
    started = []

    def make(**fields):
        emu = start_detector_thread(DetectorEmulatorConfig(service=DFD, token=f"dfd-{secrets.token_hex(16)}",
                                                           data_dir=tmp_path / f"dfd-{len(started)}", **fields))
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


def _options(emu) -> DeepfakeDetectionOptions:
    return DeepfakeDetectionOptions(url=emu.url, token=emu.token, poll_interval=0.05, deadline=60)


def _journaled_jobs(dest: Path) -> int:
    path = dest / ".state" / "scores" / f"{DFD}.jsonl"
    return path.read_text().count('"op":"job"') if path.exists() else 0


async def test_a_killed_worker_never_makes_a_file_go_twice(ray_address, mirrored: Path, dfd) -> None:
    emu = dfd(processing_seconds=0.2, latency_ms=20)
    manifest = open_manifest(mirrored).to_table().to_pylist()
    shas = {m["sha256"] for m in manifest}

    def kill_a_worker_mid_run() -> int:
        deadline = time.monotonic() + 60
        while _journaled_jobs(mirrored) < len(shas) // 4:
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.01)
        victim = score_workers()[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def score():
        return run_score_ray(mirrored, DFD, workers=2, batch_size=4, concurrency=2, rate_limit=100_000,
                             options=_options(emu))

    with ThreadPoolExecutor(1) as pool:
        killer = pool.submit(kill_a_worker_mid_run)
        first = await anyio.to_thread.run_sync(score)
        killer.result()
    assert 0 < _journaled_jobs(mirrored) and first.status in ("complete", "partial")
    again = await anyio.to_thread.run_sync(score)                   # finishes whatever the kill left
    sent = Counter(emu.admin.counters()["submissions_by_sha256"])
    assert set(sent.values()) == {1} and set(sent) <= shas          # no file was ever sent twice
    # A kill between journaling an upload and its answer may leave one the service cannot account
    # for; it is reported, never sent again. Every other item has exactly one verdict.
    unknown = {f.item_id for f in again.failures if "stopped while uploading" in f.reason}
    assert len(unknown) == len(again.failures) <= 4, again.failures[:3]
    ok = Counter(r["id"] for r in open_scores(mirrored, DFD).to_table().to_pylist() if r["status"] == "ok")
    unknown_shas = {m["sha256"] for m in manifest if m["id"] in unknown}
    assert ok == Counter(m["id"] for m in manifest if m["sha256"] not in unknown_shas)
    # uploads a killed attempt made are counted as resumed by the attempt that polled them
    uploads = first.submissions + again.submissions
    assert uploads <= len(sent) <= uploads + first.resumed + again.resumed


@pytest.fixture
def limited_dfd(tmp_path: Path):
    """A Deepfake Detection emulator in its own process (its clock and event loop undisturbed by this
    process, which is Ray's driver), limited to 60 API requests in any rolling 10 s."""
    from mirror.emulator.detectors import AdminClient
    token_file = tmp_path / "dfd-token"
    token_file.write_text(f"dfd-{secrets.token_hex(16)}")
    proc = subprocess.Popen([sys.executable, "-m", "mirror", "detector-emulator", "--service", DFD, "--port", "0",
                             "--token-file", str(token_file), "--processing-seconds", "0", "--rate-limit", "60",
                             "--rate-window", "10"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        url = line.removeprefix("READY ")
        yield SimpleNamespace(url=url, token=token_file.read_text(), admin=AdminClient(url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_workers_share_one_rate_budget_and_the_token_stays_out_of_rays_logs(
        ray_address, mirrored: Path, limited_dfd) -> None:
    import ray

    from mirror.cluster.actors import budget_name
    from mirror.cluster.session import NAMESPACE

    # R = 360 requests a minute, checked over any 10 s (R / 6) so the test takes seconds, not minutes;
    # two workers each pacing themselves at R would send twice that.
    emu, limit = limited_dfd, 60
    options = _options(emu)
    report = await anyio.to_thread.run_sync(lambda: run_score_ray(
        mirrored, DFD, workers=2, batch_size=4, concurrency=4, rate_limit=limit * 6, options=options))
    counters = emu.admin.counters()
    assert report.status == "complete" and report.scored == len(open_manifest(mirrored).to_table())
    assert counters["rate_limited"] == 0                             # never over the limit, so never a 429
    assert 0.8 * limit <= counters["max_in_window"] <= limit        # and it did run at the limit
    pacer = ray.get_actor(budget_name(emu.url, emu.token), namespace=NAMESPACE)
    assert ray.get(pacer.stats.remote())["granted"] == counters["api_requests"] == report.requests

    token = emu.token.encode()
    assert token not in repr(options).encode()
    session = Path(ray._private.worker.global_worker.node.get_session_dir_path())
    for root in (session / "logs", mirrored):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert token not in path.read_bytes(), path


async def test_a_refused_token_stops_the_run_with_its_own_exit_code(ray_address, mirrored: Path, dfd) -> None:
    from mirror.cluster.worker import WorkerSpec
    from mirror.errors import EXIT_AUTH, MirrorError
    emu = dfd()
    options = DeepfakeDetectionOptions(url=emu.url, token="not-the-token-0123456789", poll_interval=0.05)
    with pytest.raises(MirrorError) as stopped:
        await anyio.to_thread.run_sync(lambda: run_score_ray(mirrored, DFD, workers=1, batch_size=4,
                                                             rate_limit=100_000, options=options))
    assert stopped.value.exit_code == EXIT_AUTH and "Invalid API token" in str(stopped.value)
    assert "not-the-token-0123456789" not in str(stopped.value)
    assert emu.admin.counters()["submissions"] == 0
    assert "not-the-token" not in repr(WorkerSpec(dest=str(mirrored), detector=DFD, options=options))


def test_a_second_run_of_the_same_detector_is_locked_out(ray_address, mirrored: Path, dfd) -> None:
    from mirror.errors import LockHeldError
    from mirror.store import Layout
    from mirror.store.submissions import SubmissionLog
    emu = dfd()
    held = SubmissionLog(Layout(mirrored), DFD)                      # an in-process run holds the log
    try:
        with pytest.raises(LockHeldError, match="another scoring run"):
            run_score_ray(mirrored, DFD, options=_options(emu))
    finally:
        held.close()
    assert emu.admin.counters()["api_requests"] == 0
