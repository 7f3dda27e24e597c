"""The compact skip index: exact lookups (also on hash collisions), newest-wins, file checks, get()."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from mirror.store import MANIFEST_SCHEMA, Layout, ManifestIndex, ManifestWriter, MirroredFile, compact, row_from_item
from mirror.store import compaction as compaction_mod
from mirror.store import scan as scan_mod

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.prepare(tmp_path / "dest")


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_mod, "BATCH_ROWS", 64)


def row(item_id: str, *, at: datetime | None = T0, path: str | None = None, sha: str = "ab" * 32) -> dict[str, Any]:
    item = {"id": item_id, "benchmark": "bench", "source_real_id": f"r{len(item_id) % 3}"}
    r = row_from_item(item, path=path or f"images/bench/x/{item_id}.jpg", bytes=len(item_id), sha256=sha,
                      width=1, height=1, charged=True, downloaded_at=T0)
    r["downloaded_at"] = at
    return r


def write_part(layout: Layout, run_id: str, rows: list[dict[str, Any]]) -> None:
    writer = ManifestWriter(layout, run_id, rows_per_part=10**6)
    for r in rows:
        writer.add(r)
    writer.flush()


def random_manifest(layout: Layout, seed: int) -> dict[str, MirroredFile]:
    """Parts with duplicate ids, equal and null stamps; returns what newest-wins says per id."""
    rng = random.Random(seed)
    ids = [f"id{n}" for n in range(400)] + ["", "é", "x" * 200]
    for part in range(5):
        rows = [row(item_id, at=rng.choice([None, T0, T0 + timedelta(seconds=1)]), sha=f"{rng.getrandbits(64):016x}")
                for item_id in rng.sample(ids, 250)]
        write_part(layout, f"run{part}", rows)
    table = ds.dataset(sorted(str(p) for p in layout.manifest.iterdir()), schema=MANIFEST_SCHEMA).to_table()
    oldest = datetime.min.replace(tzinfo=UTC)
    best: dict[str, tuple[Any, int, MirroredFile]] = {}
    for n, r in enumerate(table.to_pylist()):
        rank = (r["downloaded_at"] or oldest, n)
        if r["id"] not in best or rank >= best[r["id"]][:2]:
            best[r["id"]] = (*rank, MirroredFile(r["path"], r["bytes"], r["sha256"]))
    return {item_id: entry[2] for item_id, entry in best.items()}


@pytest.mark.parametrize("hash_id", [hash, lambda s: 0, lambda s: len(s) % 4], ids=["hash", "all-collide", "few"])
def test_lookups_are_exact_whatever_the_hash(layout: Layout, hash_id: Any) -> None:
    expected = random_manifest(layout, 1)
    index = ManifestIndex.load(layout, hash_id=hash_id)
    assert len(index) == len(expected)
    assert sorted(index.ids()) == sorted(expected)
    asked = [*expected, "id9999", "nope", "id1 ", "x" * 199]
    assert [i in index for i in asked] == [i in expected for i in asked]
    assert index.contains_many(asked) == [i in expected for i in asked]
    assert 7 not in index and None not in index
    for item_id, entry in expected.items():
        assert index.get(item_id) == entry
    assert index.get("nope") is None


def test_lookups_after_compaction_into_several_row_groups(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = random_manifest(layout, 2)
    monkeypatch.setattr(compaction_mod, "_SLICE_BYTES", 1)
    assert compact(layout) == len(expected)
    write_part(layout, "late", [row("id3", at=T0 + timedelta(days=1), sha="late")])
    expected["id3"] = MirroredFile("images/bench/x/id3.jpg", 3, "late")
    index = ManifestIndex.load(layout)
    assert {item_id: index.get(item_id) for item_id in expected} == expected


def test_get_after_a_compaction_reads_the_new_file(layout: Layout) -> None:
    expected = random_manifest(layout, 3)
    index = ManifestIndex.load(layout)
    compact(layout)  # the files the index was loaded from are gone
    assert {item_id: index.get(item_id) for item_id in list(expected)[:20]} == dict(list(expected.items())[:20])


def test_empty_index(tmp_path: Path) -> None:
    index = ManifestIndex.load(Layout(tmp_path / "missing"))
    assert len(index) == 0 and "a" not in index and index.get("a") is None
    assert index.contains_many(["a", "b"]) == [False, False] and index.contains_many([]) == []
    assert list(index.ids()) == [] and index.drop_missing_files(Layout(tmp_path / "missing")) == 0


def test_drop_missing_files_checks_the_newest_row_only(layout: Layout) -> None:
    write_part(layout, "run1", [row("a", path="images/old-a.jpg"), row("b", path="images/old-b.jpg"),
                                *(row(f"k{n}") for n in range(200))])
    write_part(layout, "run2", [row("a", at=T0 + timedelta(1), path="images/new-a.jpg"),
                                row("b", at=T0 - timedelta(1), path="images/new-b.jpg")])
    for relpath in ["images/old-a.jpg", "images/new-b.jpg", *(f"images/bench/x/k{n}.jpg" for n in range(0, 200, 2))]:
        (layout.dest / relpath).parent.mkdir(parents=True, exist_ok=True)
        (layout.dest / relpath).write_bytes(b"\xff\xd8")
    index = ManifestIndex.load(layout, hash_id=lambda s: len(s))   # collisions too
    assert index.drop_missing_files(layout) == 2 + 100  # newest files of a (new-a) and b (old-b) are gone
    assert "a" not in index and "b" not in index and len(index) == 100 and index.dropped == 102
    assert index.contains_many(["k0", "k1", "a"]) == [True, False, False]
    assert index.get("k0") == MirroredFile("images/bench/x/k0.jpg", 2, "ab" * 32) and index.get("k1") is None
    assert sorted(index.ids()) == sorted(f"k{n}" for n in range(0, 200, 2))
    assert index.drop_missing_files(layout) == 0 and index.dropped == 102
