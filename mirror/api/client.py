"""The Margen API client: one aiohttp session, auth, deadlines, retries and the rate limiter.

Every API call goes through ``_get``: it waits for the key's rate-limiter slot, sends the bearer
key with a total deadline (kept by ``Deadlines``: one watchdog for all requests), never follows
redirects (a cross-host redirect would leak the key or lose it), retries 5xx and network failures
and 429s under the one retry policy (``mirror.api.retry``), and turns error bodies into the
``mirror.errors`` subclass for their ``code``. Storage fetches of signed URLs do not go through
here: they use a separate session that has no key at all.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from mirror.api.deadlines import TimedSession
from mirror.api.models import Benchmark, Catalog, Download, Page, Usage
from mirror.api.retry import Contact, Retry, Throttled, attempt_loop
from mirror.config import ApiKey, Retries, Timeouts
from mirror.errors import RateLimited, RedirectRefused, ServerError, TransportError, api_error_from_body
from mirror.ratelimit import RateLimiter

__all__ = ["MargenClient", "API_PREFIX"]

API_PREFIX = "/api/v1/data"
_USER_AGENT = "margen-mirror/0.1"


class MargenClient:
    """Async client for ``/benchmarks``, ``/catalog``, ``/items``, ``/download`` and ``/usage``."""

    def __init__(self, api_key: ApiKey, base_url: str, *, limiter: RateLimiter,
                 timeouts: Timeouts = Timeouts(), retries: Retries = Retries(),
                 connections: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_root = str(URL(self.base_url + API_PREFIX))   # normalised once, not per request
        self.limiter = limiter
        self.timeouts = timeouts
        self.retries = retries
        self.api_calls = 0          # requests sent to API routes, retries included
        self._key = api_key
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._http = TimedSession()       # the session and the watchdog of its deadlines
        self._contact = Contact(self.base_url, "check --base-url (or MARGEN_BASE_URL)")

    async def __aenter__(self) -> MargenClient:
        self._session = await self._http.open(
            self.timeouts.connect, connector=aiohttp.TCPConnector(limit=self._connections),
            headers={"Authorization": f"Bearer {self._key.reveal()}", "User-Agent": _USER_AGENT})
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._session = None
        await self._http.close()

    @property
    def pool(self) -> aiohttp.BaseConnector:
        """The open session's connection pool, for the storage fetcher to share.

        A connection carries no credentials (the key travels in each API request's headers), so
        when signed URLs are on the API's own origin a fetch reuses the connection its reservation
        just released instead of opening one more.
        """
        if self._session is None:
            raise RuntimeError("use 'async with MargenClient(...)'")
        return self._session.connector  # type: ignore[return-value]

    def redact(self, text: str) -> str:
        """``text`` with the key masked: for any message that may quote a server's words."""
        return self._key.redact(text)

    # -- operations ---------------------------------------------------------------------------
    async def benchmarks(self) -> list[Benchmark]:
        body = await self._get("/benchmarks")
        return [Benchmark.from_json(b) for b in self._list(body, "benchmarks")]

    async def catalog(self, benchmark: str | None) -> Catalog:
        body = await self._get("/catalog", params={"benchmark": benchmark} if benchmark else None)
        return self._parse(Catalog.from_json, body, "catalog")

    async def usage(self) -> Usage:
        return self._parse(Usage.from_json, await self._get("/usage"), "usage")

    async def items(self, params: dict[str, str]) -> Page:
        return self._parse(Page.from_json, await self._get("/items", params=params), "items")

    async def download(self, item_id: str, *, idempotency_key: str) -> Download:
        """Reserve one item: debits a credit unless the account owns it. Always idempotent."""
        segment = quote(item_id, safe="")
        if segment in (".", ".."):          # a dot segment would be normalized away: /download/.. -> /
            segment = segment.replace(".", "%2E")
        path = "/download/" + segment
        body = await self._get(path, headers={"Idempotency-Key": idempotency_key})
        received = time.monotonic()
        return self._parse(lambda b: Download.from_json(b, received_at=received), body, "download")

    # -- plumbing -----------------------------------------------------------------------------
    def _list(self, body: Any, what: str) -> list[dict[str, Any]]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise TransportError(f"malformed {what} response from {self.base_url}: no data list")
        return [d for d in data if isinstance(d, dict)]

    def _parse(self, build: Any, body: Any, what: str) -> Any:
        try:
            return build(body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransportError(f"malformed {what} response from {self.base_url}: {exc}") from None

    async def _get(self, path: str, *, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Any:
        if self._session is None:
            raise RuntimeError("use 'async with MargenClient(...)'")
        # encoded=True: ``path`` is already quoted, and re-parsing it would resolve %2E%2E like "..".
        url = URL(self._api_root + path, encoded=True)
        return await attempt_loop(lambda: self._attempt(url, params, headers), self.retries, what=path,
                                  limiter=self.limiter, deadlines=self._http.deadlines, seconds=self.timeouts.api,
                                  contact=self._contact, redact=self._key.redact)

    async def _attempt(self, url: URL, params: dict[str, str] | None, headers: dict[str, str] | None) -> Any:
        """One request, its answer sorted for ``attempt_loop``: the body of a 200, else an error."""
        self.api_calls += 1
        try:
            status, body = await self._send(url, params, headers)
        except TransportError as exc:           # a 200 whose body is not JSON: worth another try
            raise Retry(str(exc)) from None
        if status == 200:
            return body
        error = api_error_from_body(status, body)
        error.message = self._key.redact(error.message)
        if isinstance(error, RateLimited):
            raise Throttled(error)
        if isinstance(error, ServerError) or status >= 500:
            raise Retry(f"HTTP {status}", error)
        raise error

    async def _send(self, url: URL, params: dict[str, str] | None,
                    headers: dict[str, str] | None) -> tuple[int, Any]:
        assert self._session is not None
        async with self._session.get(url, params=params, headers=headers, allow_redirects=False) as resp:
            if 300 <= resp.status < 400:
                target = resp.headers.get("Location", "?")
                raise RedirectRefused(f"the server redirected to {target}; the key is never sent on a "
                                       f"redirect: set --base-url to the canonical host")
            raw = await resp.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            if resp.status != 200:          # an error page that is not the API's: judged by its status
                return resp.status, None
            raise TransportError(f"malformed JSON (HTTP {resp.status}) from {url.with_query(None)}") from None
        return resp.status, body
