"""``score`` on the client's worker pool: a run cancelled midway (Ctrl-C) keeps every verdict it
had finished, and the next run scores only the rest."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from mirror.detectors import open_scores, run_score
from mirror.store import open_manifest

DETECTOR = textwrap.dedent('''
    import threading
    GATE = threading.Event()
    LOCK = threading.Lock()
    CALLS = [0]

    def gated(path):
        with LOCK:
            CALLS[0] += 1
            mine = CALLS[0]
        if mine > 3:                # the first three files are scored; the rest wait for the gate
            GATE.wait(30)
        return 0.5
''')


@pytest.fixture
def gated_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"gateddet_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(DETECTOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    module = sys.modules.pop(name, None)
    if module is not None:
        module.GATE.set()


async def test_a_cancelled_score_run_keeps_its_finished_verdicts(mirrored: Path, gated_module: str) -> None:
    detector = f"python:{gated_module}:gated"
    task = asyncio.create_task(run_score(mirrored, detector, concurrency=2))
    for _ in range(200):
        module = sys.modules.get(gated_module)
        if module is not None and module.CALLS[0] > 3:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the detector was never called beyond its first three files")
    await asyncio.sleep(0.3)                    # the three verdicts reach the run
    task.cancel()                               # Ctrl-C: asyncio.run cancels the run the same way
    sys.modules[gated_module].GATE.set()
    with pytest.raises(asyncio.CancelledError):
        await task

    rows = open_scores(mirrored, detector).to_table().to_pylist()
    assert {r["status"] for r in rows} == {"ok"}
    assert len({r["sha256"] for r in rows}) == 3            # the three finished files, none lost
    kept = {r["id"] for r in rows}

    manifest = {m["id"] for m in open_manifest(mirrored).to_table(columns=["id"]).to_pylist()}
    again = await run_score(mirrored, detector, concurrency=2)
    assert again.skipped_already == len(kept)
    assert again.scored == len(manifest) - len(kept) and again.status == "complete"
