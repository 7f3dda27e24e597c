"""``mirror.ray.read_mirror``: manifest rows with their image bytes, as a Ray Dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.compute as pc
import pytest

from mirror.store import open_manifest


def test_rows_columns_filters_and_image_bytes(ray_address, mirrored: Path) -> None:
    import mirror.ray
    manifest = {m["id"]: m for m in open_manifest(mirrored).to_table().to_pylist()}
    rows = mirror.ray.read_mirror(mirrored, columns=["id", "kind", "sha256"], filters={"kind": "fake"}).take_all()
    fakes = {i for i, m in manifest.items() if m["kind"] == "fake"}
    assert sorted(r["id"] for r in rows) == sorted(fakes) and fakes
    for row in rows:
        assert set(row) == {"id", "kind", "sha256", "image"}
        assert hashlib.sha256(row["image"]).hexdigest() == manifest[row["id"]]["sha256"] == row["sha256"]
        assert row["image"] == (mirrored / manifest[row["id"]]["path"]).read_bytes()
    every = mirror.ray.read_mirror(mirrored, filters=pc.field("kind") != "fake")
    assert every.count() == len(manifest) - len(fakes)
    assert set(every.schema().names) == set(open_manifest(mirrored).schema.names) | {"image"}


def test_a_damaged_file_fails_the_read_and_bad_names_are_refused(ray_address, mirrored: Path) -> None:
    from mirror.cluster import read_mirror
    from mirror.errors import DestinationError, UsageError
    with pytest.raises(UsageError, match="no manifest column 'colour'"):
        read_mirror(mirrored, columns=["id", "colour"])
    with pytest.raises(UsageError, match="cannot filter on 'bytes'"):
        read_mirror(mirrored, filters={"bytes": "1"})
    with pytest.raises(DestinationError, match="not a mirror folder"):
        read_mirror(mirrored / "images")
    victim = open_manifest(mirrored).to_table().to_pylist()[0]
    (mirrored / victim["path"]).write_bytes(b"not the image that was mirrored")
    with pytest.raises(Exception, match="verify --repair"):
        read_mirror(mirrored, columns=["id"]).take_all()
    unchecked = read_mirror(mirrored, columns=["id"], verify=False).take_all()
    assert len(unchecked) == open_manifest(mirrored).count_rows()
