"""Dimension filters of /items: parsing (strict where the docs are strict) and row masks.

Rules, as documented: a comma-separated value ORs within a dimension, separate parameters
AND across dimensions, an unknown value of a fixed dimension is 400 ``invalid_param`` with
``param`` and ``allowed``.  Lineage keys (``base_id``, ``source_real_id``) accept any string;
an id that names nothing simply matches nothing.  Parameter NAMES the emulator does not know
are ignored, as an HTTP API ignores unknown query parameters (the docs only make unknown
VALUES an error).  Passing both ``perturbation`` and its alias ``condition`` is rejected:
the two would have to be combined somehow and the docs do not say how.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
from multidict import MultiMapping

from mirror.emulator.corpus import Corpus
from mirror.emulator.errors import invalid_param

_NO_MATCH = -2  # a lineage id that decodes to nothing


@dataclass(frozen=True)
class Selection:
    """The understood filters: ``applied`` is the echo, ``codes`` drive the mask."""

    benchmark: str
    applied: dict[str, list[str] | None]
    codes: dict[str, tuple[int, ...]]

    def binding(self, tier: str) -> str:
        """A digest of the filter set a cursor is bound to."""
        canon = json.dumps([self.benchmark, tier, sorted(self.applied.items(), key=lambda kv: kv[0])],
                           separators=(",", ":"), default=list)
        return hashlib.sha256(canon.encode()).hexdigest()[:24]


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise invalid_param(name, f"{name} given more than once; pass one comma-separated value")
    return values[0] if values else None


def parse_selection(corpus: Corpus, query: MultiMapping[str]) -> Selection:
    bench = corpus.bench
    applied: dict[str, list[str] | None] = {}
    codes: dict[str, tuple[int, ...]] = {}
    for dim in bench.dimensions:
        raw = _single(query, dim.key)
        alias_raw = _single(query, dim.alias) if dim.alias else None
        if raw is not None and alias_raw is not None:
            raise invalid_param(dim.alias or dim.key,
                                f"pass either {dim.key} or its alias {dim.alias}, not both")
        param = dim.key if raw is not None else dim.alias
        raw = raw if raw is not None else alias_raw
        if raw is None:
            applied[dim.key] = None
            continue
        values = raw.split(",")
        if dim.fixed:
            bad = [v for v in values if v not in dim.values]
            if bad:
                raise invalid_param(param or dim.key, f"unknown {param} value {bad[0]!r}", list(dim.values))
        elif any(v == "" for v in values):
            raise invalid_param(param or dim.key, f"empty {param} value")
        unique = list(dict.fromkeys(values))
        applied[dim.key] = unique
        if dim.fixed:
            codes[dim.key] = tuple(dim.values.index(v) for v in unique)
        else:
            decode = corpus.decode_base if dim.key == "base_id" else corpus.decode_lineage
            codes[dim.key] = tuple(_NO_MATCH if (c := decode(v)) is None else c for v in unique)
    return Selection(bench.id, applied, codes)


def selection_mask(corpus: Corpus, sel: Selection, tier: str) -> np.ndarray:
    """Rows visible to ``tier`` that match every filter."""
    cols = corpus.cols
    mask = cols["sample"].copy() if tier == "test" else np.ones(corpus.n, dtype=bool)
    for key, codes in sel.codes.items():
        dim = corpus.bench.dimension(key)
        if dim is None:
            continue
        mask &= np.isin(cols[dim.column], np.array(codes, dtype=np.int64))
    return mask


def visible_mask(corpus: Corpus, tier: str) -> np.ndarray:
    return corpus.cols["sample"].copy() if tier == "test" else np.ones(corpus.n, dtype=bool)
