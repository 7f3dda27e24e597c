"""The Parquet manifest: one row per mirrored image, readable by pyarrow, pandas, DuckDB and polars.

``DEST/manifest/`` only ever contains complete ``*.parquet`` files, so any reader pointed at the
folder works at any moment, even while a run is writing:

* ``part-<run_id>-<seq>.parquet`` is appended by a ``ManifestWriter``; each part is written to
  ``.state/tmp/``, fsynced and renamed into place, so it is either complete or absent.
* ``compacted-<utc>-<random>.parquet`` is written by ``compact``: all rows, one per id (newest
  ``downloaded_at`` wins, so a repaired item replaces its old row).  Its Parquet key-value
  metadata lists the files it replaces; they are deleted only after it is in place.  A crash
  between the rename and the deletes leaves duplicates that ``recover`` removes, and writers
  never reuse a listed name, so ``recover`` can only ever delete data that was compacted.

Writers and ``compact`` must run under the DestLock; readers need no lock.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import tempfile
from collections.abc import KeysView, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mirror.errors import DestinationError
from mirror.store.layout import Layout, destination_error

__all__ = [
    "MANIFEST_SCHEMA", "row_from_item", "ManifestWriter", "compact", "recover", "open_manifest",
    "ManifestIndex", "MirroredFile", "write_table_atomic",
]

# Item fields copied verbatim (as text) from the API's item object.
_ITEM_COLUMNS = ("id", "benchmark", "kind", "skin_tone", "gender", "generator", "perturbation", "layer",
                 "base_id", "source_real_id", "identity_id", "scene")

MANIFEST_SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False)]
    + [pa.field(name, pa.string()) for name in _ITEM_COLUMNS[1:]]
    + [
        pa.field("attributes", pa.string()),     # JSON object text, "{}" when the item had none
        pa.field("metadata", pa.string()),       # JSON, only when the run used include=metadata
        pa.field("extra", pa.string()),          # JSON of item fields this schema does not know
        pa.field("path", pa.string()),           # relative to DEST, POSIX separators
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),         # hex of the file as stored
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("charged", pa.bool_()),         # whether this download cost a credit
        pa.field("downloaded_at", pa.timestamp("ms", tz="UTC")),
    ]
)

_COLUMNS = frozenset(MANIFEST_SCHEMA.names)
_KNOWN_ITEM_KEYS = frozenset(_ITEM_COLUMNS) | {"attributes", "metadata", "object"}
_SORT_KEYS = [("source_real_id", "ascending"), ("base_id", "ascending"), ("id", "ascending")]
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_COMPACTED_PREFIX = "compacted-"
_TMP_PREFIX = "manifest-"          # in .state/tmp; other temp files there are not ours to remove
_REPLACES_KEY = b"margen-mirror.replaces"
_ROW_GROUP_ROWS = 64 * 1024        # several row groups per big file lets readers work in parallel


def _json(value: Any) -> str:
    """Compact, key-sorted JSON: equal values give equal text, so the columns compare and dedupe."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _text(value: Any) -> str | None:
    """A string column value; a number or object the server sent is kept as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return _json(value)


def row_from_item(
    item: Mapping[str, Any],
    *,
    path: str,
    bytes: int,  # the column's name, so callers write bytes=...; shadows the builtin only here
    sha256: str,
    width: int,
    height: int,
    charged: bool,
    downloaded_at: datetime,
) -> dict[str, Any]:
    """Turn an API item object plus what we measured about the file into one manifest row.

    Nothing the server sent is lost: unknown fields go to ``extra`` (including fields named like
    our own file columns, whose values are our measurements).  ``downloaded_at`` must be
    timezone-aware; it is stored in UTC at millisecond precision, which is what compaction
    compares.  Raises ValueError for an item without a string id or with text that is not
    valid UTF-8 (a lone surrogate): such a row could never be written.
    """
    if not isinstance(item.get("id"), str):
        raise ValueError(f"API item has no string id: {item.get('id')!r}")
    if downloaded_at.tzinfo is None:
        raise ValueError("downloaded_at must be timezone-aware")
    row: dict[str, Any] = {name: _text(item.get(name)) for name in _ITEM_COLUMNS}
    attributes = item.get("attributes")
    row["attributes"] = _json({} if attributes is None else attributes)
    metadata = item.get("metadata")
    row["metadata"] = None if metadata is None else _json(metadata)
    extra = {key: value for key, value in item.items() if key not in _KNOWN_ITEM_KEYS}
    row["extra"] = _json(extra) if extra else None
    stamp = downloaded_at.astimezone(UTC)
    row.update(
        path=path, bytes=int(bytes), sha256=sha256, width=int(width), height=int(height),
        charged=bool(charged), downloaded_at=stamp.replace(microsecond=stamp.microsecond // 1000 * 1000),
    )
    for value in row.values():
        if isinstance(value, str) and not value.isascii():
            value.encode("utf-8")  # raises UnicodeEncodeError (a ValueError) on lone surrogates
    return row


class ManifestWriter:
    """Buffers rows and writes them as immutable parts; synchronous (run it in a thread)."""

    def __init__(self, layout: Layout, run_id: str, rows_per_part: int = 5000) -> None:
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id must match {_RUN_ID.pattern}: {run_id!r}")
        if rows_per_part < 1:
            raise ValueError("rows_per_part must be at least 1")
        self.layout = layout
        self.run_id = run_id
        self.rows_per_part = rows_per_part
        self._rows: list[dict[str, Any]] = []
        recover(layout)
        self._seq = _next_seq(layout, run_id)

    @property
    def pending(self) -> int:
        """Rows added but not yet flushed (lost if the process dies now)."""
        return len(self._rows)

    @property
    def should_flush(self) -> bool:
        return len(self._rows) >= self.rows_per_part

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
        if not self._rows:
            return None
        table = pa.Table.from_pylist(self._rows, schema=MANIFEST_SCHEMA).sort_by(_SORT_KEYS)
        target = self.layout.manifest / f"part-{self.run_id}-{self._seq:05d}.parquet"
        write_table_atomic(self.layout, table, target)
        self._seq += 1
        self._rows = []
        return target


def compact(layout: Layout) -> int:
    """Merge every manifest file into one, one row per id (newest wins); returns the row count."""
    recover(layout)
    files = _manifest_files(layout)
    if not files:
        return 0
    if len(files) == 1 and files[0].name.startswith(_COMPACTED_PREFIX):
        return pq.read_metadata(files[0]).num_rows
    table = _read_all(files)
    # One take, in final order, of the newest row per id: memory peaks at the table plus one copy.
    keep = _newest_row_numbers(table)
    order = pc.sort_indices(table.select([name for name, _ in _SORT_KEYS]).take(keep), sort_keys=_SORT_KEYS)
    table = table.take(keep.take(order))
    replaces = json.dumps([f.name for f in files]).encode()
    table = table.replace_schema_metadata({_REPLACES_KEY: replaces})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = layout.manifest / f"{_COMPACTED_PREFIX}{stamp}-{secrets.token_hex(4)}.parquet"
    write_table_atomic(layout, table, target)
    _delete_replaced(layout, target)
    return table.num_rows


def recover(layout: Layout) -> None:
    """Finish compactions interrupted after their rename and drop our temp files; idempotent."""
    for compacted in _manifest_files(layout):
        if compacted.name.startswith(_COMPACTED_PREFIX):
            _delete_replaced(layout, compacted)
    for leftover in layout.tmp.glob(f"{_TMP_PREFIX}*"):
        leftover.unlink(missing_ok=True)


def open_manifest(dest: Path | str) -> ds.Dataset:
    """The manifest as a dataset with MANIFEST_SCHEMA; empty (not an error) when nothing is mirrored.

    Rows of a compacted file and of the parts it replaced can both be visible during the short
    window of an interrupted compaction; ``ManifestIndex`` dedupes, plain readers may see both.
    """
    files = _manifest_files(Layout(Path(dest)))
    return ds.dataset([str(f) for f in files], schema=MANIFEST_SCHEMA, format="parquet")


class MirroredFile(NamedTuple):
    """What the manifest says is on disk for one id."""

    path: str
    bytes: int
    sha256: str


class ManifestIndex:
    """Which ids are mirrored, for the skip logic; about 150 bytes of Python objects per id.

    Holds a dict id -> row number and the path/bytes/sha256 columns as Arrow arrays, rather than
    a Python tuple per row.  On duplicate ids the newest ``downloaded_at`` wins and ties go to
    the later row, the same rule ``compact`` applies.
    """

    __slots__ = ("_hashes", "_paths", "_rows", "_sizes", "dropped")

    def __init__(self, rows: dict[str, int], paths: pa.Array, sizes: pa.Array, hashes: pa.Array) -> None:
        self._rows = rows
        self._paths = paths
        self._sizes = sizes
        self._hashes = hashes
        self.dropped = 0     # ids forgotten by drop_missing_files (their files were gone)

    @classmethod
    def load(cls, layout: Layout) -> ManifestIndex:
        table = _read_all(_manifest_files(layout), ["id", "path", "bytes", "sha256", "downloaded_at"])
        rows = _newest_rows(table)  # indexes the full columns: no copy, duplicates are few
        return cls(rows, *(table.column(name).combine_chunks() for name in ("path", "bytes", "sha256")))

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, item_id: str) -> MirroredFile | None:
        n = self._rows.get(item_id)
        if n is None:
            return None
        return MirroredFile(self._paths[n].as_py(), self._sizes[n].as_py(), self._hashes[n].as_py())

    def ids(self) -> KeysView[str]:
        return self._rows.keys()

    def drop_missing_files(self, layout: Layout) -> int:
        """Forget ids whose file is no longer on disk, so a sync fetches them again (free: owned)."""
        paths = self._paths.to_pylist()
        gone = [item_id for item_id, n in self._rows.items() if not (layout.dest / paths[n]).is_file()]
        for item_id in gone:
            del self._rows[item_id]
        self.dropped += len(gone)
        return len(gone)


def _manifest_files(layout: Layout) -> list[Path]:
    """Manifest files in tie-break order: compacted files first (older data), then parts by name."""
    return sorted(p for p in layout.manifest.glob("*.parquet") if p.is_file())


def _read_all(files: list[Path], columns: list[str] | None = None) -> pa.Table:
    """All rows, file by file so row order (the tie-break) is exactly the file order."""
    schema = MANIFEST_SCHEMA if columns is None else pa.schema([MANIFEST_SCHEMA.field(c) for c in columns])
    tables = [ds.dataset(str(f), schema=MANIFEST_SCHEMA, format="parquet").to_table(columns=columns)
              for f in files]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _newest_row_numbers(table: pa.Table) -> pa.Array:
    """Row numbers of the newest row of each id, vectorised (no Python object per row).

    Rows are ordered by (id, downloaded_at, file order); the last row of each id's run is kept.
    """
    stamps = pc.fill_null(table.column("downloaded_at"), pa.scalar(0, MANIFEST_SCHEMA.field("downloaded_at").type))
    keys = pa.table({"id": table.column("id"), "t": stamps, "n": pa.array(np.arange(table.num_rows, dtype=np.int64))})
    order = pc.sort_indices(keys, sort_keys=[("id", "ascending"), ("t", "ascending"), ("n", "ascending")])
    ids = table.column("id").take(order).combine_chunks()
    if len(ids) == 0:
        return order
    last_of_run = pc.not_equal(ids[:-1], ids[1:])
    return order.filter(pa.concat_arrays([last_of_run, pa.array([True])]))


def _newest_rows(table: pa.Table) -> dict[str, int]:
    """id -> row number of its newest row (null ``downloaded_at`` counts as oldest; ties go to later rows)."""
    stamps = pc.fill_null(table.column("downloaded_at"), pa.scalar(0, MANIFEST_SCHEMA.field("downloaded_at").type))
    keys = pa.table({"t": stamps, "n": np.arange(table.num_rows, dtype=np.int64)})
    order = pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("n", "ascending")])
    # Walking oldest to newest, later assignments overwrite earlier ones: the newest row wins.
    return dict(zip(table.column("id").take(order).to_pylist(), order.to_pylist(), strict=True))


def _next_seq(layout: Layout, run_id: str) -> int:
    """First part number for this run that names no existing file and no file a compaction replaced."""
    used: set[str] = set()
    for f in _manifest_files(layout):
        used.add(f.name)
        if f.name.startswith(_COMPACTED_PREFIX):
            used.update(_replaced_names(f))
    pattern = re.compile(rf"part-{re.escape(run_id)}-(\d+)\.parquet")
    seqs = [int(m.group(1)) for name in used if (m := pattern.fullmatch(name))]
    return max(seqs, default=0) + 1


def _replaced_names(compacted: Path) -> list[str]:
    try:
        kv = pq.read_metadata(compacted).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise DestinationError(
            f"manifest file {compacted} is unreadable ({exc}): move it out of the manifest folder and run again"
        ) from exc
    names = json.loads(kv.get(_REPLACES_KEY, b"[]"))
    # Only bare names of other files in manifest/: never trust stored text to be a safe path.
    return [n for n in names if isinstance(n, str) and n == Path(n).name and n != compacted.name]


def _delete_replaced(layout: Layout, compacted: Path) -> None:
    deleted = False
    for name in _replaced_names(compacted):
        try:
            (layout.manifest / name).unlink()
            deleted = True
        except FileNotFoundError:
            pass
    if deleted:
        _fsync_dir(layout.manifest)


def write_table_atomic(layout: Layout, table: pa.Table, target: Path, *, tmp_prefix: str = _TMP_PREFIX) -> None:
    """Write via ``.state/tmp`` + fsync + rename, so ``target`` is complete or absent, never partial.

    Every Parquet file margen-mirror writes into DEST (manifest parts, compactions, detector scores)
    goes through here; ``tmp_prefix`` tells whose leftovers a recovery may delete.
    """
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=layout.tmp, prefix=tmp_prefix, suffix=".parquet")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd", row_group_size=_ROW_GROUP_ROWS)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise destination_error(exc, target) from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename or delete durable; some file systems cannot fsync a directory, which is fine."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
