"""Answering "how much of this selection is already here?" from the local manifest alone.

Used by ``plan`` so the number needs no API call. Column dimensions compare against manifest
columns (``condition`` is the API's alias of ``perturbation``); attribute-backed dimensions of
other benchmarks are looked up in each row's ``attributes`` JSON.
"""

from __future__ import annotations

import json

import pyarrow.compute as pc

from mirror.jobs import Selection
from mirror.store import Layout, open_manifest

__all__ = ["count_local"]

_ALIASES = {"condition": "perturbation"}


def count_local(layout: Layout | str, selection: Selection) -> int:
    """Rows of DEST's manifest that ``selection`` matches; ``layout`` may be an ``s3://`` URL."""
    import pyarrow.dataset as ds  # plan only: a sync never pays its import (~15 MB of RSS)

    dataset = open_manifest(layout if isinstance(layout, str) else layout.dest)
    names = set(dataset.schema.names)
    expr = ds.field("benchmark") == selection.benchmark
    attr_filters: dict[str, tuple[str, ...]] = {}
    for key, values in selection.filters.items():
        column = _ALIASES.get(key, key)
        if column in names:
            expr = expr & pc.is_in(ds.field(column), value_set=pc.cast(list(values), "string"))
        else:
            attr_filters[key] = values
    if not attr_filters:
        return dataset.count_rows(filter=expr)
    table = dataset.to_table(columns=["attributes"], filter=expr)
    count = 0
    for text in table.column("attributes").to_pylist():
        attrs = json.loads(text or "{}")
        if all(str(attrs.get(k)) in v for k, v in attr_filters.items()):
            count += 1
    return count
