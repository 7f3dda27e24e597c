"""The on-disk store: where files go in DEST, the Parquet manifest, the destination lock, and the one
atomic write (``atomic_file``) every durable file goes through."""

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
