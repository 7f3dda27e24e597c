"""A user's python detector, end to end: sync a slice, score it in a thread pool, join on id."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from mirror.detectors import load_detector, open_scores, run_score
from mirror.errors import DestinationError, UsageError
from mirror.store import Layout, open_manifest

DETECTOR = textwrap.dedent('''
    import threading
    CALLS = []

    def by_path(path):
        CALLS.append((path, threading.current_thread().name))
        return (len(open(path, "rb").read()) % 100) / 100

    def by_bytes(data: bytes) -> float:
        return 0.9 if data[:2] == b"\\xff\\xd8" else 0.1

    def broken(path):
        raise RuntimeError("model not loaded")
''')


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"userdet_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(DETECTOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


async def test_score_local_detector_joins_with_manifest(mirrored: Path, user_module: str) -> None:
    detector = f"python:{user_module}:by_path"
    report = await run_score(mirrored, detector, concurrency=4)
    manifest = open_manifest(mirrored).to_table().to_pylist()
    assert report.status == "complete" and report.scored == len(manifest) and report.failed == 0
    rows = open_scores(mirrored, detector).to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(m["id"] for m in manifest)        # every item once
    by_id = {m["id"]: m for m in manifest}
    for row in rows:
        assert row["sha256"] == by_id[row["id"]]["sha256"] and row["status"] == "ok"
        assert row["p_fake"] == pytest.approx((by_id[row["id"]]["bytes"] % 100) / 100)
        assert row["label"] in ("fake", "real") and row["detector"] == detector
    module = sys.modules[user_module]
    assert all(thread.startswith("detector") for _, thread in module.CALLS)           # off the event loop
    again = await run_score(mirrored, detector)
    assert again.scored == 0 and again.skipped_already == len(manifest) and again.submissions == 0


async def test_bytes_input_filters_and_failures(mirrored: Path, user_module: str) -> None:
    report = await run_score(mirrored, f"python:{user_module}:by_bytes", filters={"kind": ("real",)})
    manifest = [m for m in open_manifest(mirrored).to_table().to_pylist() if m["kind"] == "real"]
    assert report.scored == len(manifest) > 0
    rows = open_scores(mirrored, f"python:{user_module}:by_bytes").to_table().to_pylist()
    assert {r["p_fake"] for r in rows} == {0.9}
    broken = await run_score(mirrored, f"python:{user_module}:broken", filters={"kind": ("real",)})
    assert broken.status == "partial" and broken.failed == len(manifest) and broken.exit_code == 5
    assert "model not loaded" in broken.failures[0].reason


def test_bad_specs_are_usage_errors(user_module: str, tmp_path: Path) -> None:
    for spec in ("python:nosuchmodule_xyz:f", f"python:{user_module}:missing", "python:justmodule", "nope"):
        with pytest.raises(UsageError):
            load_detector(spec)
    dest = Layout.prepare(tmp_path / "m").dest
    with pytest.raises(UsageError, match="filter"):
        asyncio.run(run_score(dest, f"python:{user_module}:by_path", filters={"colour": ("x",)}))
    # a folder that is not a mirror is refused, and left as it was
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(DestinationError, match="not a mirror folder"):
        asyncio.run(run_score(plain, f"python:{user_module}:by_path"))
    assert list(plain.iterdir()) == []
