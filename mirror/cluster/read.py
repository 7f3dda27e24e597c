"""``read_mirror``: a mirror's manifest rows, with each row's image bytes, as a Ray Dataset.

The manifest is read once on the driver, one row per item (the newest, by the rule ``compact``
applies), filtered and cut to the columns asked for; the images are read by Ray tasks as the
dataset is consumed, each checked against its manifest sha256, so a pipeline never trains on a
file that was damaged since the sync (``verify --repair`` fixes those).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mirror.errors import DestinationError, UsageError
from mirror.store import MANIFEST_SCHEMA, Layout, open_manifest, resolve_inside

__all__ = ["read_mirror"]

_ROWS_PER_BLOCK = 256

Filters = Mapping[str, "str | Sequence[str]"] | pc.Expression


def read_mirror(dest: str | Path, columns: Sequence[str] | None = None, filters: Filters | None = None, *,
                verify: bool = True) -> Any:
    """A ``ray.data.Dataset`` of DEST's manifest rows (``columns``, default all) plus ``image`` (the bytes).

    ``filters`` is ``{"kind": "fake", "skin_tone": ["dark", "brown"]}`` (values OR within a key, keys
    AND across, as for ``sync``) or a ``pyarrow.compute`` expression over manifest columns.
    ``verify`` checks each image against its sha256 as it is read (a mismatch fails the read).
    """
    import ray.data

    layout = Layout(Path(dest))
    if not layout.manifest.is_dir():
        raise DestinationError(f"{dest} is not a mirror folder: run sync first")
    keep = list(dict.fromkeys(columns)) if columns is not None else list(MANIFEST_SCHEMA.names)
    unknown = [c for c in keep if c not in MANIFEST_SCHEMA.names]
    if unknown:
        raise UsageError(f"no manifest column {unknown[0]!r}: use some of {', '.join(MANIFEST_SCHEMA.names)}")
    expression = _expression(filters)
    table = open_manifest(layout.dest).to_table()
    table = _newest(table)
    if expression is not None:
        table = table.filter(expression)
    table = table.select(list(dict.fromkeys([*keep, "path", "sha256"])))
    blocks = [table.slice(i, _ROWS_PER_BLOCK) for i in range(0, table.num_rows, _ROWS_PER_BLOCK)] or [table]
    return ray.data.from_arrow(blocks).map_batches(
        _with_images, fn_kwargs={"dest": str(layout.dest), "keep": keep, "verify": verify}, batch_format="pyarrow",
        batch_size=None)


def _expression(filters: Filters | None) -> pc.Expression | None:
    if filters is None or isinstance(filters, pc.Expression):
        return filters
    expression = None
    for key, value in filters.items():
        if key not in MANIFEST_SCHEMA.names or MANIFEST_SCHEMA.field(key).type != pa.string():
            raise UsageError(f"cannot filter on {key!r} with values: use a text column of the manifest "
                             "or a pyarrow.compute expression")
        values = [value] if isinstance(value, str) else list(value)
        term = pc.field(key).isin(values)
        expression = term if expression is None else expression & term
    return expression


def _newest(table: pa.Table) -> pa.Table:
    """One row per id: the latest ``downloaded_at`` (null oldest), ties to the later row, as ``compact`` keeps."""
    if table.num_rows == 0:
        return table
    stamps = pc.fill_null(table.column("downloaded_at").cast(pa.int64()), np.iinfo(np.int64).min)
    order = pc.sort_indices(pa.table({"id": table.column("id"), "t": stamps, "n": np.arange(table.num_rows)}),
                            sort_keys=[("id", "ascending"), ("t", "ascending"), ("n", "ascending")])
    ids = table.column("id").take(order).combine_chunks()
    last = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        last[:-1] = pc.not_equal(ids[:-1], ids[1:]).to_numpy(zero_copy_only=False)
    return table.take(order.filter(pa.array(last)))


def _with_images(batch: pa.Table, dest: str, keep: list[str], verify: bool) -> pa.Table:
    """Runs in a Ray task: the batch's ``keep`` columns plus each row's image bytes."""
    root = Path(dest)
    images = []
    for relpath, sha256 in zip(batch.column("path").to_pylist(), batch.column("sha256").to_pylist(), strict=True):
        data = resolve_inside(root, relpath).read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise DestinationError(f"{relpath} no longer matches the manifest: run verify --repair on {dest}")
        images.append(data)
    return batch.select(keep).append_column("image", pa.array(images, pa.binary()))
