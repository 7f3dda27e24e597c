"""The Parquet manifest: schema round-trip, atomic parts, compaction, recovery, the skip index."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mirror.errors import DestinationError
from mirror.store import (
    MANIFEST_SCHEMA,
    FileRow,
    Layout,
    ManifestIndex,
    ManifestWriter,
    MirroredFile,
    compact,
    open_manifest,
    recover,
    row_from_item,
)
from mirror.store import compaction as compaction_mod

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "object": "item", "id": item_id, "benchmark": "bench", "kind": "fake", "generator": "gen",
        "source_real_id": "real_1", "base_id": "base_1", "attributes": {"b": 2, "a": 1},
    }
    base.update(fields)
    return base


def row(item_id: str, *, at: datetime = T0, sha: str = "ab" * 32, **fields: Any) -> dict[str, Any]:
    return row_from_item(item(item_id, **fields), path=f"images/bench/real_1/{item_id}.jpg", bytes=1234,
                         sha256=sha, width=64, height=48, charged=True, downloaded_at=at)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.prepare(tmp_path / "dest")


def manifest_names(layout: Layout) -> list[str]:
    return sorted(p.name for p in layout.manifest.iterdir())


def test_row_from_item_maps_every_field() -> None:
    r = row_from_item(
        item("x1", layer=3, scene=None, metadata={"z": [1, 2], "exif": "é"}, tier="pro", sha256="server"),
        path="images/a/b/x1.jpg", bytes=10, sha256="cd" * 32, width=5, height=6, charged=False,
        downloaded_at=datetime(2024, 1, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    assert set(r) == set(MANIFEST_SCHEMA.names)
    assert r["id"] == "x1" and r["layer"] == "3" and r["scene"] is None and r["gender"] is None
    assert r["attributes"] == '{"a":1,"b":2}'
    assert r["metadata"] == '{"exif":"é","z":[1,2]}'
    assert json.loads(r["extra"]) == {"tier": "pro", "sha256": "server"}  # "object" dropped
    assert r["sha256"] == "cd" * 32
    assert r["downloaded_at"] == datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_row_from_item_defaults() -> None:
    r = row("x", attributes=None)
    assert r["attributes"] == "{}" and r["metadata"] is None and r["extra"] is None


@pytest.mark.parametrize("bad", [{"id": None}, {"id": 7}, {"id": "a\ud800"}])
def test_row_from_item_refuses_unwritable_items(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        row_from_item(item("x", **bad), path="p", bytes=1, sha256="s", width=1, height=1, charged=True,
                      downloaded_at=T0)


def test_row_text_that_is_not_valid_unicode_is_written_with_a_replacement_character(tmp_path: Path) -> None:
    r = row_from_item(item("x", generator="gen\udcff", attributes={"k\ud800": "é"}, odd="\ud800!"), path="p",
                      bytes=1, sha256="s", width=1, height=1, charged=True, downloaded_at=T0)
    assert r["generator"] == "gen\ufffd" and r["id"] == "x"
    assert json.loads(r["attributes"]) == {"k\ufffd": "é"} and json.loads(r["extra"]) == {"odd": "\ufffd!"}
    layout = Layout.prepare(tmp_path / "d")
    writer = ManifestWriter(layout, run_id="r1")
    writer.add(r)
    pq.read_table(writer.flush())           # the row can be written and read back


def test_row_from_item_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        row("x", at=datetime(2024, 1, 1))


def test_files_recorded_in_bulk_become_the_rows_row_from_item_gives_each(layout: Layout) -> None:
    """A part converts its files column by column; an unusual value in a column (a number, an
    object, bad Unicode) takes that column down the careful path without changing other rows."""
    odd = [item("plain"), item("n", layer=3, scene={"s": 1}), item("u", generator="gen\udcff", extra_field=[1]),
           item("m", metadata={"exif": "é"}, attributes=None), item("é-ünï", kind="réel")]
    stamps = [T0 + timedelta(microseconds=k * 1500) for k in range(len(odd))]
    files = [FileRow(it, f"images/bench/real_1/{k}.jpg", 100 + k, f"{k:064x}", 64, 48, bool(k % 2), at)
             for k, (it, at) in enumerate(zip(odd, stamps, strict=True))]
    writer = ManifestWriter(layout, run_id="bulk")
    for f in files:
        writer.add_file(f)
    with pytest.raises(ValueError):
        writer.add_file(FileRow(item("bad\ud800"), "p", 1, "s", 1, 1, True, T0))    # refused alone, at once
    table = pq.read_table(writer.flush())
    got = {r["id"]: r for r in table.to_pylist()}
    for f in files:
        expected = row_from_item(f.item, path=f.path, bytes=f.bytes, sha256=f.sha256, width=f.width,
                                 height=f.height, charged=f.charged, downloaded_at=f.downloaded_at)
        assert got[f.item["id"]] == expected
    assert got["n"]["layer"] == "3" and got["n"]["scene"] == '{"s":1}' and got["plain"]["layer"] is None
    assert got["u"]["generator"] == "gen\ufffd" and json.loads(got["u"]["extra"]) == {"extra_field": [1]}
    assert got["m"]["attributes"] == "{}" and got["m"]["metadata"] == '{"exif":"é"}' and got["plain"]["extra"] is None
    assert got["é-ünï"]["kind"] == "réel"
    assert [got[f.item["id"]]["downloaded_at"] for f in files] == [at.replace(microsecond=at.microsecond // 1000 * 1000)
                                                                   for at in stamps]


def test_round_trip_through_dataset(layout: Layout) -> None:
    writer = ManifestWriter(layout, "run1", rows_per_part=3)
    rows = [row("c", source_real_id="r2"), row("b", base_id=None), row("a", base_id="base_1"),
            row("d", source_real_id=None), row("e", source_real_id="r0")]
    for r in rows[:3]:
        writer.add(r)
    assert writer.should_flush and writer.pending == 3
    first = writer.flush()
    assert first is not None and first.name == "part-run1-00001.parquet"
    assert writer.pending == 0 and not writer.should_flush and writer.flush() is None
    for r in rows[3:]:
        writer.add(r)
    assert writer.flush() == layout.manifest / "part-run1-00002.parquet"

    dataset = open_manifest(layout.dest)
    assert dataset.schema == MANIFEST_SCHEMA
    table = dataset.to_table()
    assert table.schema == MANIFEST_SCHEMA and table.num_rows == 5
    part1 = pq.read_table(first)
    keys = [(r["source_real_id"], r["base_id"], r["id"]) for r in part1.to_pylist()]
    assert keys == [("r2", "base_1", "c"), ("real_1", "base_1", "a"), ("real_1", None, "b")]  # nulls last
    got = {r["id"]: r for r in table.to_pylist()}
    assert got == {r["id"]: r for r in rows}
    assert json.loads(got["a"]["attributes"]) == {"a": 1, "b": 2}
    assert list(layout.tmp.iterdir()) == []


def test_pandas_reads_the_folder(layout: Layout) -> None:
    pd = pytest.importorskip("pandas")
    writer = ManifestWriter(layout, "run1")
    writer.add(row("a"))
    writer.flush()
    frame = pd.read_parquet(layout.manifest)
    assert list(frame["id"]) == ["a"] and str(frame["downloaded_at"].dt.tz) == "UTC"


def test_add_refuses_a_malformed_row(layout: Layout) -> None:
    writer = ManifestWriter(layout, "run1")
    with pytest.raises(ValueError, match="missing"):
        writer.add({"id": "x"})
    with pytest.raises(ValueError, match="unknown"):
        writer.add({**row("x"), "colour": "red"})
    with pytest.raises(ValueError, match="string id"):
        writer.add({**row("x"), "id": None})
    with pytest.raises(ValueError):
        ManifestWriter(layout, "../evil")


def test_failed_flush_leaves_no_part_and_keeps_rows(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ManifestWriter(layout, "run1")
    writer.add(row("a"))
    real_write = pq.write_table

    def write_half_then_fail(table: Any, where: Any, **kwargs: Any) -> None:
        where.write(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    with pytest.raises(DestinationError, match="free some space"):
        writer.flush()
    assert manifest_names(layout) == [] and list(layout.tmp.iterdir()) == []
    assert writer.pending == 1
    monkeypatch.setattr(pq, "write_table", real_write)
    assert writer.flush() is not None
    assert open_manifest(layout.dest).count_rows() == 1


def test_seal_then_write_in_a_thread_while_rows_keep_coming(layout: Layout,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's way: seal on the loop, write_sealed in a thread while more rows are added.
    A failed write keeps what was sealed; the next write puts it and any newer seal in one part."""
    writer = ManifestWriter(layout, "run1")
    writer.add(row("a"))
    writer.add(row("b"))
    writer.seal()
    writer.add(row("c"))               # arrives while the sealed rows are being written
    assert writer.pending == 3 and not writer.should_flush
    real_write = pq.write_table

    def disk_full(table: Any, where: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(DestinationError):
        writer.write_sealed()
    assert manifest_names(layout) == [] and writer.pending == 3
    monkeypatch.setattr(pq, "write_table", real_write)
    writer.seal()
    part = writer.write_sealed()
    assert part is not None and sorted(pq.read_table(part).column("id").to_pylist()) == ["a", "b", "c"]
    assert writer.pending == 0 and writer.write_sealed() is None
    writer.add(row("d"))
    assert writer.write_sealed() is None, "an unsealed row was written"
    assert writer.flush() == layout.manifest / "part-run1-00002.parquet"


def test_a_new_writer_never_rewrites_parts(layout: Layout) -> None:
    for expected in ("part-run1-00001.parquet", "part-run1-00002.parquet"):
        writer = ManifestWriter(layout, "run1")
        writer.add(row(expected))
        assert writer.flush() == layout.manifest / expected
    assert open_manifest(layout.dest).count_rows() == 2


def test_writer_start_removes_only_manifest_temp_files(layout: Layout) -> None:
    (layout.tmp / "manifest-dead.parquet").write_bytes(b"half")
    (layout.tmp / "image-in-flight.part").write_bytes(b"\xff\xd8")
    ManifestWriter(layout, "run1")
    assert [p.name for p in layout.tmp.iterdir()] == ["image-in-flight.part"]


def test_open_manifest_without_manifest(tmp_path: Path) -> None:
    for dest in (tmp_path / "missing", tmp_path):
        dataset = open_manifest(dest)
        assert dataset.schema == MANIFEST_SCHEMA
        assert dataset.to_table().num_rows == 0
    assert len(ManifestIndex.load(Layout(tmp_path / "missing"))) == 0


def write_part(layout: Layout, run_id: str, *rows: dict[str, Any]) -> Path:
    writer = ManifestWriter(layout, run_id)
    for r in rows:
        writer.add(r)
    path = writer.flush()
    assert path is not None
    return path


def test_compact_keeps_the_newest_row_per_id(layout: Layout) -> None:
    # The repair lands in a part whose name sorts first: time decides, not file names.
    write_part(layout, "run2", row("a", sha="11" * 32), row("b", source_real_id="r0"))
    write_part(layout, "run1", row("a", at=T0 + timedelta(hours=1), sha="22" * 32), row("c"))
    assert compact(layout) == 3
    (only,) = manifest_names(layout)
    assert only.startswith("compacted-")
    table = open_manifest(layout.dest).to_table()
    assert table.column("id").to_pylist() == ["b", "a", "c"]
    assert {r["id"]: r["sha256"] for r in table.to_pylist()}["a"] == "22" * 32
    assert compact(layout) == 3 and manifest_names(layout) == [only]  # nothing to do
    write_part(layout, "run3", row("c", at=T0 + timedelta(days=1), sha="33" * 32))
    assert compact(layout) == 3
    assert len(manifest_names(layout)) == 1
    assert ManifestIndex.load(layout).get("c") == MirroredFile("images/bench/real_1/c.jpg", 1234, "33" * 32)
    assert list(layout.tmp.iterdir()) == []


def test_compact_on_empty_manifest(layout: Layout) -> None:
    assert compact(layout) == 0


def test_interrupted_compaction_is_repaired(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    write_part(layout, "run1", row("a"), row("b"))
    write_part(layout, "run1", row("a", at=T0 + timedelta(seconds=1), sha="ff" * 32))
    monkeypatch.setattr(compaction_mod, "delete_replaced", lambda layout, compacted: None)  # killed here
    assert compact(layout) == 2
    monkeypatch.undo()
    assert len(manifest_names(layout)) == 3
    assert open_manifest(layout.dest).count_rows() == 5  # duplicates visible until repaired
    index = ManifestIndex.load(layout)  # the index is right even before the repair
    assert len(index) == 2 and index.get("a") == MirroredFile("images/bench/real_1/a.jpg", 1234, "ff" * 32)

    # A writer with the same run id starts: it repairs, and does not reuse a replaced part's name.
    writer = ManifestWriter(layout, "run1")
    assert open_manifest(layout.dest).count_rows() == 2
    writer.add(row("c"))
    assert writer.flush() == layout.manifest / "part-run1-00003.parquet"
    recover(layout)  # idempotent, and the new part is not mistaken for a replaced one
    recover(layout)
    table = open_manifest(layout.dest).to_table()
    assert sorted(table.column("id").to_pylist()) == ["a", "b", "c"]


def test_index_last_row_wins(layout: Layout) -> None:
    write_part(layout, "run1", row("a", sha="01" * 32), row("b"))
    write_part(layout, "run2", row("a", sha="02" * 32))  # same time: the later file wins
    write_part(layout, "run3", row("b", at=T0 - timedelta(days=1), sha="03" * 32))  # older: loses
    index = ManifestIndex.load(layout)
    assert len(index) == 2 and "a" in index and "zz" not in index
    assert set(index.ids()) == {"a", "b"}
    assert index.get("a") == ("images/bench/real_1/a.jpg", 1234, "02" * 32)
    assert index.get("b") is not None and index.get("b").sha256 == "ab" * 32
    assert index.get("zz") is None


def test_many_rows_stay_fast(layout: Layout) -> None:
    writer = ManifestWriter(layout, "big", rows_per_part=5000)
    template = row("x")
    for n in range(20_000):
        writer.add({**template, "id": f"id{n:06d}", "source_real_id": f"r{n % 997}"})
        if writer.should_flush:
            writer.flush()
    writer.flush()
    writer.add({**template, "id": "id000007", "sha256": "new", "downloaded_at": T0 + timedelta(1)})
    writer.flush()
    assert len(ManifestIndex.load(layout)) == 20_000
    assert compact(layout) == 20_000
    assert ManifestIndex.load(layout).get("id000007").sha256 == "new"


def test_drop_missing_files_forgets_ids_without_a_file(layout: Layout) -> None:
    write_part(layout, "run1", row("a"), row("b"))
    index = ManifestIndex.load(layout)
    kept = layout.dest / index.get("a").path
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"\xff\xd8")
    assert index.drop_missing_files(layout) == 1
    assert "a" in index and "b" not in index and len(index) == 1 and index.dropped == 1
