"""The /items paging modes, exactly as documented.

* offset (default): ``limit``/``offset`` over rows, exact ``total``, ``has_more``, no cursor.
* cursor (the ``cursor`` param is present; an EMPTY value starts at the beginning): keyset
  over created_at (= index), ``total`` null, ``next_cursor`` set while ``has_more`` and null
  on the last page.  Cursors are HMAC-signed and bound to the filter set and tier; items
  appended while paging appear at the end.  ``offset`` is ignored in this mode (the official
  SDK sends ``offset=0`` on every call, cursor ones included).
* lineage (``lineage=true``): filters pick lineages, whole lineages are returned,
  ``limit``/``offset`` count lineages, ``total`` null, ``total_lineages`` and ``lineages``.
* distinct_identities (``distinct_identities=true``): one representative (the earliest
  matching row) per identity; rows whose identity is unresolved (null) have no identity to
  represent and are left out.  ``total`` and ``total_identities`` count identities.
* ``exclude_owned=true`` works in offset mode only; combining it with another mode is 400
  ``invalid_param`` naming ``exclude_owned``.  Other mode combinations are rejected the same
  way, naming the second mode's parameter.
"""

from __future__ import annotations

import numpy as np
from multidict import MultiMapping

from mirror.emulator.corpus import Corpus
from mirror.emulator.errors import ApiError, invalid_param
from mirror.emulator.filters import parse_selection, selection_mask
from mirror.emulator.ledger import Ledger
from mirror.emulator.signing import Signer

MAX_LIMIT, DEFAULT_LIMIT = 500, 100


def _int_param(query: MultiMapping[str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(name, f"{name} must be an integer") from None
    if value < minimum:
        raise invalid_param(name, f"{name} must be >= {minimum}")
    return value


def _flag(query: MultiMapping[str], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    if raw != "true":
        raise invalid_param(name, f"{name} only accepts 'true' (omit it to turn it off)", ["true"])
    return True


def parse_include(query: MultiMapping[str]) -> bool:
    """True when ``include=metadata`` was asked for; any other extra is unknown."""
    raw = query.get("include")
    if raw is None:
        return False
    parts = raw.split(",")
    if any(p != "metadata" for p in parts):
        raise invalid_param("include", "unknown include value", ["metadata"])
    return True


def list_items(corpus: Corpus, query: MultiMapping[str], *, tier: str, account: str,
               ledger: Ledger, signer: Signer) -> dict:
    sel = parse_selection(corpus, query)
    requested = _int_param(query, "limit", DEFAULT_LIMIT, 1)
    limit, clamped = min(requested, MAX_LIMIT), requested > MAX_LIMIT
    offset = _int_param(query, "offset", 0, 0)
    lineage, distinct = _flag(query, "lineage"), _flag(query, "distinct_identities")
    exclude, metadata = _flag(query, "exclude_owned"), parse_include(query)
    cursor = query.get("cursor")
    if exclude and (cursor is not None or lineage or distinct):
        raise invalid_param("exclude_owned", "exclude_owned works in offset mode only "
                                             "(not with cursor, lineage or distinct_identities)")
    if cursor is not None and (lineage or distinct):
        raise invalid_param("lineage" if lineage else "distinct_identities",
                            "cursor paging cannot be combined with lineage or distinct_identities")
    if lineage and distinct:
        raise invalid_param("distinct_identities", "lineage and distinct_identities are separate modes")

    mask = selection_mask(corpus, sel, tier)
    body: dict = {"object": "list", "data": [], "has_more": False, "total": None,
                  "benchmark": corpus.bench.id, "mode": "offset", "applied_filters": sel.applied,
                  "limit": limit, "offset": offset, "limit_clamped": clamped}
    rows: np.ndarray
    if cursor is not None:
        body["mode"] = "cursor"
        del body["offset"]
        binding = sel.binding(tier)
        after = -1 if cursor == "" else signer.read_cursor(cursor, binding)
        if after is None:
            raise ApiError("invalid_cursor", "cursor is malformed, expired, or from a different query")
        start = after + 1
        found = np.flatnonzero(mask[start:])[: limit + 1] + start
        rows, body["has_more"] = found[:limit], len(found) > limit
        body["next_cursor"] = signer.make_cursor(int(rows[-1]), binding) if body["has_more"] else None
    elif lineage:
        body["mode"] = "lineage"
        matched = np.unique(corpus.cols["lineage"][mask])
        page = matched[offset:offset + limit]
        visible = corpus.cols["sample"] if tier == "test" else True
        rows = np.flatnonzero(np.isin(corpus.cols["lineage"], page) & visible)
        body.update(has_more=offset + len(page) < len(matched), total_lineages=len(matched),
                    lineages=len(page))
    elif distinct:
        body["mode"] = "distinct_identities"
        idx = np.flatnonzero(mask & (corpus.cols["identity"] >= 0))
        _, first = np.unique(corpus.cols["identity"][idx], return_index=True)
        reps = np.sort(idx[first])
        rows = reps[offset:offset + limit]
        body.update(total=len(reps), total_identities=len(reps),
                    has_more=offset + len(rows) < len(reps))
    else:
        if exclude:
            owned = np.zeros(corpus.n, dtype=bool)
            owned_idx = np.array(ledger.owned_indices(account, tier, corpus.bench.id), dtype=np.int64)
            owned[owned_idx[owned_idx < corpus.n]] = True
            total_matching, owned_count = int(mask.sum()), int((mask & owned).sum())
            mask = mask & ~owned
            remaining = total_matching - owned_count
            body.update(exclude_owned=True, remaining=remaining, owned=owned_count,
                        total_matching=total_matching, subset_exhausted=remaining == 0 and total_matching > 0)
            if body["subset_exhausted"]:
                body["message"] = ("You already own every item matching this selection; nothing new to "
                                   "pull. Broaden the filter to get more.")
        matching = np.flatnonzero(mask)
        rows = matching[offset:offset + limit]
        body.update(total=len(matching), has_more=offset + len(rows) < len(matching))
    body["data"] = [corpus.item_json(int(i), metadata) for i in rows]
    return body
