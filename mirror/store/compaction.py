"""Compaction: merge every manifest file into one ``compacted-*`` file, one row per id, in bounded memory.

The result is what reading everything into one table, keeping the newest row of each id and
sorting by (source_real_id, base_id, id) would give, but that table plus its sorted copy made a
sync's memory grow with the corpus.  Instead, three passes:

1. keys: only ``id``, ``downloaded_at``, ``source_real_id`` and ``base_id`` of every row are read
   (about 100 bytes a row: the one part that still grows with the manifest), to pick each id's
   surviving row and the output order.
2. spill: every file is read once, a batch at a time, and each batch's surviving rows are
   appended to an uncompressed Arrow IPC file in ``.state/tmp``, grouped by the output slice
   they will land in.
3. write: each slice (a few MB of rows) is read back, put in output order and written as one
   row group of the new file.

Why a spill: after a fresh sync every part holds rows from the whole key range, so each output
slice needs rows of every part.  Re-reading the parts per slice costs slices x manifest in
decoding, and a k-way merge of the parts holds a decoded page of every part at once; the spill
is written and read once at memory speed, for temporary disk space of about the manifest's
uncompressed size.  The new file is written through ``dest_file`` (``store.atomic``) and the files it replaces
are deleted only after its rename, exactly as before, so ``recover`` semantics are unchanged.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mirror.errors import DestinationError
from mirror.store.atomic import replace_durably
from mirror.store.layout import Layout, destination_error
from mirror.store.manifest import (
    COMPACTED_PREFIX,
    MANIFEST_SCHEMA,
    ORDERED_KEY,
    REPLACES_KEY,
    SORT_KEYS,
    TMP_PREFIX,
    delete_replaced,
    dest_file,
    manifest_files,
    recover,
)
from mirror.store.scan import POOL, HashId, Keys, newest_rows, read_batches, read_keys

__all__ = ["compact"]

# Rows per output slice (= row group) come from a byte budget, so rows carrying large metadata
# JSON make smaller slices instead of a bigger footprint; pass 3 holds about two slices.
_SLICE_BYTES = 4 * 1024 * 1024
_SLICE_ROWS_MIN, _SLICE_ROWS_MAX = 1024, 64 * 1024
_SPILL_BUFFER = 1024 * 1024       # the spill is many small batches: write it in big chunks


def compact(layout: Layout, *, hash_id: HashId = hash) -> int:
    """Merge every manifest file into one, one row per id (newest wins); returns the row count.

    ``hash_id`` only groups rows before ids are compared (tests pass a colliding one).
    """
    recover(layout)
    files = manifest_files(layout)
    if not files:
        return 0
    if len(files) == 1 and files[0].name.startswith(COMPACTED_PREFIX):
        return pq.read_metadata(files[0]).num_rows
    target = layout.manifest / f"{COMPACTED_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}.parquet"
    if len(files) == 1 and (rows := _promote(layout, files[0], target)) is not None:
        return rows
    slice_rows = _slice_rows(files)
    order, slice_of = _plan(read_keys(files, ["source_real_id", "base_id"], hash_id), slice_rows)
    replaces = json.dumps([f.name for f in files]).encode()
    POOL.release_unused()
    with _spill_file(layout) as spill:
        pieces = _spill(files, slice_of, spill)
        del slice_of
        POOL.release_unused()
        with dest_file(layout, target) as fh:
            _write(fh, spill, pieces, order, slice_rows, replaces)
    delete_replaced(layout, target)
    return len(order)


def _promote(layout: Layout, part: Path, target: Path) -> int | None:
    """A lone part already in manifest order with distinct ids (what the part writer produces in
    one run) is what compaction would write: it becomes the compacted file by a rename instead of
    being rewritten, which is a small first sync's whole manifest. None: it needs the merge."""
    with pq.ParquetFile(part) as pf:     # not pq.read_table: it imports pyarrow.dataset (~10 ms, ~15 MB)
        rows = pf.metadata.num_rows
        if rows > _SLICE_ROWS_MAX or not _in_order(pf):
            return None
    try:
        replace_durably(part, target)
    except OSError as exc:
        raise destination_error(exc, layout.manifest) from exc
    return rows


def _in_order(pf: pq.ParquetFile) -> bool:
    """Rows in SORT_KEYS order with distinct ids: as the part writer says (``ORDERED_KEY``, which
    spares reading it back), else as its key columns show (a part from an older version)."""
    if (pf.metadata.metadata or {}).get(ORDERED_KEY) == b"1":
        return True
    columns = pf.read(columns=[name for name, _ in SORT_KEYS]).to_pydict()
    keys = [tuple((value is None, value or "") for value in row)    # nulls last, as in SORT_KEYS
            for row in zip(*(columns[name] for name, _ in SORT_KEYS), strict=True)]
    return len(set(columns["id"])) == len(keys) and all(a <= b for a, b in itertools.pairwise(keys))


def _slice_rows(files: list[Path]) -> int:
    """Rows per output slice: ``_SLICE_BYTES`` of rows as Arrow holds them, sampled from the first batch.

    Not from the Parquet metadata: its sizes are of encoded pages (dictionaries, run lengths),
    about a third of the decoded rows a slice holds, twice over, while it is written.
    """
    batch = next(iter(read_batches(files[0])), None)
    row_bytes = batch.nbytes / batch.num_rows if batch is not None and batch.num_rows else 1.0
    return int(np.clip(_SLICE_BYTES / row_bytes, _SLICE_ROWS_MIN, _SLICE_ROWS_MAX))


def _plan(keys: Keys, slice_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The surviving rows in output order, and each row's output slice (-1: dropped as a duplicate).

    All rows are sorted, duplicates included, and the losers filtered out of the sorted order
    afterwards: the same order as sorting only the survivors (ids are unique among them), without
    a copy of the key columns.
    """
    survives = np.zeros(len(keys.hashes), dtype=bool)
    survives[newest_rows(keys)] = True
    order = pc.sort_indices(keys.table, sort_keys=SORT_KEYS, memory_pool=POOL).to_numpy()
    order = order[survives[order]]
    slice_of = np.full(len(survives), -1, dtype=np.int32)
    slice_of[order] = np.arange(len(order), dtype=np.int64) // slice_rows
    return order, slice_of


@contextlib.contextmanager
def _spill_file(layout: Layout) -> Iterator[Path]:
    """A temp file for pass 2, removed afterwards (and by ``recover`` after a crash: same prefix)."""
    try:
        fd, name = tempfile.mkstemp(dir=layout.tmp, prefix=TMP_PREFIX, suffix=".arrow")
        os.close(fd)
    except OSError as exc:
        raise destination_error(exc, layout.tmp) from exc
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _spill(files: list[Path], slice_of: np.ndarray, spill: Path) -> list[list[int]]:
    """Pass 2: copy the surviving rows into ``spill``; returns, per slice, its record batch numbers.

    Within a slice, rows are spilled in row-number order (files, batches and rows in order).
    """
    pieces: list[list[int]] = [[] for _ in range(int(slice_of.max(initial=-1)) + 1)]
    row = written = 0
    try:
        with pa.OSFile(str(spill), "wb") as file, pa.BufferedOutputStream(file, _SPILL_BUFFER, POOL) as sink, \
                pa.ipc.new_file(sink, MANIFEST_SCHEMA) as writer:
            for path in files:
                for batch in read_batches(path):
                    slices = slice_of[row:row + batch.num_rows]
                    row += batch.num_rows
                    by_slice = np.argsort(slices, kind="stable")   # row order kept within each slice
                    grouped = pc.take(batch, by_slice, memory_pool=POOL)
                    bounds = [0, *(np.flatnonzero(np.diff(slices[by_slice])) + 1).tolist(), batch.num_rows]
                    for start, stop in itertools.pairwise(bounds):
                        if stop > start and (number := int(slices[by_slice[start]])) >= 0:
                            writer.write_batch(grouped.slice(start, stop - start))
                            pieces[number].append(written)
                            written += 1
    except OSError as exc:
        raise destination_error(exc, spill) from exc
    if row != len(slice_of):
        raise DestinationError("the manifest changed while it was being compacted: run again")
    return pieces


def _write(fh: BinaryIO, spill: Path, pieces: list[list[int]], order: np.ndarray, slice_rows: int,
           replaces: bytes) -> None:
    """Pass 3: each slice's rows from the spill, in output order, as one row group."""
    schema = MANIFEST_SCHEMA.with_metadata({REPLACES_KEY: replaces})
    with pa.OSFile(str(spill), memory_pool=POOL) as source, \
            pq.ParquetWriter(fh, schema, compression="zstd", memory_pool=POOL) as writer:
        reader = pa.ipc.open_file(source, memory_pool=POOL)
        for number, batches in enumerate(pieces):
            rows = order[number * slice_rows:(number + 1) * slice_rows]
            # One contiguous copy first: a take on many chunks would concatenate them anyway, keeping both.
            table = pa.Table.from_batches([reader.get_batch(k) for k in batches], schema=MANIFEST_SCHEMA)
            table = table.combine_chunks(memory_pool=POOL)
            if table.num_rows != len(rows):
                raise DestinationError("the manifest changed while it was being compacted: run again")
            position = np.empty(len(rows), dtype=np.int64)
            position[np.argsort(rows)] = np.arange(len(rows), dtype=np.int64)  # spill order -> output order
            writer.write_table(pc.take(table, position, memory_pool=POOL), row_group_size=len(rows))
            del table
            POOL.release_unused()
