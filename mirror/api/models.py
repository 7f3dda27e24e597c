"""Typed views of the API's JSON objects, tolerant of fields the server adds later.

Items stay plain dicts on purpose: they are the hot path (thousands per second), the server may
add fields at any time, and the manifest keeps every field it sends. The smaller, rarer objects
(benchmarks, catalogs, usage, downloads) get frozen dataclasses so callers read typed attributes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mirror.errors import UsageError

__all__ = ["Item", "Benchmark", "Dimension", "Catalog", "Usage", "Download", "Page", "Release", "ReleasePart",
           "usable_id"]

Item = dict[str, Any]
"""An ``attack_data_item`` object as the server sent it."""


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Benchmark:
    id: str
    product: str
    title: str
    description: str | None = None
    dimensions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Benchmark:
        dims = obj.get("dimensions") or ()
        return cls(id=str(obj["id"]), product=str(obj.get("product", "")), title=str(obj.get("title", "")),
                   description=_str_or_none(obj.get("description")),
                   dimensions=tuple(d for d in dims if isinstance(d, str)))


@dataclass(frozen=True)
class Dimension:
    """One queryable dimension: a fixed value set, or a lineage key that takes any id."""

    key: str
    label: str
    source: str = "column"          # "column" or "attribute"
    alias: str | None = None
    values: tuple[str, ...] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    lineage: bool = False

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Dimension:
        raw = obj.get("values")
        values = None if raw is None else tuple(str(v.get("value")) for v in raw if isinstance(v, dict))
        labels = {str(v.get("value")): str(v.get("label", v.get("value"))) for v in raw or () if isinstance(v, dict)}
        return cls(key=str(obj["key"]), label=str(obj.get("label", obj["key"])),
                   source=str(obj.get("source", "column")), alias=_str_or_none(obj.get("alias")),
                   values=values, labels=labels, lineage=bool(obj.get("lineage", False)))


@dataclass(frozen=True)
class Catalog:
    """``/catalog``: the runtime source of truth for what a benchmark can be filtered by."""

    benchmark: Benchmark
    tier: str
    dimensions: tuple[Dimension, ...]
    total: int | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Catalog:
        return cls(benchmark=Benchmark.from_json(obj["benchmark"]), tier=str(obj.get("tier", "")),
                   dimensions=tuple(Dimension.from_json(d) for d in obj.get("dimensions") or ()),
                   total=obj.get("total") if isinstance(obj.get("total"), int) else None)

    def dimension(self, key: str) -> Dimension | None:
        for dim in self.dimensions:
            if key == dim.key or key == dim.alias:
                return dim
        return None

    def validate(self, filters: dict[str, list[str]]) -> dict[str, list[str]]:
        """Check a selection before anything is spent; return it keyed by canonical dimension keys.

        Raises UsageError naming the allowed keys or values, so a typo costs nothing.
        """
        canonical: dict[str, list[str]] = {}
        for key, values in filters.items():
            dim = self.dimension(key)
            if dim is None:
                allowed = ", ".join(d.key for d in self.dimensions)
                raise UsageError(f"unknown filter {key!r} for benchmark {self.benchmark.id}; "
                                 f"allowed filters: {allowed}")
            if not values or any(not v for v in values):
                raise UsageError(f"filter {key}= needs at least one value, e.g. {key}=V1,V2")
            if dim.values is not None:
                bad = [v for v in values if v not in dim.values]
                if bad:
                    raise UsageError(f"unknown value {bad[0]!r} for {dim.key}; allowed: {', '.join(dim.values)}")
            merged = canonical.setdefault(dim.key, [])
            merged.extend(v for v in values if v not in merged)
        return canonical


@dataclass(frozen=True)
class Usage:
    tier: str
    balance: int | None
    owner: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Usage:
        balance = obj.get("balance")
        return cls(tier=str(obj.get("tier", "")), balance=balance if isinstance(balance, int) else None,
                   owner=_str_or_none(obj.get("owner")))


@dataclass(frozen=True)
class Download:
    """A signed URL and what the reservation cost; ``expires_at`` is on the monotonic clock."""

    url: str
    expires_at: float
    ttl: float
    item: Item
    charged: bool
    already_owned: bool
    balance: int | None

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, received_at: float | None = None) -> Download:
        url = obj.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("download response has no http(s) url")
        item = obj.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("download response has no item object")
        expires_in = obj.get("expires_in")
        ttl = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 300.0
        start = time.monotonic() if received_at is None else received_at
        balance = obj.get("balance")
        return cls(url=url, expires_at=start + ttl, ttl=ttl, item=item, charged=obj.get("charged") is True,
                   already_owned=obj.get("already_owned") is True,
                   balance=balance if isinstance(balance, int) else None)


@dataclass(frozen=True)
class Page:
    """One ``/items`` page; ``raw`` keeps the echo fields (mode, remaining, total_lineages…)."""

    items: list[Item]
    has_more: bool
    next_cursor: str | None
    total: int | None
    raw: dict[str, Any]
    malformed: int = 0        # entries without a usable id (see usable_id): skipped, and reported by the caller

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Page:
        data = obj.get("data")
        if not isinstance(data, list):
            raise ValueError("items response has no data list")
        items = [it for it in data if isinstance(it, dict) and usable_id(it.get("id"))]
        cursor = obj.get("next_cursor")
        total = obj.get("total")
        return cls(items=items, malformed=len(data) - len(items), has_more=obj.get("has_more") is True,
                   next_cursor=cursor if isinstance(cursor, str) and cursor else None,
                   total=total if isinstance(total, int) else None, raw=obj)


def usable_id(value: Any) -> bool:
    """A string that is valid Unicode: JSON may carry a lone surrogate (``"\\ud800"``), which no
    file name, manifest row or request path can hold. API ids are ASCII; the check costs ~50 ns."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- bulk releases ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReleasePart:
    """One Parquet part of a release's shard set; ``key`` names it across renewals of its URL."""

    set: str
    part: int
    url: str
    rows: int | None = None       # as announced; checked against the part's footer
    bytes: int | None = None      # as announced, when the server says

    @property
    def key(self) -> str:
        return f"{self.set}/{self.part}"


@dataclass(frozen=True)
class Release:
    """``/release``: the shard sets a pull delivers (and bought), or, with no shards, what exists.

    ``expires_at`` (monotonic clock) is when the part URLs expire. Set names and URLs are server
    text: they name parts in the journal and are fetched, never used as file names."""

    benchmark: str
    name: str | None
    available: tuple[str, ...]
    coverage: str
    credits_required: int
    item_count: int | None
    balance: int | None
    sets: tuple[str, ...]
    parts: tuple[ReleasePart, ...]
    available_filter_values: dict[str, list[str]] | None
    expires_at: float
    ttl: float

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, received_at: float | None = None) -> Release:
        credits = obj.get("credits_required", 0)
        if not isinstance(credits, int) or isinstance(credits, bool) or credits < 0:
            raise ValueError("release response has no credits_required count")
        shards = obj.get("shards") or []
        if not isinstance(shards, list):
            raise ValueError("release response's shards is not a list")
        sets: list[str] = []
        parts: list[ReleasePart] = []
        seen: set[str] = set()
        for shard in shards:
            if not isinstance(shard, dict) or not isinstance(shard.get("set"), str) or \
                    not isinstance(shard.get("parts"), list):
                raise ValueError("release shard without a set name and a parts list")
            sets.append(shard["set"])
            for part in shard["parts"]:
                url = part.get("url") if isinstance(part, dict) else None
                number = part.get("part") if isinstance(part, dict) else None
                if not isinstance(url, str) or not url.startswith(("http://", "https://")) or \
                        not isinstance(number, int) or isinstance(number, bool):
                    raise ValueError("release part without a part number and an http(s) url")
                found = ReleasePart(shard["set"], number, url, _count(part.get("rows")), _count(part.get("bytes")))
                if found.key in seen:
                    raise ValueError(f"release lists part {found.key!r} twice")
                seen.add(found.key)
                parts.append(found)
        available = obj.get("available_releases")
        values = obj.get("available_filter_values")
        expires_in = obj.get("expires_in")
        ttl = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 300.0
        start = time.monotonic() if received_at is None else received_at
        return cls(benchmark=str(obj.get("benchmark", "")), name=_str_or_none(obj.get("release")),
                   available=tuple(a for a in available or () if isinstance(a, str)) if isinstance(available, list)
                   else (), coverage=str(obj.get("coverage", "")), credits_required=credits,
                   item_count=_count(obj.get("item_count")), balance=_count(obj.get("balance")),
                   sets=tuple(sets), parts=tuple(parts),
                   available_filter_values={str(k): [str(v) for v in vs] for k, vs in values.items()
                                            if isinstance(vs, list)} if isinstance(values, dict) else None,
                   expires_at=start + ttl, ttl=ttl)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
