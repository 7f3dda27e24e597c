"""A small HTTP listener on 127.0.0.1 that receives Deepfake Detection ``callback_url`` POSTs.

The path carries a random secret, so another local process cannot inject verdicts by guessing
the port. A callback can arrive before the submit request has even returned its uuid, so
results are kept until someone asks for them. Polling stays the fallback: a lost callback only
costs time, never a verdict.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

__all__ = ["CallbackListener"]


class CallbackListener:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_base: str | None = None) -> None:
        self.host = host
        self.port = port
        self.received = 0
        self._public_base = public_base
        self._secret = secrets.token_urlsafe(16)
        self._results: dict[str, dict[str, Any]] = {}
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """What to send as ``callback_url``."""
        base = self._public_base or f"http://{self.host}:{self.port}"
        return f"{base.rstrip('/')}/callback/{self._secret}"

    async def __aenter__(self) -> CallbackListener:
        app = web.Application(client_max_size=8 * 2**20)
        app.router.add_post("/callback/{secret}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, uuid: str, within: float) -> dict[str, Any] | None:
        """The callback's ``item`` for ``uuid``, or None after ``within`` seconds."""
        if uuid in self._results:
            return self._results.pop(uuid)
        future = self._waiters.setdefault(uuid, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(future), within)
        except TimeoutError:
            return None
        finally:
            if future.done():
                self._waiters.pop(uuid, None)
                self._results.pop(uuid, None)

    async def _handle(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.match_info["secret"], self._secret):
            return web.Response(status=404)
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400)
        item = body.get("item") if isinstance(body, dict) else None
        uuid = item.get("uuid") if isinstance(item, dict) else None
        if not isinstance(uuid, str):
            return web.Response(status=400)
        self.received += 1
        future = self._waiters.get(uuid)
        if future is not None and not future.done():
            future.set_result(item)
        else:
            self._results[uuid] = item
        return web.json_response({"ok": True})
