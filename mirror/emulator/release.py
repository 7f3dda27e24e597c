"""``GET /release``: a benchmark as prebuilt Parquet shards, bought whole.

Not in the OpenAPI spec; the contract comes from the SDK's ``get_release``/``pull_release``
docstrings.  A shard set is every item sharing (source, skin_tone, gender, condition), where
source is ``real`` or the generator, so each of the documented filters (generator, kind,
condition, skin_tone, gender, layer) can only remove whole sets, never split one.
``generator=`` keeps the real sets too unless ``kind=fake`` is given.  Unknown filter values
are not an error here: they match nothing, and ``available_filter_values`` says what would.

Releases are snapshots: ``<benchmark>.0`` is the corpus as started, and every admin append
adds ``<benchmark>.<n>`` covering everything so far; the default is the newest.  A live pull
debits one credit per image not yet owned (all or nothing, 402 with ``required`` otherwise)
and records ownership, so a re-pull is free; the ledger keeps every pull (``release_pulls``).
Test keys get ``coverage: "partial"`` (``"empty"`` for a release without a sample item) and no
shards: the free sample is whole lineages, which never line up with whole shard sets. Coverage
is what the key is entitled to, the same whatever the filters keep.

Faults: ``api_500`` and the ``release_500_*`` pair fail a pull before its purchase or after it
(bought, the answer lost); a pull that keeps no set takes ``api_500`` only. Part fetches take
``part_500``/``part_drop``/``part_truncate`` and the storage faults; part URLs expire after
``url_ttl`` like image URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

import numpy as np
from aiohttp import web

from mirror.emulator.corpus import Corpus
from mirror.emulator.errors import ApiError, invalid_param
from mirror.emulator.images import GENDERS, SKIN_TONES
from mirror.emulator.routes import Ctx, json_response, resolve_benchmark
from mirror.emulator.state import EmulatorState

PART_ROWS = 256
FILTER_PARAMS = ("generator", "kind", "condition", "skin_tone", "gender", "layer")
PARQUET_COLUMNS = ("id", "benchmark", "kind", "skin_tone", "gender", "generator", "perturbation", "layer",
                   "base_id", "source_real_id", "identity_id", "scene")


def release_names(corpus: Corpus) -> list[str]:
    return [f"{corpus.bench.id}.{n}" for n in range(len(corpus.release_sizes))]


def _set_labels(corpus: Corpus, index: int) -> dict[str, str]:
    c, b = corpus.cols, corpus.bench
    gen, variant = int(c["gen"][index]), int(c["variant"][index])
    pert, recropped = b.variants[variant]
    return {"source": "real" if gen < 0 else b.generators[gen], "kind": "real" if gen < 0 else "fake",
            "skin_tone": SKIN_TONES[c["skin"][index]], "gender": GENDERS[c["gender"][index]],
            "condition": pert, "layer": b.variant_layers[variant], "recropped": str(recropped)}


def shard_sets(corpus: Corpus, size: int) -> dict[str, np.ndarray]:
    """Set name -> item indices (creation order) for the first ``size`` items."""
    c, nv = corpus.cols, len(corpus.bench.variants)
    key = (((c["gen"][:size].astype(np.int64) + 1) * 6 + c["skin"][:size]) * 2 + c["gender"][:size]) * nv
    key = key + c["variant"][:size]
    out: dict[str, np.ndarray] = {}
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")  # grouped by set, creation order inside each
    for rows in np.split(order, np.cumsum(counts)[:-1]):
        labels = _set_labels(corpus, int(rows[0]))
        suffix = "-recropped" if labels["recropped"] == "True" else ""
        out[f"{labels['source']}__{labels['skin_tone']}__{labels['gender']}__{labels['condition']}{suffix}"] = rows
    return out


def _parse_filters(request: web.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in FILTER_PARAMS:
        raw = request.query.get(name) or (request.query.get("perturbation") if name == "condition" else None)
        if raw:
            out[name] = raw.split(",")
    return out


def _keep(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
    kinds = filters.get("kind")
    if kinds is not None and labels["kind"] not in kinds:
        return False
    if "generator" in filters and labels["kind"] == "fake" and labels["source"] not in filters["generator"]:
        return False
    return all(labels[name] in filters[name] for name in ("condition", "skin_tone", "gender", "layer")
               if name in filters)


async def release_handler(request: web.Request, ctx: Ctx) -> web.Response:
    state, key = ctx.state, ctx.key
    corpus = resolve_benchmark(ctx, request)
    names = release_names(corpus)
    release = request.query.get("release") or names[-1]
    if release not in names:
        raise invalid_param("release", f"unknown release {release!r}", names)
    size = corpus.release_sizes[names.index(release)]
    filters = _parse_filters(request)
    sets = shard_sets(corpus, size)
    labels = {name: _set_labels(corpus, int(rows[0])) for name, rows in sets.items()}
    kept = {name: rows for name, rows in sets.items() if _keep(labels[name], filters)}
    body: dict = {"object": "release", "benchmark": corpus.bench.id, "release": release,
                  "available_releases": names, "filters": filters, "tier": key.tier}
    if filters and not kept:
        body["available_filter_values"] = {
            name: sorted({lab["source" if name == "generator" else name] for lab in labels.values()
                          if name != "generator" or lab["kind"] == "fake"}) for name in FILTER_PARAMS}
    if kept:        # a purchase (for a test key: what would be one) fails before or after it
        before, after = state.faults.around_debit("release_500_before_purchase", "release_500_after_purchase")
    else:           # a pull that keeps nothing buys nothing: only the plain api_500
        before, after = state.faults.roll("api_500"), False
    if before:
        raise ApiError("server_error", "Unexpected server error.")
    if key.tier == "test":
        sample = bool(corpus.cols["sample"][:size].any())       # coverage is the key's, whatever the filters
        body.update(coverage="partial" if sample else "empty", shards=[], credits_required=0, charged=0,
                    balance=None, item_count=0)
        if after:
            raise ApiError("server_error", "Unexpected server error.")
        return json_response(body)
    items = [(int(i), corpus.item_id(int(i))) for rows in kept.values() for i in rows]
    ok, credits, balance = state.ledger.buy_release(account=key.account, tier=key.tier, benchmark=corpus.bench.id,
                                                    release=release, filters=filters, items=items)
    if not ok:
        raise ApiError("insufficient_credits", f"This pull needs {credits} credits; the balance is {balance}.",
                       required=credits)
    state.counters.charges += credits
    if after:
        raise ApiError("server_error", "Unexpected server error.")
    ttl = state.faults.settings.url_ttl
    origin = str(request.url.origin())
    shards = []
    for name, rows in kept.items():
        parts = [{"part": p, "rows": min(PART_ROWS, len(rows) - p * PART_ROWS),
                  "url": origin + state.signer.sign_path(
                      f"/_storage/releases/{corpus.bench.id}/{release}/{name}/part-{p:03d}.parquet", ttl)}
                 for p in range(-(-len(rows) // PART_ROWS))]
        shards.append({"set": name, "items": len(rows), "parts": parts})
    body.update(coverage="full" if sets else "empty", shards=shards, credits_required=credits, charged=credits,
                balance=balance, item_count=len(items), expires_in=ttl)
    return json_response(body)


class ReleaseBuilder:
    """Builds shard parts lazily on first fetch (off the event loop) and caches them on disk."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._dir = state.data_dir / "releases"
        self._sets: dict[tuple[str, int], dict[str, np.ndarray]] = {}   # a release's sets, once per release

    def _shard_sets(self, corpus: Corpus, size: int) -> dict[str, np.ndarray]:
        key = (corpus.bench.id, size)
        if key not in self._sets:
            self._sets[key] = shard_sets(corpus, size)
        return self._sets[key]

    async def part_bytes(self, path: str) -> bytes | None:
        """``<bench>/<release>/<set>/part-NNN.parquet`` -> the Parquet bytes, None if no such part."""
        pieces = path.split("/")
        if len(pieces) != 4 or not (pieces[3].startswith("part-") and pieces[3].endswith(".parquet")):
            return None
        bench_id, release, set_name, part_name = pieces
        corpus = self.state.corpora.get(bench_id)
        if corpus is None or release not in release_names(corpus):
            return None
        rows = self._shard_sets(corpus, corpus.release_sizes[release_names(corpus).index(release)]).get(set_name)
        part = part_name.removeprefix("part-").removesuffix(".parquet")
        if rows is None or not part.isdigit() or int(part) * PART_ROWS >= len(rows):
            return None
        chunk = [int(i) for i in rows[int(part) * PART_ROWS:(int(part) + 1) * PART_ROWS]]
        cache = self._dir / f"{hashlib.sha256(path.encode()).hexdigest()[:32]}.parquet"
        if cache.is_file():
            return cache.read_bytes()
        data = await asyncio.get_running_loop().run_in_executor(None, self._build, corpus, chunk)
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(cache)
        return data

    def _build(self, corpus: Corpus, rows: list[int]) -> bytes:
        import pyarrow as pa  # lazy: only release pulls need it, and it is slow to import
        import pyarrow.parquet as pq

        items = [corpus.item_json(i) for i in rows]
        columns = {name: pa.array([it[name] for it in items], type=pa.string()) for name in PARQUET_COLUMNS}
        columns["attributes"] = pa.array([json.dumps(it["attributes"]) for it in items], type=pa.string())
        columns["image"] = pa.array([self.state.images.get(corpus.image_spec(i)) for i in rows], type=pa.binary())
        buf = io.BytesIO()
        pq.write_table(pa.table(columns), buf)
        return buf.getvalue()
