"""Local detectors that are classes (the model loads once) or take batches, in-process."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mirror.detectors import DetectorFailed, LocalOptions, Media, Prepared, load_detector, open_scores, run_score
from mirror.errors import UsageError
from mirror.store import open_manifest

MODULE = textwrap.dedent('''
    import numpy as np
    BUILT = []
    BATCHES = []

    class Model:
        batch_input = "array"

        def __init__(self):
            BUILT.append(self)

        def __call__(self, images):
            BATCHES.append(len(images))
            return np.array([image.mean() / 255 for image in images])

    class OnBytes:
        def __init__(self):
            BUILT.append(self)

        def __call__(self, data: bytes) -> float:
            return (len(data) % 100) / 100

    def per_file_mean(path):
        from PIL import Image
        with Image.open(path) as image:
            return float(np.asarray(image.convert("RGB")).mean()) / 255

    def short(paths):
        return [0.5]
    short.batch_input = "path"

    class Broken:
        def __init__(self):
            raise RuntimeError("weights not found")

        def __call__(self, path):
            return 0.5

    class NotCallable:
        pass

    def odd(paths):
        return [0.1] * len(paths)
    odd.batch_input = "tensor"
''')


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


async def test_a_batch_model_loads_once_and_gets_the_files_in_flight_together(mirrored: Path, models: str) -> None:
    report = await run_score(mirrored, f"python:{models}:Model", concurrency=8)
    module = sys.modules[models]
    manifest = open_manifest(mirrored).to_table().to_pylist()
    assert report.status == "complete" and report.scored == len(manifest)
    assert len(module.BUILT) == 1 and sum(module.BATCHES) == len({m["sha256"] for m in manifest})
    assert max(module.BATCHES) > 1 and max(module.BATCHES) <= 8
    await run_score(mirrored, f"python:{models}:per_file_mean")
    def p_fake(name: str) -> dict[str, float]:
        return {r["id"]: r["p_fake"] for r in open_scores(mirrored, f"python:{models}:{name}").to_table().to_pylist()}

    assert p_fake("Model") == pytest.approx(p_fake("per_file_mean"))      # same arrays, one call per batch


async def test_a_class_is_built_once_and_called_per_file(mirrored: Path, models: str) -> None:
    report = await run_score(mirrored, f"python:{models}:OnBytes", concurrency=4)
    manifest = {m["id"]: m for m in open_manifest(mirrored).to_table().to_pylist()}
    assert report.scored == len(manifest) and len(sys.modules[models].BUILT) == 1
    for row in open_scores(mirrored, f"python:{models}:OnBytes").to_table().to_pylist():
        assert row["p_fake"] == pytest.approx((manifest[row["id"]]["bytes"] % 100) / 100)   # got the bytes


async def test_batch_failures_are_per_file_errors(mirrored: Path, models: str, tmp_path: Path) -> None:
    short = await run_score(mirrored, f"python:{models}:short", filters={"kind": ("real",)})
    assert short.status == "partial" and short.scored == 0 and "returned 1 values for" in short.failures[0].reason
    detector = load_detector(f"python:{models}:Model")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image")
    async with detector:
        with pytest.raises(DetectorFailed, match="cannot decode the image"):
            await detector.submit(Prepared(Media("x", "0" * 64, garbage), b"not an image", "local"))
    with pytest.raises(DetectorFailed, match="weights not found"):
        await run_score(mirrored, f"python:{models}:Broken")


def test_bad_classes_and_batch_inputs_are_usage_errors(models: str) -> None:
    with pytest.raises(UsageError, match="without __call__"):
        load_detector(f"python:{models}:NotCallable")
    with pytest.raises(UsageError, match="batch_input must be one of path, bytes, array"):
        load_detector(f"python:{models}:odd")
    with pytest.raises(UsageError, match="pool thread"):
        load_detector(f"python:{models}:OnBytes", LocalOptions(pool="process"))
