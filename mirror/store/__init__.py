"""The on-disk store: everything a destination holds and how it is written.

Where files go in DEST (``layout``), the Parquet manifest (``rows``, ``manifest``, ``scan``,
``index``, ``compaction``), the destination lock, the one atomic write (``atomic``) every durable
file goes through, the one append-only record log (``records``) with its two record types
(``reservations``, ``submissions``), each selection's last complete walk (``selections``) and the
detectors' verdicts (``verdicts``). The state modules import from here, never the reverse, so
``import mirror.store`` stays cheap."""

from mirror.store.atomic import atomic_file, write_atomic
from mirror.store.compaction import compact
from mirror.store.index import ManifestIndex, MirroredFile
from mirror.store.layout import (
    Layout,
    destination_error,
    image_relpath,
    partial_image_path,
    resolve_inside,
    safe_component,
)
from mirror.store.lock import DestLock
from mirror.store.manifest import ManifestWriter, open_manifest, recover, write_table_atomic
from mirror.store.rows import MANIFEST_SCHEMA, FileRow, row_from_item

__all__ = [
    "Layout", "safe_component", "image_relpath", "partial_image_path", "resolve_inside", "destination_error",
    "DestLock", "atomic_file", "write_atomic",
    "MANIFEST_SCHEMA", "FileRow", "ManifestIndex", "ManifestWriter", "MirroredFile", "compact", "open_manifest",
    "recover", "row_from_item", "write_table_atomic",
]
