"""The Parquet manifest: one row per mirrored image, readable by pyarrow, pandas, DuckDB and polars.

``DEST/manifest/`` only ever contains complete ``*.parquet`` files, so any reader pointed at the
folder works at any moment, even while a run is writing:

* ``part-<run_id>-<seq>.parquet`` is appended by a ``ManifestWriter``; each part is written to
  ``.state/tmp/``, fsynced and renamed into place, so it is either complete or absent.
* ``compacted-<utc>-<random>.parquet`` is written by ``compact`` (compaction.py): all rows, one
  per id (newest ``downloaded_at`` wins, so a repaired item replaces its old row).  Its Parquet
  key-value metadata lists the files it replaces; they are deleted only after it is in place.  A
  crash between the rename and the deletes leaves duplicates that ``recover`` removes, and writers
  never reuse a listed name, so ``recover`` can only ever delete data that was compacted.

Writers and ``compact`` must run under the DestLock; readers need no lock.  The skip index is in
index.py.  Names here that are public but not in ``__all__`` (``manifest_files``, ``dest_file``,
``SORT_KEYS``, ...) are shared with compaction.py, index.py and scan.py, not an API for users.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mirror.errors import DestinationError
from mirror.store.atomic import atomic_file, fsync_dir
from mirror.store.destination import url_scheme
from mirror.store.layout import Layout, destination_error
from mirror.store.rows import MANIFEST_SCHEMA, FileRow, checked, table_from_files

if TYPE_CHECKING:
    import pyarrow.dataset as ds

__all__ = ["ManifestWriter", "recover", "open_manifest", "write_table_atomic"]

_COLUMNS = frozenset(MANIFEST_SCHEMA.names)
SORT_KEYS = [("source_real_id", "ascending"), ("base_id", "ascending"), ("id", "ascending")]  # nulls last
COMPACTED_PREFIX = "compacted-"
REPLACES_KEY = b"margen-mirror.replaces"
ORDERED_KEY = b"margen-mirror.ordered"   # b"1": rows in SORT_KEYS order and no id twice (a part's own claim)
TMP_PREFIX = "manifest-"           # in .state/tmp; other temp files there are not ours to remove
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ROW_GROUP_ROWS = 64 * 1024        # several row groups per big file lets readers work in parallel


class ManifestWriter:
    """Buffers rows and writes them as immutable parts: ``add_file`` (or ``add`` for a row already
    built), then ``flush`` (or, from async code, ``seal`` on the event loop and ``write_sealed`` in
    a worker thread)."""

    def __init__(self, layout: Layout, run_id: str, rows_per_part: int = 5000) -> None:
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id must match {_RUN_ID.pattern}: {run_id!r}")
        if rows_per_part < 1:
            raise ValueError("rows_per_part must be at least 1")
        self.layout = layout
        self.run_id = run_id
        self.rows_per_part = rows_per_part
        self._files: list[FileRow] = []
        self._rows: list[dict[str, Any]] = []
        self._sealed: list[pa.Table] = []     # rows converted by seal(), not yet in a part
        recover(layout)
        self._seq = _next_seq(layout, run_id)

    @property
    def pending(self) -> int:
        """Rows added but not yet in a part (lost if the process dies now)."""
        return len(self._files) + len(self._rows) + sum(table.num_rows for table in self._sealed)

    @property
    def should_flush(self) -> bool:
        return len(self._files) + len(self._rows) >= self.rows_per_part

    def add_file(self, row: FileRow) -> None:
        """Buffer one placed file's row (no I/O, no conversion: ``seal`` converts them together).
        ValueError, for this row alone, if it could never be written (see ``rows.checked``)."""
        self._files.append(checked(row))

    def add(self, row: dict[str, Any]) -> None:
        """Buffer one row (no I/O).  Checks the shape here so a bug points at its caller."""
        if row.keys() != _COLUMNS:
            missing, unknown = sorted(_COLUMNS - row.keys()), sorted(row.keys() - _COLUMNS)
            raise ValueError(f"manifest row does not match the schema: missing {missing}, unknown {unknown}")
        if not isinstance(row["id"], str):
            raise ValueError(f"manifest row needs a string id, got {row['id']!r}")
        self._rows.append(row)

    def flush(self) -> Path | None:
        """Write the buffered rows as the next part and return its path (None if nothing buffered).

        On failure the rows stay buffered, so a later flush can still save them.
        """
        self.seal()
        return self.write_sealed()

    def seal(self) -> None:
        """Convert the buffered rows to Arrow, kept until ``write_sealed`` puts them in a part.

        Mostly Python under the GIL: an async caller runs this on the event loop and only
        ``write_sealed`` in a worker thread, which was faster than converting in the thread
        (docs/design.md).
        """
        if self._files:
            self._sealed.append(table_from_files(self._files))
            self._files = []
        if self._rows:
            self._sealed.append(pa.Table.from_pylist(self._rows, schema=MANIFEST_SCHEMA))
            self._rows = []

    def write_sealed(self) -> Path | None:
        """Write everything sealed as the next part and return its path (None if nothing is sealed).

        Sorting, encoding and writing run in Arrow with the GIL released, so a worker thread may
        do this beside the event loop. On failure the rows stay sealed for a later call.
        """
        count = len(self._sealed)
        if not count:
            return None
        table = pa.concat_tables(self._sealed[:count]).sort_by(SORT_KEYS)   # a snapshot: rows sealed meanwhile wait
        if pc.count_distinct(table["id"]).as_py() == table.num_rows:
            table = table.replace_schema_metadata({ORDERED_KEY: b"1"})      # compaction may then skip reading it
        target = self.layout.manifest / f"part-{self.run_id}-{self._seq:05d}.parquet"
        write_table_atomic(self.layout, table, target)
        self._seq += 1
        del self._sealed[:count], table
        # The part's Arrow buffers (a few MB) were freed in this thread's malloc arena, which keeps
        # them unless trimmed; one trim per part is cheap next to writing it.
        pa.default_memory_pool().release_unused()
        return target


def recover(layout: Layout) -> None:
    """Finish compactions interrupted after their rename and drop our temp files; idempotent."""
    for compacted in manifest_files(layout):
        if compacted.name.startswith(COMPACTED_PREFIX):
            delete_replaced(layout, compacted)
    for leftover in layout.tmp.glob(f"{TMP_PREFIX}*"):
        leftover.unlink(missing_ok=True)


def open_manifest(dest: Path | str) -> ds.Dataset:
    """The manifest as a dataset with MANIFEST_SCHEMA; empty (not an error) when nothing is mirrored.

    Rows of a compacted file and of the parts it replaced can both be visible during the short
    window of an interrupted compaction; ``ManifestIndex`` dedupes, plain readers may see both.
    """
    import pyarrow.dataset as ds  # for readers only: a sync never needs it (~15 MB of RSS)

    if url_scheme(dest) is not None:      # s3://bucket/prefix: read over the bucket; others refused
        from mirror.store.objectstore import open_remote_manifest
        return open_remote_manifest(str(dest))
    files = manifest_files(Layout(Path(dest)))
    for path in files:          # a footer that cannot be read is named here, not deep in a scan
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(path, exc) from exc
    return ds.dataset([str(f) for f in files], schema=MANIFEST_SCHEMA, format="parquet")


def manifest_files(layout: Layout) -> list[Path]:
    """Manifest files in tie-break order: compacted files first (older data), then parts by name."""
    return sorted(p for p in layout.manifest.glob("*.parquet") if p.is_file())


def _next_seq(layout: Layout, run_id: str) -> int:
    """First part number for this run that names no existing file and no file a compaction replaced."""
    used: set[str] = set()
    for f in manifest_files(layout):
        used.add(f.name)
        if f.name.startswith(COMPACTED_PREFIX):
            used.update(_replaced_names(f))
    pattern = re.compile(rf"part-{re.escape(run_id)}-(\d+)\.parquet")
    seqs = [int(m.group(1)) for name in used if (m := pattern.fullmatch(name))]
    return max(seqs, default=0) + 1


def unreadable(path: Path, exc: BaseException) -> DestinationError:
    """The one line for a manifest file that cannot be read (truncated, foreign, a failing disk).

    Moving it away is safe: a sync then re-fetches its items, free, since the account owns them."""
    return DestinationError(f"manifest file {path} is unreadable ({exc}): move it out of the manifest folder "
                            "and run the sync again (it re-fetches those items, free)")


def _replaced_names(compacted: Path) -> list[str]:
    try:
        kv = pq.read_metadata(compacted).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(compacted, exc) from exc
    names = json.loads(kv.get(REPLACES_KEY, b"[]"))
    # Only bare names of other files in manifest/: never trust stored text to be a safe path.
    return [n for n in names if isinstance(n, str) and n == Path(n).name and n != compacted.name]


def delete_replaced(layout: Layout, compacted: Path) -> None:
    deleted = False
    for name in _replaced_names(compacted):
        try:
            (layout.manifest / name).unlink()
            deleted = True
        except FileNotFoundError:
            pass
    if deleted:
        fsync_dir(layout.manifest)


def write_table_atomic(layout: Layout, table: pa.Table, target: Path, *, tmp_prefix: str = TMP_PREFIX) -> None:
    """Write ``table`` as Parquet (zstd) via ``dest_file``: ``target`` is complete or absent.

    Every Parquet file margen-mirror writes into DEST in one piece (manifest parts, detector
    scores) goes through here; ``tmp_prefix`` tells whose leftovers a recovery may delete.
    """
    with dest_file(layout, target, tmp_prefix=tmp_prefix) as fh:
        pq.write_table(table, fh, compression="zstd", row_group_size=_ROW_GROUP_ROWS)


@contextlib.contextmanager
def dest_file(layout: Layout, target: Path, *, tmp_prefix: str = TMP_PREFIX) -> Iterator[BinaryIO]:
    """``atomic_file`` for a Parquet file of DEST, written in ``.state/tmp`` under ``tmp_prefix``
    (so a recovery knows whose leftovers it may delete); an OSError becomes a one-line
    DestinationError. For writers that stream a file piece by piece (compaction)."""
    try:
        with atomic_file(target, temp_dir=layout.tmp, prefix=tmp_prefix, suffix=".parquet") as fh:
            yield fh
    except OSError as exc:
        raise destination_error(exc, target) from exc
