"""The Deepfake Detection adapter against its emulator: upload, callback and signed-URL modes, history."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mirror.detectors import DeepfakeDetectionOptions, open_scores, run_score
from mirror.detectors.deepfake_detection import parse_item
from mirror.detectors.history import history_path, import_history
from mirror.store import open_manifest

FAST = {"poll_interval": 0.05, "deadline": 30}


def _options(**values: object) -> DeepfakeDetectionOptions:
    return DeepfakeDetectionOptions.from_env(**{**FAST, **values})


def _manifest(dest: Path) -> list[dict]:
    return open_manifest(dest).to_table().to_pylist()


async def test_upload_mode_scores_every_file_once(mirrored: Path, dfd_env) -> None:
    report = await run_score(mirrored, "deepfake-detection", concurrency=6, rate_limit=100_000,
                             options=_options(zero_retention_mode=True, use_ood_detector=True))
    manifest = _manifest(mirrored)
    shas = {m["sha256"] for m in manifest}
    assert report.status == "complete", report.failures[:3]
    assert report.scored == len(manifest) and report.submissions == len(shas)
    counters = dfd_env.admin.counters()
    assert counters["submissions"] == len(shas)
    assert Counter(counters["submissions_by_sha256"]) == Counter({s: 1 for s in shas})
    rows = open_scores(mirrored, "deepfake-detection").to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(m["id"] for m in manifest)
    for row in rows:
        assert row["status"] == "ok" and row["label"] in ("fake", "real") and 0.0 <= row["p_fake"] <= 1.0
        assert '"zero_retention_mode": true' in row["raw"] and row["latency_ms"] > 0
    again = await run_score(mirrored, "deepfake-detection", rate_limit=100_000, options=_options())
    assert again.submissions == 0 and again.skipped_already == len(manifest)
    assert dfd_env.admin.counters()["submissions"] == len(shas)


async def test_callback_mode(mirrored: Path, dfd_env) -> None:
    report = await run_score(mirrored, "deepfake-detection", filters={"kind": ("fake",)}, rate_limit=100_000,
                             options=_options(callback=True, poll_interval=5.0))
    fakes = [m for m in _manifest(mirrored) if m["kind"] == "fake"]
    assert report.status == "complete" and report.scored == len(fakes) > 0
    counters = dfd_env.admin.counters()
    assert counters["callbacks_sent"] >= len({m["sha256"] for m in fakes})
    assert report.elapsed_s < 10       # verdicts came by callback, not by the 5 s poll fallback


async def test_url_mode_sends_fresh_signed_urls(mirrored: Path, dfd_env, margen,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    emulator, account = margen
    monkeypatch.setenv("MARGEN_API_KEY", account.key)
    report = await run_score(mirrored, "deepfake-detection", filters={"kind": ("real",)}, rate_limit=100_000,
                             options=_options(url_mode=True, margen_base_url=emulator.url,
                                              margen_rate_limit=100_000))
    reals = [m for m in _manifest(mirrored) if m["kind"] == "real"]
    assert report.status == "complete", report.failures[:3]
    assert report.scored == len(reals) and dfd_env.admin.counters()["submissions"] == len({m["sha256"] for m in reals})
    assert all(n == 1 for n in dfd_env.admin.counters()["submissions_by_sha256"].values())


async def test_history_import_mirrors_every_detection(mirrored: Path, dfd_env) -> None:
    await run_score(mirrored, "deepfake-detection", filters={"kind": ("real",)}, rate_limit=100_000, options=_options())
    rows = await import_history(mirrored, rate_limit=100_000, page_size=10)
    table = pq.read_table(history_path(mirrored)).to_pylist()
    assert rows == len(table) == dfd_env.admin.counters()["submissions"]
    reals = {m["sha256"] for m in _manifest(mirrored) if m["kind"] == "real"}
    assert {r["sha256"] for r in table} == reals and all(r["uuid"] for r in table)


def test_parse_item_is_loose() -> None:
    verdict = parse_item({"uuid": "u", "status": "completed",
                          "image_metrics": {"type": "ImageAnalysis", "label": "Fake", "score": "0.87",
                                            "children": [{"type": "face", "score": 0.9}, {"type": "Face"}]}})
    assert (verdict.label, verdict.p_fake, verdict.faces) == ("fake", 0.87, 2)
    video = parse_item({"video_metrics": {"label": "REAL", "score": 12, "certainty": 0.8, "children": []}})
    assert (video.label, video.p_fake, video.faces) == ("real", 0.12, None)
    assert parse_item({"status": "completed"}).p_fake is None
