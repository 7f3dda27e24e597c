"""A tiny hostile impersonation of the Margen API on 127.0.0.1, for the engine's hostile-data tests.

It answers the routes a sync uses (``/catalog``, ``/items``, ``/download/{id}``, ``/usage`` and a
storage route) with whatever ``HostileServer.behaviour`` says: ids built to escape DEST, duplicate
ids across pages, a ``has_more`` that lies, bodies that are not JPEGs or are too big, malformed
JSON, redirects to another host. Every request is recorded (path and whether it carried
credentials) so tests can prove the key never reached storage or a redirect target.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from PIL import Image

BENCH = "hostile-v1"
PREFIX = "/api/v1/data"


def jpeg(seed: int, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (seed * 37 % 256, seed * 91 % 256, 120)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def big_jpeg(min_bytes: int) -> bytes:
    """A real JPEG of at least ``min_bytes`` (noise compresses badly)."""
    import random
    rnd = random.Random(1)
    side = 64
    while True:
        img = Image.frombytes("RGB", (side, side), bytes(rnd.getrandbits(8) for _ in range(side * side * 3)))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=100)
        if buf.tell() >= min_bytes:
            return buf.getvalue()
        side *= 2


KEY = "mgn_live_HOSTILEtestKEY0123456789"   # the key every hostile-server test syncs with


def item(item_id: str, source: str | None = "src1") -> dict[str, Any]:
    return {"object": "attack_data_item", "id": item_id, "benchmark": BENCH, "kind": "fake",
            "source_real_id": source, "base_id": source, "attributes": {}}


@dataclass
class Seen:
    path: str
    authorized: bool


@dataclass
class Behaviour:
    pages: list[list[dict[str, Any]]] = field(default_factory=list)   # /items pages, by cursor index
    lie_has_more: str | None = None     # "same-cursor" | "no-cursor" | "empty-page"
    bodies: dict[str, bytes] = field(default_factory=dict)           # storage body per item id
    chunked: set[str] = field(default_factory=set)                   # sent without Content-Length
    malformed: str | None = None        # API route answering with broken JSON ("items", "download", …)
    redirect_api: bool = False          # /catalog answers 302 to the other host
    redirect_storage: set[str] = field(default_factory=set)           # storage of these ids 302s away
    gzip_if_asked: bool = False         # storage gzips bodies for a client whose Accept-Encoding allows it


class HostileServer:
    """The hostile API plus an "elsewhere" host that only records who came to it."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.api_seen: list[Seen] = []
        self.storage_seen: list[Seen] = []
        self.elsewhere_seen: list[Seen] = []
        self.downloads: dict[str, int] = {}
        self.url = ""
        self.elsewhere_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []

    # -- routes -------------------------------------------------------------------------------
    def _json(self, route: str, body: Any) -> web.Response:
        if self.behaviour.malformed == route:
            return web.Response(text='{"data": [ {"id": "x"', content_type="application/json")
        return web.json_response(body)

    async def catalog(self, request: web.Request) -> web.Response:
        self._see(self.api_seen, request)
        if self.behaviour.redirect_api:
            raise web.HTTPFound(self.elsewhere_url + request.path_qs)
        return self._json("catalog", {
            "object": "catalog", "benchmark": {"id": BENCH, "product": "attack-data", "title": "Hostile"},
            "tier": "live", "total": self._total(),
            "dimensions": [{"key": "kind", "label": "Kind", "values": [{"value": "fake"}, {"value": "real"}]}]})

    async def usage(self, request: web.Request) -> web.Response:
        self._see(self.api_seen, request)
        return self._json("usage", {"object": "usage", "tier": "live", "balance": 1000})

    async def items(self, request: web.Request) -> web.Response:
        self._see(self.api_seen, request)
        pages = self.behaviour.pages
        if request.query.get("exclude_owned") == "true":
            total = self._total()
            return self._json("items", {"object": "list", "data": [], "has_more": total > 0, "total_matching": total,
                                        "owned": 0, "remaining": total})
        index = int(request.query.get("cursor") or 0)
        data = pages[index] if index < len(pages) else []
        has_more = index + 1 < len(pages)
        nxt: str | None = str(index + 1) if has_more else None
        lie = self.behaviour.lie_has_more
        if lie and index == len(pages) - 1:
            has_more, nxt = True, {"same-cursor": request.query.get("cursor") or "", "no-cursor": None,
                                   "empty-page": str(index + 1)}[lie]
            if lie == "same-cursor" and not nxt:
                nxt = "0"
        if lie == "empty-page" and index >= len(pages):
            has_more, nxt = True, str(index)
        return self._json("items", {"object": "list", "data": data, "has_more": has_more, "next_cursor": nxt})

    async def download(self, request: web.Request) -> web.Response:
        self._see(self.api_seen, request)
        item_id = unquote(request.raw_path.split("/download/", 1)[1].split("?")[0])
        found = next((it for page in self.behaviour.pages for it in page if it.get("id") == item_id), None)
        if found is None:
            return web.json_response({"error": "No such item.", "code": "not_found"}, status=404)
        charged = item_id not in self.downloads
        self.downloads[item_id] = self.downloads.get(item_id, 0) + 1
        token = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()
        return self._json("download", {"object": "download", "url": f"{self.url}/storage/{token}.jpg",
                                       "expires_in": 300, "item": found, "charged": charged, "balance": 999})

    async def storage(self, request: web.Request) -> web.StreamResponse:
        self._see(self.storage_seen, request)
        token = request.match_info["token"].removesuffix(".jpg")
        by_token = {hashlib.sha256(k.encode("utf-8", "surrogatepass")).hexdigest(): k
                    for page in self.behaviour.pages for k in (it.get("id") for it in page) if isinstance(k, str)}
        item_id = by_token.get(token)
        if item_id is None:
            return web.Response(status=404)
        if item_id in self.behaviour.redirect_storage:
            raise web.HTTPFound(self.elsewhere_url + "/stolen/" + token)
        body = self.behaviour.bodies.get(item_id) or jpeg(len(item_id))
        if self.behaviour.gzip_if_asked and "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=gzip.compress(body), content_type="image/jpeg",
                                headers={"Content-Encoding": "gzip"})
        if item_id in self.behaviour.chunked:
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for start in range(0, len(body), 4096):
                await resp.write(body[start:start + 4096])
            await resp.write_eof()
            return resp
        return web.Response(body=body, content_type="image/jpeg")

    async def elsewhere(self, request: web.Request) -> web.Response:
        self._see(self.elsewhere_seen, request)
        return web.json_response({"stolen": True})

    def _see(self, into: list[Seen], request: web.Request) -> None:
        into.append(Seen(request.path, "Authorization" in request.headers or "x-api-key" in request.headers))

    def _total(self) -> int:
        return len({it.get("id") for page in self.behaviour.pages for it in page})

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> HostileServer:
        api = web.Application()
        api.router.add_get(PREFIX + "/catalog", self.catalog)
        api.router.add_get(PREFIX + "/usage", self.usage)
        api.router.add_get(PREFIX + "/items", self.items)
        api.router.add_get(PREFIX + "/download/{tail:.+}", self.download)
        api.router.add_get("/storage/{token}", self.storage)
        other = web.Application()
        other.router.add_get("/{tail:.*}", self.elsewhere)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            urls = []
            for app in (api, other):
                runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self._runners.append(runner)
                urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
            self.url, self.elsewhere_url = urls
            ready.set()
            loop.run_forever()
            for runner in self._runners:
                loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
