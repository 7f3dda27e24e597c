"""The emulators' back office: ``/_admin/*`` routes (no auth, loopback only) and a sync client.

Always on, unlike the Margen emulator's admin API: the detector emulators exist for tests and
benchmarks, and the counters are how a test proves what a client really sent.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from aiohttp import web

from mirror.emulator.detectors.jobs import JOBS_KEY

CREDITS_KEY: web.AppKey[dict[str, int | None]] = web.AppKey("detector_credits", dict)


async def _counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[JOBS_KEY].counters.as_dict())


async def _reset(request: web.Request) -> web.Response:
    store = request.app[JOBS_KEY]
    store.counters = type(store.counters)()
    return web.json_response(store.counters.as_dict())


async def _credits(request: web.Request) -> web.Response:
    """GET the remaining credits, POST ``{"credits": n | null}`` to set them (null = unlimited)."""
    wallet = request.app[CREDITS_KEY]
    if request.method == "POST":
        try:
            body = await request.json()
            value = body["credits"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"credits": int | null}'}, status=400)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return web.json_response({"error": "credits must be a non-negative integer or null"}, status=400)
        wallet["credits"] = value
    return web.json_response({"credits": wallet["credits"]})


def add_admin_routes(app: web.Application) -> None:
    app[CREDITS_KEY] = {"credits": None}
    app.router.add_get("/_admin/counters", _counters)
    app.router.add_post("/_admin/counters/reset", _reset)
    app.router.add_route("*", "/_admin/credits", _credits)


class AdminClient:
    """Synchronous client of ``/_admin`` for tests and scripts (urllib: no event loop needed)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/_admin/counters")

    def reset_counters(self) -> dict[str, Any]:
        return self._call("POST", "/_admin/counters/reset", {})

    def credits(self) -> int | None:
        return self._call("GET", "/_admin/credits")["credits"]

    def set_credits(self, credits: int | None) -> int | None:
        """Deepfake Detection only: the wallet a 402 is computed from (None = unlimited)."""
        return self._call("POST", "/_admin/credits", {"credits": credits})["credits"]
