"""What to mirror and where: ``Selection`` + ``SyncJob``, from flags, ``KEY=V1,V2`` words or a TOML job file.

A job file declares one sync so that cron and humans run the same thing::

    benchmark = "synthetic-face-v1"
    dest = "~/margen/dark-brown-fakes"
    max_credits = 5000          # optional: never spend more than this in one run
    rate_limit = 60             # optional: the key's requests per minute
    concurrency = 32            # optional: items in flight (each reserved, then fetched)
    include_metadata = true     # optional
    [filters]
    kind = "fake"
    skin_tone = ["dark", "brown"]

Filter keys are not checked here: ``/catalog`` is the source of truth and is asked before a
credit is spent, so a future benchmark's dimensions work without a code change.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.config import Limits
from mirror.errors import UsageError
from mirror.store.destination import check_sync_dest, sync_dest

__all__ = ["Selection", "SyncJob", "parse_filter_words", "load_job_file"]

_RESERVED = {"benchmark", "limit", "offset", "cursor", "lineage", "exclude_owned", "distinct_identities", "include"}
_JOB_KEYS = {"benchmark", "dest", "filters", "max_credits", "rate_limit", "concurrency", "include_metadata",
             "lineage", "distinct_identities"}


@dataclass(frozen=True)
class Selection:
    """A benchmark plus filters (OR within a dimension, AND across) and the paging flavour."""

    benchmark: str | None = None
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lineage: bool = False                 # whole lineages of the matching items
    distinct_identities: bool = False     # one representative per person
    include_metadata: bool = False

    def __post_init__(self) -> None:
        if self.lineage and self.distinct_identities:
            raise UsageError("--lineage and --distinct-identities cannot be combined; pick one")
        clean: dict[str, tuple[str, ...]] = {}
        for key, values in self.filters.items():
            if key in _RESERVED:
                raise UsageError(f"{key!r} is not a filter; use the matching flag instead")
            vals = (values,) if isinstance(values, str) else tuple(str(v) for v in values)
            clean[str(key)] = vals
        object.__setattr__(self, "filters", dict(sorted(clean.items())))

    def query(self) -> dict[str, str]:
        """The ``/items`` query string this selection stands for (without paging parameters)."""
        params = {k: ",".join(v) for k, v in self.filters.items()}
        if self.benchmark:
            params["benchmark"] = self.benchmark
        if self.include_metadata:
            params["include"] = "metadata"
        return params

    @property
    def key(self) -> str:
        """A stable name for this selection, used to remember where its last complete walk ended."""
        blob = json.dumps([self.benchmark, self.filters, self.lineage, self.distinct_identities],
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def describe(self) -> str:
        parts = [self.benchmark or "(default benchmark)"]
        parts += [f"{k}={','.join(v)}" for k, v in self.filters.items()]
        if self.lineage:
            parts.append("--lineage")
        if self.distinct_identities:
            parts.append("--distinct-identities")
        return " ".join(parts)


@dataclass(frozen=True)
class SyncJob:
    """Everything one sync needs besides the key: selection, destination, budget and pace."""

    selection: Selection
    dest: Path
    max_credits: int | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.max_credits is not None and self.max_credits < 0:
            raise UsageError("--max-credits must be zero or more")
        check_sync_dest(self.dest)           # a URL is not a relative folder named "s3:"


def parse_filter_words(words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``["kind=fake", "skin_tone=dark,brown"]`` -> ``{"kind": ("fake",), "skin_tone": ("dark", "brown")}``."""
    out: dict[str, list[str]] = {}
    for word in words:
        key, sep, value = word.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"cannot read filter {word!r}: write KEY=VALUE or KEY=V1,V2 (e.g. kind=fake)")
        values = [v.strip() for v in value.split(",")]
        if not all(values):
            raise UsageError(f"filter {word!r} has an empty value: write KEY=V1,V2")
        merged = out.setdefault(key, [])
        merged.extend(v for v in values if v not in merged)
    return {k: tuple(v) for k, v in out.items()}


def load_job_file(path: str | Path) -> SyncJob:
    """Read a TOML job; every mistake is a one-line UsageError naming the file and the key."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read job file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"job file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - _JOB_KEYS)
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in job file {path}; allowed: {', '.join(sorted(_JOB_KEYS))}")
    if not isinstance(doc.get("dest"), str) or not doc["dest"].strip():
        raise UsageError(f"job file {path} needs dest = \"FOLDER\"")
    filters = doc.get("filters", {})
    if not isinstance(filters, dict) or not all(_is_values(v) for v in filters.values()):
        raise UsageError(f"[filters] in {path} must map each key to a string or a list of strings")
    try:
        selection = Selection(benchmark=_opt(doc, "benchmark", str, path), filters=filters,
                              lineage=bool(_opt(doc, "lineage", bool, path)),
                              distinct_identities=bool(_opt(doc, "distinct_identities", bool, path)),
                              include_metadata=bool(_opt(doc, "include_metadata", bool, path)))
        rate, concurrency = _opt(doc, "rate_limit", (int, float), path), _opt(doc, "concurrency", int, path)
        for key, value in (("rate_limit", rate), ("concurrency", concurrency)):
            if value is not None and not (math.isfinite(value) and value > 0):  # 0 is not "the default"
                raise UsageError(f"{key} must be more than 0, not {value}; leave it out for its default")
        limits = Limits(rate_limit=Limits.rate_limit if rate is None else float(rate),
                        concurrency=Limits.concurrency if concurrency is None else concurrency)
        return SyncJob(selection=selection, dest=sync_dest(doc["dest"]),
                       max_credits=_opt(doc, "max_credits", int, path), limits=limits)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _is_values(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _opt(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{key} in job file {path} has the wrong type ({type(value).__name__})")
    return value
