"""What one manifest row is: the schema, and how an API item plus its file becomes a row.

A sync records each placed file as a ``FileRow`` (a tuple, no conversion on the event loop) and
the writer turns a whole part's worth into Arrow at once with ``table_from_files``: one list per
column instead of a dict per row (a third of the cost: docs/design.md). ``row_from_item`` is the
same conversion for one item, so there is one set of rules:

* item fields listed in the schema are copied as text; a number or object the server sent in
  one of them is kept as its JSON text;
* ``attributes`` is JSON object text (``{}`` when absent), ``metadata`` JSON when present, and
  every item field the schema does not know goes to ``extra``, so nothing the server sent is lost;
* a lone surrogate (possible in JSON) in any text becomes U+FFFD, as any UTF-8 decoder shows bad
  text, so the image the account paid for still gets its row; in the id it is refused instead
  (``ValueError``, when the row is recorded), since the id is the row's key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa

__all__ = ["MANIFEST_SCHEMA", "FileRow", "row_from_item", "table_from_files"]

# Item fields copied verbatim (as text) from the API's item object.
ITEM_COLUMNS = ("id", "benchmark", "kind", "skin_tone", "gender", "generator", "perturbation", "layer",
                "base_id", "source_real_id", "identity_id", "scene")

MANIFEST_SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False)]
    + [pa.field(name, pa.string()) for name in ITEM_COLUMNS[1:]]
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
_FILE_COLUMNS = ("path", "bytes", "sha256", "width", "height", "charged", "downloaded_at")
_KNOWN_ITEM_KEYS = frozenset(ITEM_COLUMNS) | {"attributes", "metadata", "object"}

# One encoder for every row: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)
_SURROGATE = re.compile("[\ud800-\udfff]")


class FileRow(NamedTuple):
    """One placed file and the item it is, as recorded for the manifest (converted in bulk later)."""

    item: Mapping[str, Any]
    path: str
    bytes: int
    sha256: str
    width: int
    height: int
    charged: bool
    downloaded_at: datetime


def checked(row: FileRow) -> FileRow:
    """``row``, if it can become a manifest row: a string id that is valid Unicode, an aware time.

    Called as each file is recorded, so a bad item fails alone rather than its whole part."""
    item_id = row.item.get("id")
    if not isinstance(item_id, str):
        raise ValueError(f"API item has no string id: {item_id!r}")
    if not item_id.isascii():
        item_id.encode("utf-8")         # UnicodeEncodeError (a ValueError) for a lone surrogate
    if row.downloaded_at.tzinfo is None:
        raise ValueError("downloaded_at must be timezone-aware")
    return row


def row_from_item(item: Mapping[str, Any], *, path: str, bytes: int, sha256: str, width: int, height: int,
                  charged: bool, downloaded_at: datetime) -> dict[str, Any]:
    """One item plus what we measured about its file, as the manifest row (a dict by column).

    ``downloaded_at`` must be timezone-aware; it is stored in UTC at millisecond precision, which
    is what compaction compares. Raises ValueError for an item without a string id, or with an
    id that is not valid Unicode: such a row could never be written.
    """
    row = checked(FileRow(item, path, bytes, sha256, width, height, charged, downloaded_at))
    return table_from_files([row]).to_pylist()[0]


def table_from_files(rows: Sequence[FileRow]) -> pa.Table:
    """The manifest rows of ``rows`` (each already ``checked``), as one table with MANIFEST_SCHEMA."""
    items = [row.item for row in rows]
    arrays = [_text_array([item.get(name) for item in items]) for name in ITEM_COLUMNS]
    arrays.append(_text_array([_ENCODER.encode({} if (a := item.get("attributes")) is None else a)
                               for item in items]))
    arrays.append(_text_array([None if (m := item.get("metadata")) is None else _ENCODER.encode(m)
                               for item in items]))
    arrays.append(_text_array([None if item.keys() <= _KNOWN_ITEM_KEYS else _extra(item) for item in items]))
    for column, name in enumerate(_FILE_COLUMNS, start=1):
        values = [row[column] for row in rows]
        kind = MANIFEST_SCHEMA.field(name).type
        arrays.append(_text_array(values) if kind == pa.string() else pa.array(values, kind))
    return pa.Table.from_arrays(arrays, schema=MANIFEST_SCHEMA)


def _extra(item: Mapping[str, Any]) -> str:
    """JSON of the fields of ``item`` the schema does not know (called only when there are some)."""
    return _ENCODER.encode({key: value for key, value in item.items() if key not in _KNOWN_ITEM_KEYS})


def _text_array(values: list[Any]) -> pa.Array:
    """A string column; the slow path (per value) only for a column holding something unusual."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        return pa.array([_text(value) for value in values], pa.string())


def _text(value: Any) -> str | None:
    """A number or object as its JSON text; a lone surrogate as U+FFFD."""
    if value is None:
        return None
    text = value if isinstance(value, str) else _ENCODER.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _SURROGATE.sub("\ufffd", text)
    return text
