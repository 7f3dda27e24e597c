"""The one atomic write (``mirror.store.atomic``): the old file or the new one, never a half, no leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror.store import atomic_file, write_atomic


def test_a_block_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "records.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as fh:
            fh.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.json"]

    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.json"]


def test_temp_files_go_where_they_are_told(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    target = tmp_path / "out" / "part.parquet"
    target.parent.mkdir()
    with atomic_file(target, temp_dir=scratch, prefix="manifest-", suffix=".parquet") as fh:
        (written,) = scratch.iterdir()           # the temp file, in the scratch folder, under its prefix
        assert written.name.startswith("manifest-") and written.suffix == ".parquet"
        fh.write(b"\x00" * 10)
    assert target.stat().st_size == 10 and not any(scratch.iterdir())

    fixed = tmp_path / "journal.rewrite"
    fixed.write_text("a leftover of a killed rewrite")      # a fixed temp name is simply overwritten
    write_atomic(tmp_path / "journal.jsonl", b"line\n", temp=fixed)
    assert (tmp_path / "journal.jsonl").read_bytes() == b"line\n" and not fixed.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_an_unwritable_folder_raises_oserror_and_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "f").write_text("old")
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            write_atomic(folder / "f", "new")
        assert (folder / "f").read_text() == "old"
    finally:
        folder.chmod(0o700)
