"""Stage 4 on its own: files land whole, on the event loop while the disk keeps up, else in batches
on a worker thread, and one bad body never costs the others their files."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from mirror.engine.place import INLINE_BYTES, Body, Placer
from mirror.errors import IntegrityError
from mirror.store import Layout, image_relpath


def _jpeg(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (seed % 256, 40, 200)).save(out, "JPEG")
    return out.getvalue()


def _relpath(i: int) -> str:
    return image_relpath("bench", f"real_{i % 3}", f"img_{i:04d}")


def _stored(layout: Layout) -> dict[str, bytes]:
    return {p.relative_to(layout.dest).as_posix(): p.read_bytes() for p in layout.images.rglob("*.jpg")}


def _temp_files(layout: Layout) -> list[Path]:
    """Temp files anywhere in DEST: in .state/tmp, or hidden beside an image."""
    return list(layout.tmp.iterdir()) + [p for p in layout.images.rglob("*") if p.name.endswith(".part")]


async def _place_all(placer: Placer, bodies: dict[str, bytes]) -> dict[str, object]:
    placing = (placer.place(rel, Body(size=len(data), data=data)) for rel, data in bodies.items())
    results = await asyncio.gather(*placing, return_exceptions=True)
    return dict(zip(bodies, results, strict=True))


async def test_small_files_are_placed_on_the_loop_while_the_disk_keeps_up(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path / "dest")
    placer = Placer(layout)
    bodies = {_relpath(i): _jpeg(i) for i in range(40)}
    threads = threading.active_count()
    results = await _place_all(placer, bodies)
    assert placer.on_loop, "a fast disk moved placement off the loop"
    assert threading.active_count() == threads, "a worker thread was started for small files on a fast disk"
    assert _stored(layout) == bodies
    for rel, data in bodies.items():
        stored = results[rel]
        assert stored.sha256 == hashlib.sha256(data).hexdigest()          # type: ignore[attr-defined]
        assert (stored.width, stored.height, stored.bytes) == (48, 32, len(data))   # type: ignore[attr-defined]
    assert not _temp_files(layout), "temp files left behind"


async def test_a_slow_disk_moves_placement_to_a_thread_and_nothing_is_lost(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path / "dest")
    placer = Placer(layout, slow_file_s=0.0)      # every file counts as slow
    threads = threading.active_count()
    burst = {_relpath(i): _jpeg(i) for i in range(40)}
    await _place_all(placer, burst)
    assert placer.on_loop, "a burst of slow placements (another thread holding the GIL) is not a slow disk"
    first = {**burst, **{_relpath(i): _jpeg(i) for i in range(40, 100)}}
    await _place_all(placer, {rel: data for rel, data in first.items() if rel not in burst})
    assert not placer.on_loop, "a disk slow for 100 files in a row still gets writes from the loop"
    rest = {_relpath(i): _jpeg(i) for i in range(100, 160)}
    bad = _relpath(130)
    rest[bad] = b"\xff\xd8\xff" + b"not a jpeg"       # mid-batch: fails alone
    results = await _place_all(placer, rest)
    assert threading.active_count() > threads, "placement did not move to a worker thread"
    assert isinstance(results[bad], IntegrityError)
    good = {rel: data for rel, data in {**first, **rest}.items() if rel != bad}
    assert _stored(layout) == good, "a bad body cost another file, or a bad one was written"
    assert all(results[rel].sha256 == hashlib.sha256(data).hexdigest()       # type: ignore[attr-defined]
               for rel, data in rest.items() if rel != bad)
    assert not _temp_files(layout), "temp files left behind"


async def test_a_body_too_big_for_the_loop_is_placed_by_a_thread(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path / "dest")
    placer = Placer(layout)
    big = _jpeg(7, size=(16, 16))
    big = big[:-2] + b"\x00" * (INLINE_BYTES + 1 - len(big)) + b"\xff\xd9"   # padding before the end marker
    threads = threading.active_count()
    stored = await placer.place(_relpath(1), Body(size=len(big), data=big))
    assert threading.active_count() > threads, "a body over INLINE_BYTES was placed on the event loop"
    assert stored.bytes == len(big) and (layout.dest / _relpath(1)).read_bytes() == big
    assert placer.on_loop, "one big body is not a slow disk"


@pytest.mark.parametrize("slow_file_s", [0.0, 1.0])
async def test_a_truncated_body_is_refused_either_way(tmp_path: Path, slow_file_s: float) -> None:
    layout = Layout.prepare(tmp_path / "dest")
    placer = Placer(layout, slow_file_s=slow_file_s)
    await placer.place(_relpath(0), Body(size=len(_jpeg(0)), data=_jpeg(0)))
    cut = _jpeg(1)[:-40]
    with pytest.raises(IntegrityError, match="complete JPEG"):
        await placer.place(_relpath(1), Body(size=len(cut), data=cut))
    assert not (layout.dest / _relpath(1)).exists()
    assert not _temp_files(layout)


async def test_files_queued_in_one_loop_turn_are_placed_together_each_failing_alone(tmp_path: Path) -> None:
    """Bodies that arrive together are written by one callback at the next loop turn; a bad one
    fails alone, and one whose fetch was cancelled before that turn is not written at all."""
    layout = Layout.prepare(tmp_path / "dest")
    placer = Placer(layout)
    bodies = {_relpath(i): _jpeg(i) for i in range(12)}
    bad, cancelled = _relpath(5), _relpath(9)
    bodies[bad] = b"\xff\xd8\xff" + b"not a jpeg"
    tasks = {rel: asyncio.create_task(placer.place(rel, Body(size=len(data), data=data)))
             for rel, data in bodies.items()}
    await asyncio.sleep(0)                  # every task has queued its body; nothing is written yet
    assert not _stored(layout)
    tasks[cancelled].cancel()
    await asyncio.sleep(0)                  # the next turn: one callback places the whole batch
    assert set(_stored(layout)) == set(bodies) - {bad, cancelled}
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    outcome = dict(zip(tasks, results, strict=True))
    assert isinstance(outcome[bad], IntegrityError) and isinstance(outcome[cancelled], asyncio.CancelledError)
    assert all(outcome[rel].sha256 == hashlib.sha256(bodies[rel]).hexdigest()      # type: ignore[attr-defined]
               for rel in set(bodies) - {bad, cancelled})
    assert placer.on_loop and not _temp_files(layout)
