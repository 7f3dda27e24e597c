"""The SYNTHETIQ VISION adapter: documented limits enforced client-side, padding, loose ``values``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mirror.detectors import Media, Rejected, SynthetiqOptions, open_scores, run_score
from mirror.detectors.synthetiq import SynthetiqDetector, parse_values
from mirror.store import open_manifest

FAST = {"poll_interval": 0.05, "deadline": 30}


def _options(**values: object) -> SynthetiqOptions:
    return SynthetiqOptions.from_env(**FAST, **values)


async def test_small_corpus_images_are_rejected_without_a_submission(mirrored: Path, synthetiq_env) -> None:
    report = await run_score(mirrored, "synthetiq", rate_limit=100_000, options=_options())
    manifest = open_manifest(mirrored).to_table().to_pylist()
    assert report.rejected == len(manifest) and report.submissions == 0 and report.status == "complete"
    assert synthetiq_env.admin.counters()["submissions"] == 0
    rows = open_scores(mirrored, "synthetiq").to_table().to_pylist()
    assert {r["status"] for r in rows} == {"rejected"}
    assert "at least 360x270" in rows[0]["error"] and "--pad" in rows[0]["error"]


async def test_pad_scores_keyed_by_the_original_file(mirrored: Path, synthetiq_env) -> None:
    await run_score(mirrored, "synthetiq", filters={"kind": ("real",)}, rate_limit=100_000, options=_options())
    report = await run_score(mirrored, "synthetiq", rate_limit=100_000, options=_options(pad=True))
    manifest = open_manifest(mirrored).to_table().to_pylist()
    assert report.status == "complete", report.failures[:3]
    assert report.scored == len(manifest) and report.submissions == len({m["sha256"] for m in manifest})
    counters = synthetiq_env.admin.counters()
    assert counters["submissions"] == report.submissions
    assert all(n == 1 for n in counters["submissions_by_sha256"].values())
    assert not set(counters["submissions_by_sha256"]) & {m["sha256"] for m in manifest}   # padded bytes went
    table = open_scores(mirrored, "synthetiq").to_table().to_pylist()
    newest = {r["sha256"]: r for r in sorted(table, key=lambda r: r["submitted_at"])}
    assert {s for s, r in newest.items() if r["status"] == "ok"} == {m["sha256"] for m in manifest}
    row = next(r for r in newest.values())
    raw = json.loads(row["raw"])
    assert raw["padded"]["to"] == [360, 270] and max(raw["padded"]["from"]) < 360
    assert "fake_detection_values" in raw["values"]               # the service's body, kept verbatim
    assert row["label"] in ("fake", "real")


def _image(path: Path, size: tuple[int, int], fmt: str) -> Media:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, format=fmt)
    path.write_bytes(out.getvalue())
    return Media("x", "0" * 64, path)


def test_limits_are_enforced_client_side(tmp_path: Path) -> None:
    det = SynthetiqDetector(http=None, pad=False)  # type: ignore[arg-type]  # prepare sends nothing
    assert det.prepare(_image(tmp_path / "ok.png", (400, 300), "PNG")).fmt == "png"
    for name, size, fmt, message in (("wide.jpg", (4097, 300), "JPEG", "up to 4096x2160"),
                                     ("small.jpg", (256, 256), "JPEG", "at least 360x270"),
                                     ("anim.gif", (400, 300), "GIF", "JPEG or PNG")):
        with pytest.raises(Rejected, match=message):
            det.prepare(_image(tmp_path / name, size, fmt))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64 + b"mp4v")
    with pytest.raises(Rejected, match="h264/hevc"):
        det.prepare(Media("v", "1" * 64, video))
    video.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64 + b"avc1")
    assert det.prepare(Media("v", "1" * 64, video)).notes == {"codec": "h264"}
    padded = SynthetiqDetector(http=None, pad=True).prepare(_image(tmp_path / "s.jpg", (200, 300), "JPEG"))  # type: ignore[arg-type]
    assert Image.open(io.BytesIO(padded.data)).size == (360, 300) and padded.notes["padded"]["to"] == [360, 300]


@pytest.mark.parametrize(("values", "expected"), [
    ({"faces": [{"bbox": [1, 2, 3, 4], "label": "fake", "score": 0.9},
                {"bbox": [5, 6, 7, 8], "label": "real", "score": 0.8}]}, ("fake", 0.9, 2)),
    ([{"face_region": {"x": 1}, "is_fake": False, "fake_probability": "12%"}], ("real", 0.12, 1)),
    ({"result": "REAL", "confidence": 0.7}, ("real", pytest.approx(0.3), 1)),
    ({"frames": [{"frame_index": 3, "faces": [{"box": [0, 0, 1, 1], "real_probability": 0.25}]}]},
     ("fake", 0.75, 1)),
    ({"message": "no face"}, (None, None, None)),
])
def test_values_are_parsed_loosely(values: object, expected: tuple) -> None:
    assert parse_values(values) == expected


async def test_bad_token_stops_the_run_without_leaking_it(mirrored: Path, synthetiq_emulator,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mirror.errors import MirrorError
    monkeypatch.setenv("SYNTHETIQ_URL", synthetiq_emulator.url)
    monkeypatch.setenv("SYNTHETIQ_API_TOKEN", "stq_wrong_secret_value")
    with pytest.raises(MirrorError) as caught:
        await run_score(mirrored, "synthetiq", filters={"kind": ("real",)}, rate_limit=100_000,
                        options=_options(pad=True))
    assert caught.value.exit_code == 3 and "stq_wrong_secret_value" not in str(caught.value)
    ledger = (mirrored / ".state" / "scores" / "synthetiq.jsonl").read_text()
    assert '"op":"job"' not in ledger and "stq_wrong" not in ledger
