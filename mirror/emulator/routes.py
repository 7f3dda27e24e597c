"""The API routes under ``/api/v1/data`` and its permanent alias ``/api/data``.

Every route goes through :func:`api_route`, which does what the real API does before any
handler runs: count, authenticate (``Authorization: Bearer`` or the spec's ``x-api-key``),
apply the key's rolling-window rate limit (429 with no Retry-After), and inject the faults
configured for the API.  Handlers raise :class:`ApiError`; the wrapper renders the body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from mirror.emulator.benchmarks import BENCHMARKS
from mirror.emulator.corpus import Corpus
from mirror.emulator.errors import ApiError, invalid_param
from mirror.emulator.filters import visible_mask
from mirror.emulator.ledger import KeyRecord
from mirror.emulator.paging import list_items, parse_include
from mirror.emulator.state import EmulatorState

PREFIXES = ("/api/v1/data", "/api/data")
STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)


@dataclass(frozen=True)
class Ctx:
    state: EmulatorState
    key: KeyRecord


Handler = Callable[[web.Request, Ctx], Awaitable[web.Response]]


def json_response(body: dict, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def error_response(err: ApiError) -> web.Response:
    return json_response(err.body(), err.status)


def bearer_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None
    return request.headers.get("x-api-key") or None


def api_route(route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        counters, faults = state.counters, state.faults
        counters.api_requests += 1
        counters.api_requests_by_route[route] += 1
        try:
            token = bearer_key(request)
            rec = state.ledger.lookup_key(token) if token else None
            if rec is None or rec.revoked:
                raise ApiError("unauthorized", "Missing, invalid, or revoked API key.")
            by_account = counters.api_requests_by_account
            by_account[rec.account] = by_account.get(rec.account, 0) + 1
            if faults.roll("api_429"):
                raise ApiError("rate_limited", "Rate limit exceeded. Back off and retry.")
            if not state.limiter.allow(rec.key, rec.rate_limit):
                counters.rate_limited += 1
                raise ApiError("rate_limited", f"Rate limit exceeded ({rec.rate_limit} requests per minute).")
            if faults.roll("api_slow"):
                await asyncio.sleep(faults.settings.slow_seconds)
            if route not in ("download", "release") and faults.roll("api_500"):   # those split it around the debit
                raise ApiError("server_error", "Unexpected server error.")
            return await handler(request, Ctx(state, rec))
        except ApiError as err:
            return error_response(err)

    return wrapped


def resolve_benchmark(ctx: Ctx, request: web.Request) -> Corpus:
    """The benchmark param, optional only while the key sees exactly one benchmark."""
    visible = [b for b in ctx.key.benchmarks if b in BENCHMARKS]
    available = [BENCHMARKS[b].summary() for b in visible]
    raw = request.query.get("benchmark") or None
    if raw is None:
        if len(visible) != 1:
            raise ApiError("ambiguous_benchmark", "This key sees more than one benchmark; pass benchmark.",
                           available=available)
        raw = visible[0]
    if raw not in visible:
        raise ApiError("unknown_benchmark", f"Unknown benchmark {raw!r} for this key.", available=available)
    return ctx.state.corpora[raw]


async def benchmarks(request: web.Request, ctx: Ctx) -> web.Response:
    data = [BENCHMARKS[b].public() for b in ctx.key.benchmarks if b in BENCHMARKS]
    return json_response({"object": "list", "data": data, "tier": ctx.key.tier})


async def catalog(request: web.Request, ctx: Ctx) -> web.Response:
    corpus = resolve_benchmark(ctx, request)
    bench = corpus.bench
    filters: dict[str, list[str]] = {}
    for dim in bench.dimensions:
        if dim.fixed:
            filters[dim.key] = list(dim.values)
            if dim.alias:
                filters[dim.alias] = list(dim.values)
    return json_response({
        "object": "catalog", "benchmark": bench.public(), "tier": ctx.key.tier,
        "dimensions": [d.catalog_entry() for d in bench.dimensions], "filters": filters,
        "total": int(visible_mask(corpus, ctx.key.tier).sum()),
        "metadata_fields": list(corpus.metadata(0)) if corpus.n else [],
    })


async def items(request: web.Request, ctx: Ctx) -> web.Response:
    corpus = resolve_benchmark(ctx, request)
    return json_response(list_items(corpus, request.query, tier=ctx.key.tier, account=ctx.key.account,
                                    ledger=ctx.state.ledger, signer=ctx.state.signer))


async def usage(request: web.Request, ctx: Ctx) -> web.Response:
    live = ctx.key.tier == "live"
    return json_response({"object": "usage", "tier": ctx.key.tier, "owner": ctx.key.account,
                          "balance": ctx.state.ledger.balance(ctx.key.account) if live else 0})


async def download(request: web.Request, ctx: Ctx) -> web.Response:
    state, key = ctx.state, ctx.key
    item_id = request.match_info["item_id"]
    found = state.find_item(item_id)
    if found is None or found[0].bench.id not in key.benchmarks:
        raise ApiError("not_found", f"Item {item_id!r} not found.")
    corpus, index = found
    if key.tier == "test" and not corpus.cols["sample"][index]:
        raise ApiError("forbidden_tier", "This item is live-tier only; test keys pull the free sample.")
    metadata = parse_include(request.query)
    idem_key = request.headers.get("Idempotency-Key") or None
    faults = state.faults
    before, after = faults.around_debit("download_500_before_debit", "download_500_after_debit")
    if before:
        raise ApiError("server_error", "Unexpected server error.")
    ttl = faults.settings.url_ttl
    origin = str(request.url.origin())

    def make_body(charged: bool, already_owned: bool, balance: int | None) -> bytes:
        url = origin + state.signer.sign_path(f"/_storage/{corpus.bench.id}/{item_id}.jpg", ttl)
        return json.dumps({"object": "download", "url": url, "expires_in": ttl,
                           "item": corpus.item_json(index, metadata), "balance": balance,
                           "charged": charged, "already_owned": already_owned}).encode()

    outcome = await state.ledger.download(account=key.account, tier=key.tier, benchmark=corpus.bench.id,
                                          item_index=index, item_id=item_id, idem_key=idem_key, make_body=make_body)
    if outcome.status == "idempotency_conflict":
        raise invalid_param("Idempotency-Key", "This Idempotency-Key was already used for a different item.")
    if outcome.status == "insufficient":
        raise ApiError("insufficient_credits", "Insufficient credits. Top up in the portal.", required=1)
    state.counters.charges += int(outcome.charged)
    if after:
        raise ApiError("server_error", "Unexpected server error.")
    state.counters.downloads += 1
    return web.Response(body=outcome.body, content_type="application/json")


async def unknown_route(request: web.Request) -> web.Response:
    return error_response(ApiError("not_found", f"No such endpoint: {request.path}"))


def add_api_routes(app: web.Application, release_handler: Handler) -> None:
    table: list[tuple[str, str, Handler]] = [
        ("benchmarks", "/benchmarks", benchmarks), ("catalog", "/catalog", catalog),
        ("items", "/items", items), ("download", "/download/{item_id}", download),
        ("usage", "/usage", usage), ("release", "/release", release_handler),
    ]
    for prefix in PREFIXES:
        for route, path, handler in table:
            app.router.add_get(prefix + path, api_route(route, handler))
        app.router.add_route("*", prefix + "/{tail:.*}", unknown_route)
