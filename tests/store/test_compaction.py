"""Bounded-memory compaction gives exactly what the straightforward in-memory merge gives."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mirror.errors import DestinationError
from mirror.store import MANIFEST_SCHEMA, Layout, ManifestWriter, compact, open_manifest, row_from_item
from mirror.store import compaction as compaction_mod
from mirror.store import scan as scan_mod
from mirror.store.manifest import ORDERED_KEY

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.prepare(tmp_path / "dest")


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many batches per file and many output slices, so every boundary is crossed."""
    monkeypatch.setattr(scan_mod, "BATCH_ROWS", 97)
    monkeypatch.setattr(compaction_mod, "_SLICE_BYTES", 1)   # the minimum: 1024 rows per slice


def random_row(rng: random.Random, item_id: str) -> dict[str, Any]:
    item = {"id": item_id, "benchmark": "bench", "kind": rng.choice(["real", "fake"]),
            "source_real_id": rng.choice([None, "r1", "r2", f"r{rng.randrange(40)}"]),
            "base_id": rng.choice([None, "b1", f"b{rng.randrange(5)}"]),
            "metadata": rng.choice([None, {"exif": rng.random()}])}
    row = row_from_item(item, path=f"images/bench/x/{item_id}.jpg", bytes=rng.randrange(10**6),
                        sha256=f"{rng.getrandbits(256):064x}", width=8, height=8, charged=rng.random() < 0.5,
                        downloaded_at=T0 + timedelta(seconds=rng.randrange(3)))  # many equal stamps: ties
    if rng.random() < 0.02:
        row["downloaded_at"] = None          # not written by this tool, but must count as the oldest
    return row


def write_runs(layout: Layout, rng: random.Random, runs: int, ids: list[str]) -> None:
    for _ in range(runs):
        writer = ManifestWriter(layout, f"run{rng.randrange(10**6)}", rows_per_part=rng.choice([50, 700, 1500]))
        for _row in range(rng.randrange(400, 1500)):
            writer.add(random_row(rng, rng.choice(ids)))
            if writer.should_flush:
                writer.flush()
        writer.flush()


def reference(files: list[Path]) -> pa.Table:
    """The obvious implementation: everything in memory, newest row per id, sorted."""
    tables = [ds.dataset(str(f), schema=MANIFEST_SCHEMA, format="parquet").to_table() for f in files]
    rows = pa.concat_tables(tables).to_pylist()
    oldest = datetime.min.replace(tzinfo=UTC)
    newest: dict[str, tuple[datetime, int]] = {}
    for n, row in enumerate(rows):
        rank = (row["downloaded_at"] or oldest, n)
        if row["id"] not in newest or rank >= newest[row["id"]]:
            newest[row["id"]] = rank
    kept = [rows[n] for _, n in newest.values()]
    kept.sort(key=lambda r: (r["source_real_id"] is None, r["source_real_id"] or "",
                             r["base_id"] is None, r["base_id"] or "", r["id"]))
    return pa.Table.from_pylist(kept, schema=MANIFEST_SCHEMA)


def only_file(layout: Layout) -> Path:
    (path,) = layout.manifest.iterdir()
    return path


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("hash_id", [hash, lambda s: hash(s) % 5], ids=["hash", "colliding"])
def test_compact_matches_the_in_memory_reference(layout: Layout, hash_id: Any) -> None:
    rng = random.Random(7)
    ids = [f"id{n:05d}" for n in range(2500)] + ["x" * 300, "é-ü", ""]
    write_runs(layout, rng, 6, ids)
    files = sorted(layout.manifest.iterdir())
    expected = reference(files)

    assert compact(layout, hash_id=hash_id) == expected.num_rows
    out = only_file(layout)
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == MANIFEST_SCHEMA
    assert table.replace_schema_metadata().equals(expected)
    assert json.loads(table.schema.metadata[b"margen-mirror.replaces"]) == [f.name for f in files]
    assert pq.read_metadata(out).num_row_groups == -(-expected.num_rows // 1024)
    assert list(layout.tmp.iterdir()) == []

    # Incremental: the compacted file plus new parts (repairs of old ids and new ids).
    write_runs(layout, rng, 2, [*ids[:200], *(f"new{n}" for n in range(900))])
    files = sorted(layout.manifest.iterdir())
    expected = reference(files)
    assert compact(layout, hash_id=hash_id) == expected.num_rows
    assert pq.read_table(only_file(layout)).replace_schema_metadata().equals(expected)


def test_compact_of_a_single_part_and_of_empty_parts(layout: Layout) -> None:
    writer = ManifestWriter(layout, "run1")
    writer.add(random_row(random.Random(1), "a"))
    writer.flush()
    pq.write_table(MANIFEST_SCHEMA.empty_table(), layout.manifest / "part-run1-00002.parquet")
    expected = reference(sorted(layout.manifest.iterdir()))
    assert compact(layout) == 1
    assert open_manifest(layout.dest).to_table().equals(expected)


def test_a_lone_part_in_order_is_promoted_by_rename_and_any_other_is_merged(layout: Layout) -> None:
    rng = random.Random(11)
    writer = ManifestWriter(layout, "run1")
    for n in range(600):
        writer.add(random_row(rng, f"id{n:04d}"))
    part = writer.flush()
    assert part is not None
    written = part.read_bytes()
    assert pq.read_metadata(part).metadata[ORDERED_KEY] == b"1"      # promoted without being read back
    assert compact(layout) == 600
    assert only_file(layout).name.startswith("compacted-") and only_file(layout).read_bytes() == written

    in_order = pq.read_table(only_file(layout)).replace_schema_metadata()
    only_file(layout).unlink()
    older = layout.manifest / "part-older-00001.parquet"      # in order, but without the writer's claim
    pq.write_table(in_order, older)
    written = older.read_bytes()
    assert compact(layout) == 600 and only_file(layout).read_bytes() == written

    writer = ManifestWriter(layout, "run2")       # the writer makes no claim for a part with an id twice
    for row in (random_row(rng, "a"), random_row(rng, "b"), random_row(rng, "a")):
        writer.add(row)
    only_file(layout).unlink()
    part = writer.flush()
    assert part is not None and ORDERED_KEY not in (pq.read_metadata(part).metadata or {})
    expected = reference([part])
    assert compact(layout) == expected.num_rows == 2
    assert pq.read_table(only_file(layout)).replace_schema_metadata().equals(expected)

    for name, rows in (("duplicate", [random_row(rng, "a"), random_row(rng, "b"), random_row(rng, "a")]),
                       ("unsorted", [random_row(rng, f"u{n}") for n in range(50)][::-1])):
        only_file(layout).unlink()
        path = layout.manifest / f"part-{name}-00001.parquet"     # not from the part writer: as given
        pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), path)
        expected = reference([path])
        assert compact(layout) == expected.num_rows
        assert pq.read_table(only_file(layout)).replace_schema_metadata().equals(expected), name


def test_compact_of_empty_parts_only(layout: Layout) -> None:
    pq.write_table(MANIFEST_SCHEMA.empty_table(), layout.manifest / "part-run1-00001.parquet")
    assert compact(layout) == 0
    assert only_file(layout).name.startswith("compacted-")
    assert open_manifest(layout.dest).count_rows() == 0


@pytest.mark.usefixtures("small_pieces")
def test_a_failed_compaction_changes_nothing(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    write_runs(layout, random.Random(3), 3, [f"id{n}" for n in range(3000)])
    before = {p.name: p.read_bytes() for p in layout.manifest.iterdir()}
    real_write = pq.ParquetWriter.write_table
    calls: list[int] = []

    def write_one_row_group_then_fail(self: pq.ParquetWriter, table: pa.Table, row_group_size: int) -> None:
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(self, table, row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_one_row_group_then_fail)
    with pytest.raises(DestinationError, match="free some space"):
        compact(layout)
    monkeypatch.undo()
    assert len(calls) == 2 and calls[0] == 1024
    assert {p.name: p.read_bytes() for p in layout.manifest.iterdir()} == before
    assert list(layout.tmp.iterdir()) == []     # neither the spill nor the half-written file is left
    assert compact(layout) > 0


def test_spill_leftover_of_a_killed_compaction_is_recovered(layout: Layout) -> None:
    write_runs(layout, random.Random(4), 1, ["a", "b"])
    (layout.tmp / "manifest-spill.arrow").write_bytes(b"ARROW1 half")
    assert compact(layout) == 2
    assert list(layout.tmp.iterdir()) == []


def test_slices_follow_the_byte_budget(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    writer = ManifestWriter(layout, "run1", rows_per_part=5000)
    for n in range(5000):
        row = random_row(rng, f"id{n}")
        row["metadata"] = json.dumps({"exif": f"{rng.getrandbits(4000):x}"})  # ~1 kB of incompressible text
        writer.add(row)
        if n == 2499:
            writer.flush()      # two parts: a lone sorted part would be promoted, not sliced
    writer.flush()
    monkeypatch.setattr(compaction_mod, "_SLICE_BYTES", 2 * 1024 * 1024)
    slice_rows = compaction_mod._slice_rows(sorted(layout.manifest.iterdir()))
    assert 1024 < slice_rows < 2048      # rows this wide: fewer per row group than the default minimum
    assert compact(layout) == 5000
    assert pq.read_metadata(only_file(layout)).num_row_groups == -(-5000 // slice_rows)
