"""The admin API (``/_admin/*``, only when the emulator runs with ``admin=True``) and a small
synchronous client for tests and scripts.

It is the emulator's back office: create and revoke keys, move credits, read the ledger and
the counters, grow the corpus, and change fault probabilities at run time.  It has no auth
because it only ever listens on 127.0.0.1 and is off by default.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web

from mirror.emulator.benchmarks import BENCHMARKS, DEFAULT_BENCHMARKS, FACES
from mirror.emulator.routes import STATE_KEY
from mirror.emulator.state import DEFAULT_RATE_LIMIT
from mirror.emulator.storage import image_bytes


class _BadRequest(Exception):
    pass


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


async def _json_body(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest("body is not JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("body must be a JSON object")
    return body


def _int_field(body: dict, name: str, *, minimum: int | None = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise _BadRequest(f"{name} must be an integer >= {minimum}")
    return value


def _guarded(handler):  # type: ignore[no-untyped-def]
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _BadRequest as err:
            return _reply({"error": str(err)}, 400)

    return wrapped


@_guarded
async def create_key(request: web.Request) -> web.Response:
    state, body = request.app[STATE_KEY], await _json_body(request)
    tier = body.get("tier", "live")
    if tier not in ("live", "test"):
        raise _BadRequest("tier must be 'live' or 'test'")
    key = body.get("key") or f"mgn_{tier}_{secrets.token_hex(12)}"
    account = body.get("account") or f"acct_{secrets.token_hex(6)}"
    rate_limit = _int_field(body, "rate_limit", minimum=1) or DEFAULT_RATE_LIMIT
    balance = _int_field(body, "balance")
    benchmarks = tuple(body.get("benchmarks") or DEFAULT_BENCHMARKS)
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown:
        raise _BadRequest(f"unknown benchmarks {unknown}; known: {sorted(BENCHMARKS)}")
    try:
        state.ledger.create_key(key, tier, account, rate_limit, benchmarks, balance)
    except KeyError:
        return _reply({"error": f"key {key} already exists"}, 409)
    return _reply({"key": key, "account": account, "tier": tier, "rate_limit": rate_limit,
                   "benchmarks": list(benchmarks), "balance": state.ledger.balance(account)})


async def revoke_key(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    if not request.app[STATE_KEY].ledger.revoke_key(key):
        return _reply({"error": f"no key {key}"}, 404)
    return _reply({"key": key, "revoked": True})


@_guarded
async def credits(request: web.Request) -> web.Response:
    state, body = request.app[STATE_KEY], await _json_body(request)
    add, set_to = _int_field(body, "add", minimum=None), _int_field(body, "set")
    if add is None and set_to is None:
        raise _BadRequest("pass add or set")
    account = request.match_info["account"]
    return _reply({"account": account, "balance": state.ledger.add_credits(account, add, set_to)})


@_guarded
async def ledger(request: web.Request) -> web.Response:
    account = request.query.get("account")
    if not account:
        raise _BadRequest("pass ?account=")
    return _reply(request.app[STATE_KEY].ledger.report(account))


async def counters(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    c = state.counters
    return _reply({
        "api_requests": c.api_requests, "api_requests_by_route": c.api_requests_by_route,
        "api_requests_by_account": c.api_requests_by_account, "rate_limited": c.rate_limited,
        "downloads": c.downloads, "charges": c.charges, "storage_requests": c.storage_requests,
        "storage_ok": c.storage_ok, "storage_forbidden": c.storage_forbidden,
        "auth_header_refusals": c.auth_header_refusals, "connections": c.connections,
        "faults": dict(state.faults.counts),
    })


async def reset_counters(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset_counters()
    return _reply({"reset": True})


@_guarded
async def append_items(request: web.Request) -> web.Response:
    state, body = request.app[STATE_KEY], await _json_body(request)
    bench = body.get("benchmark") or FACES
    count = _int_field(body, "count", minimum=1)
    if bench not in state.corpora or count is None:
        raise _BadRequest("pass count >= 1 and an existing benchmark")
    state.ledger.record_append(bench, count)
    state.corpora[bench].append(count)
    return _reply({"benchmark": bench, "added": count, "total": state.corpora[bench].n})


@_guarded
async def faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.method == "GET":
        return _reply(state.faults.current())
    try:
        return _reply(state.faults.update(await _json_body(request)))
    except ValueError as err:
        raise _BadRequest(str(err)) from None


async def item_image(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    found = state.find_item(request.match_info["item_id"])
    if found is None:
        return _reply({"error": "no such item"}, 404)
    data = await image_bytes(state, *found)
    return web.Response(body=data, content_type="image/jpeg")


def add_admin_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/_admin/keys", create_key)
    r.add_post("/_admin/keys/{key}/revoke", revoke_key)
    r.add_post("/_admin/accounts/{account}/credits", credits)
    r.add_get("/_admin/ledger", ledger)
    r.add_get("/_admin/counters", counters)
    r.add_post("/_admin/counters/reset", reset_counters)
    r.add_post("/_admin/items", append_items)
    r.add_get("/_admin/faults", faults)
    r.add_post("/_admin/faults", faults)
    r.add_get("/_admin/items/{item_id}/image", item_image)


class AdminClient:
    """Synchronous (urllib) client of the admin API, for tests and scripts."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"admin {method} {path} failed: HTTP {err.code} {err.read()[:300]!r}") from None

    def _json(self, method: str, path: str, body: dict | None = None) -> Any:
        return json.loads(self._call(method, path, body))

    def create_key(self, tier: str = "live", *, balance: int | None = None, rate_limit: int | None = None,
                   account: str | None = None, benchmarks: list[str] | None = None, key: str | None = None) -> str:
        body = {"tier": tier, "balance": balance, "rate_limit": rate_limit, "account": account,
                "benchmarks": benchmarks, "key": key}
        return self._json("POST", "/_admin/keys", {k: v for k, v in body.items() if v is not None})["key"]

    def revoke_key(self, key: str) -> None:
        self._json("POST", f"/_admin/keys/{key}/revoke")

    def add_credits(self, account: str, n: int) -> int:
        return self._json("POST", f"/_admin/accounts/{account}/credits", {"add": n})["balance"]

    def set_balance(self, account: str, n: int) -> int:
        return self._json("POST", f"/_admin/accounts/{account}/credits", {"set": n})["balance"]

    def ledger(self, account: str) -> dict:
        return self._json("GET", f"/_admin/ledger?account={urllib.request.quote(account)}")

    def counters(self) -> dict:
        return self._json("GET", "/_admin/counters")

    def reset_counters(self) -> None:
        self._json("POST", "/_admin/counters/reset")

    def append_items(self, count: int, benchmark: str = FACES) -> dict:
        return self._json("POST", "/_admin/items", {"count": count, "benchmark": benchmark})

    def set_faults(self, **probs: float) -> dict:
        return self._json("POST", "/_admin/faults", probs)

    def image_bytes(self, item_id: str) -> bytes:
        return self._call("GET", f"/_admin/items/{item_id}/image")
