"""The skip index: which ids the manifest already holds, in the ids' own bytes plus ~20 bytes per id.

A sync loads it first and asks it once per listed item, thousands of times a second on the event
loop, so it must be small and each lookup cheap.  It holds:

* for the newest row of each id, the id's 64-bit hash (a numpy array, sorted and bisected per
  lookup) and the row's number in the manifest files it was loaded from;
* every row's id as read (Arrow string chunks, row order, no copy): a hash hit is confirmed
  against the id, so lookups stay exact when hashes collide.

``path``/``bytes``/``sha256`` are not kept: ``get`` (used by repair for a handful of ids) and
``drop_missing_files`` read them back from disk by row number.

On duplicate ids the newest ``downloaded_at`` wins and ties go to the later row, the same rule
``compact`` applies (scan.newest_rows).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mirror.store.layout import Layout
from mirror.store.manifest import manifest_files
from mirror.store.scan import POOL, HashId, Keys, newest_rows, read_batches, read_keys, take_rows

__all__ = ["ManifestIndex", "MirroredFile"]


class MirroredFile(NamedTuple):
    """What the manifest says is on disk for one id."""

    path: str
    bytes: int
    sha256: str


class ManifestIndex:
    """Which ids are mirrored, for the skip logic; build it with ``load``."""

    __slots__ = ("_chunk_starts", "_chunks", "_files", "_hash_id", "_hashes", "_ids", "_layout", "_probe",
                 "_rows", "_starts", "dropped")

    def __init__(self, layout: Layout, keys: Keys, hash_id: HashId) -> None:
        self._layout = layout
        self._files = keys.files      # the manifest files as loaded; rows are numbered across them
        self._starts = keys.starts    # row number of each file's first row, then the total
        self._hash_id = hash_id
        self._ids = keys.table.column("id")
        self._chunks = self._ids.chunks
        self._chunk_starts = np.cumsum([0] + [len(chunk) for chunk in self._chunks]).tolist()
        self._rows = newest_rows(keys)          # hash order
        self._hashes = keys.hashes[self._rows]  # sorted
        self._probe = memoryview(self._hashes)  # bisect on a memoryview: Python ints, no numpy scalars
        self.dropped = 0     # ids forgotten by drop_missing_files (their files were gone)
        POOL.release_unused()                   # what reading cost beyond what is kept

    @classmethod
    def load(cls, layout: Layout, *, hash_id: HashId = hash) -> ManifestIndex:
        """Read ``id`` and ``downloaded_at`` of every manifest row; ``hash_id`` is for tests of collisions."""
        return cls(layout, read_keys(manifest_files(layout), [], hash_id), hash_id)

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self._find(item_id) >= 0

    def __len__(self) -> int:
        return len(self._rows)

    def contains_many(self, item_ids: Sequence[str]) -> list[bool]:
        """``[i in self for i in item_ids]`` for a page of ids, with one vectorised search."""
        hashes = np.fromiter(map(self._hash_id, item_ids), dtype=np.int64, count=len(item_ids))
        at = np.searchsorted(self._hashes, hashes)
        candidates = np.flatnonzero(at < len(self._hashes))
        candidates = candidates[self._hashes[at[candidates]] == hashes[candidates]]
        found = np.zeros(len(item_ids), dtype=bool)
        if not len(candidates):            # the usual page of a fresh sync: nothing to confirm
            return found.tolist()
        asked = pa.array([item_ids[j] for j in candidates.tolist()], pa.string())
        same = pc.equal(take_rows(self._ids, self._rows[at[candidates]]), asked).to_numpy(zero_copy_only=False)
        found[candidates[same]] = True
        for j in candidates[~same].tolist():   # a hash collision: the id may come later in its run
            found[j] = self._find(item_ids[j]) >= 0
        return found.tolist()

    def get(self, item_id: str) -> MirroredFile | None:
        """The manifest's file columns for ``item_id``, read back from its row on disk."""
        at = self._find(item_id)
        if at < 0:
            return None
        row = int(self._rows[at])
        file_number = int(np.searchsorted(self._starts, row, side="right")) - 1
        try:
            return _read_row(self._files[file_number], row - int(self._starts[file_number]))
        except FileNotFoundError:
            # Compacted since this index was loaded, so the row moved: look it up afresh.
            return ManifestIndex.load(self._layout, hash_id=self._hash_id).get(item_id)

    def ids(self) -> Iterator[str]:
        """Every id in the index, in manifest row order, a chunk of Python strings at a time."""
        held = self._held()
        for chunk, start in zip(self._chunks, self._chunk_starts, strict=False):
            yield from chunk.filter(pa.array(held[start:start + len(chunk)])).to_pylist()

    def drop_missing_files(self, layout: Layout, exists: Callable[[str], bool] | None = None) -> int:
        """Forget ids whose file is no longer on disk, so a sync fetches them again (free: owned).

        ``exists``: whether a relative path is there, for a DEST whose files are not on this disk.

        Reads the ``path`` column back a batch at a time and stats only the rows the index holds.
        """
        held = self._held()
        dest = str(layout.dest)
        gone: list[np.ndarray] = []
        for path, first in zip(self._files, self._starts.tolist(), strict=False):
            row = first
            for batch in read_batches(path, ["path"]):
                wanted = np.flatnonzero(held[row:row + batch.num_rows])
                relpaths = pc.take(batch.column(0), wanted, memory_pool=POOL).to_pylist()
                missing = [offset for offset, relpath in zip(wanted.tolist(), relpaths, strict=True)
                           if relpath is None or not (os.path.isfile(os.path.join(dest, relpath))
                                                      if exists is None else exists(relpath))]
                gone.append(np.asarray(missing, dtype=np.int64) + row)
                row += batch.num_rows
        dropped = np.concatenate(gone) if gone else np.empty(0, dtype=np.int64)
        if len(dropped):
            keep = ~np.isin(self._rows, dropped)
            self._rows = self._rows[keep]
            self._hashes = self._hashes[keep]
            self._probe = memoryview(self._hashes)
        POOL.release_unused()
        self.dropped += len(dropped)
        return len(dropped)

    def _held(self) -> np.ndarray:
        """A flag per manifest row: is it the row the index holds for its id?"""
        held = np.zeros(int(self._starts[-1]), dtype=bool)
        held[self._rows] = True
        return held

    def _find(self, item_id: str) -> int:
        """Position of ``item_id`` in the hash-sorted arrays, or -1."""
        wanted = self._hash_id(item_id)
        at = bisect.bisect_left(self._probe, wanted)
        while at < len(self._probe) and self._probe[at] == wanted:
            row = int(self._rows[at])
            chunk = bisect.bisect_right(self._chunk_starts, row) - 1
            if self._chunks[chunk][row - self._chunk_starts[chunk]].as_py() == item_id:
                return at
            at += 1
        return -1


def _read_row(path: Path, row: int) -> MirroredFile:
    """``path``, ``bytes`` and ``sha256`` of one row of one manifest file (reads one row group)."""
    with pq.ParquetFile(path) as parquet:
        meta = parquet.metadata
        ends = np.cumsum([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        group = int(np.searchsorted(ends, row, side="right"))
        table = parquet.read_row_group(group, columns=["path", "bytes", "sha256"])
    offset = row - (int(ends[group - 1]) if group else 0)
    return MirroredFile(*(table.column(name)[offset].as_py() for name in MirroredFile._fields))
