"""Reading the manifest a file and a few thousand rows at a time, and the newest-row-per-id rule.

Compaction and the skip index both have to look at every manifest row.  Reading the manifest as
one Arrow table made memory grow with the corpus (hundreds of MB at 200k rows), so they read
here instead: one file at a time, in batches of ``BATCH_ROWS``, only the columns they ask for,
and keep per row little more than numbers.  Rows are numbered across files in
``manifest_files`` order (compacted files first, then parts by name), which is also the
tie-break order of the newest-row rule, so a row number is both an address and a rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mirror.store.manifest import MANIFEST_SCHEMA, unreadable

__all__ = ["BATCH_ROWS", "POOL", "HashId", "Keys", "read_batches", "read_keys", "newest_rows", "take_rows"]

BATCH_ROWS = 8192
HashId = Callable[[str], int]  # str -> int64; Python's hash() by default (per process, never stored)

# The store's passes allocate and free a few MB per batch, over and over: everything the store
# allocates in bulk comes from the C library's malloc (mimalloc kept twice as much resident; see
# docs/design.md), and its ``release_unused()`` (malloc_trim on glibc) hands freed pages back.
POOL = pa.system_memory_pool()

_OLDEST = pa.scalar(np.iinfo(np.int64).min, pa.int64())   # typed: inferring a Python int's type imports dateutil


def read_batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """One manifest file's rows in file order, as MANIFEST_SCHEMA (a column the file lacks reads as nulls).

    Buffered reads without pre-buffering, no read-ahead and no decoding threads: a reader holds
    one column page at a time, whatever the file's row group size, and allocators keep less
    around when one thread does the work (decoding is not what a sync waits for). Plain
    ``pyarrow.parquet`` rather than ``pyarrow.dataset``, whose import alone is ~15 MB of RSS.
    """
    fields = [MANIFEST_SCHEMA.field(name) for name in (columns or MANIFEST_SCHEMA.names)]
    schema = pa.schema(fields)
    # The consumer's own errors never arrive at the ``yield``: only the file's (a damaged footer or
    # page, a column of another type) are caught here.
    try:
        reader = pq.ParquetFile(path, buffer_size=64 * 1024, pre_buffer=False)
        present = [f.name for f in fields if f.name in reader.schema_arrow.names]
        for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=present, use_threads=False):
            yield pa.RecordBatch.from_arrays(
                [batch.column(f.name).cast(f.type) if f.name in present else pa.nulls(batch.num_rows, f.type)
                 for f in fields], schema=schema)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(path, exc) from exc


class Keys(NamedTuple):
    """What deduplication needs about every manifest row, indexed by row number."""

    files: list[Path]
    starts: np.ndarray   # int64 row number of each file's first row, then the total row count
    hashes: np.ndarray   # int64 hash of each row's id
    stamps: np.ndarray   # int64 ``downloaded_at`` in ms; null counts as the oldest possible
    table: pa.Table      # ``id`` and the other string columns asked for, in row order


def read_keys(files: list[Path], columns: list[str], hash_id: HashId) -> Keys:
    """Read ``id``, ``downloaded_at`` and ``columns`` of every row of ``files``, batch by batch.

    Ids become Python strings only a batch at a time, to be hashed; what is kept is the Arrow
    columns (about the bytes of the text) and two int64 per row.
    """
    names = ["id", *columns]
    starts, hashes, stamps, batches = [0], [], [], []
    for path in files:
        rows = starts[-1]
        for batch in read_batches(path, [*names, "downloaded_at"]):
            ids = batch.column("id")
            hashes.append(np.fromiter(map(hash_id, ids.to_pylist()), dtype=np.int64, count=len(ids)))
            stamp = batch.column("downloaded_at").cast(pa.int64(), memory_pool=POOL)
            stamps.append(pc.coalesce(stamp, _OLDEST, memory_pool=POOL).to_numpy())
            batches.append(batch.select(names))
            rows += batch.num_rows
        starts.append(rows)
        POOL.release_unused()        # the file's decoding buffers: freed, but kept by malloc until trimmed
    schema = pa.schema([MANIFEST_SCHEMA.field(name) for name in names])
    return Keys(files, np.asarray(starts, dtype=np.int64), _concat(hashes), _concat(stamps),
                pa.Table.from_batches(batches, schema=schema))


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def newest_rows(keys: Keys) -> np.ndarray:
    """Row numbers of the newest row of each distinct id, in ascending hash order.

    Newest means the latest ``downloaded_at`` (null is oldest), ties going to the later row.
    Rows are grouped by hash with one numpy sort; a group of several rows is normally one id
    written again by a repair, and is confirmed against the ids themselves, so ids whose hashes
    collide are each kept (their group is then settled in Python, which real hashes never need).
    """
    order = np.lexsort((keys.stamps, keys.hashes))  # by hash, then oldest first; stable, so then by row
    hashes = keys.hashes[order]
    same = hashes[1:] == hashes[:-1]        # same[i]: sorted rows i and i + 1 share a hash
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = ~same                       # the last (newest) row of each run of equal hashes
    pairs = np.flatnonzero(same)
    if pairs.size:
        ids = keys.table.column("id")
        differ = pc.not_equal(take_rows(ids, order[pairs]), take_rows(ids, order[pairs + 1]), memory_pool=POOL)
        for start in np.unique(np.searchsorted(hashes, hashes[pairs[differ.to_numpy(zero_copy_only=False)]])):
            stop = int(np.searchsorted(hashes, hashes[start], side="right"))
            later: set[str] = set()
            for offset, item_id in enumerate(reversed(take_rows(ids, order[start:stop]).to_pylist())):
                keep[stop - 1 - offset] = item_id not in later
                later.add(item_id)
    return order[keep]


def take_rows(column: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``column.take(rows)`` chunk by chunk: pyarrow's own take on a chunked array first copies
    all its chunks into one array, which costs the whole column's size on every call.
    """
    starts = np.cumsum([0] + [len(chunk) for chunk in column.chunks])
    chunk_of = np.searchsorted(starts, rows, side="right") - 1
    by_chunk = np.argsort(chunk_of, kind="stable")
    pieces = [column.chunk(int(chunk_of[part[0]])).take(rows[part] - starts[chunk_of[part[0]]])
              for part in np.split(by_chunk, np.flatnonzero(np.diff(chunk_of[by_chunk])) + 1) if len(part)]
    back = np.empty_like(by_chunk)
    back[by_chunk] = np.arange(len(by_chunk))
    return pa.concat_arrays(pieces or [pa.array([], column.type)]).take(back)
