"""The HTTP plumbing both remote detectors share: auth header, pacing, deadlines, careful retries.

Reads (progress, values, results) are retried like the Margen client's: every failure that
outlives a back-off is retryable. A submission is different: once its bytes may have reached the
service, retrying could submit the same file twice. So a submit is retried only when the service
certainly did not take it (the connection never opened, a 429, a 503); any other failure raises
``SubmissionUnknown`` and the caller decides (journal it, reconcile it, never blindly resend).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mirror.config import Retries, Timeouts
from mirror.detectors.base import SubmissionUnknown, Token
from mirror.errors import EXIT_AUTH, MirrorError, TransportError
from mirror.ratelimit import RateLimiter

__all__ = ["DetectorHttp", "DetectorHttpError", "Response"]

_USER_AGENT = "margen-mirror/0.1 (detectors)"
_NOT_TAKEN = (429, 503)        # statuses that mean the service did not accept the request


class DetectorHttpError(MirrorError):
    """The detector answered with an error status; 401/403 stop the run (bad or revoked token)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.fatal = status in (401, 403)
        if self.fatal:
            self.exit_code = EXIT_AUTH  # type: ignore[misc]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            raise TransportError(f"the detector sent a non-JSON body (HTTP {self.status})") from None


class DetectorHttp:
    """One aiohttp session per detector, every request paced by the detector's own limiter."""

    def __init__(self, base_url: str, token: Token, headers: dict[str, str], *, rate_limit: float,
                 timeouts: Timeouts, retries: Retries, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.limiter = RateLimiter(rate_limit, backoff=retries.backoff)
        self.timeouts = timeouts
        self.retries = retries
        self.requests = 0
        self._headers = {"User-Agent": _USER_AGENT, **headers}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()

    async def __aenter__(self) -> DetectorHttp:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections), headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self.timeouts.api, connect=self.timeouts.connect))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                   json_body: dict[str, Any] | None = None, form: Callable[[], aiohttp.FormData] | None = None,
                   submit: bool = False, extra_headers: dict[str, str] | None = None) -> Response:
        """One request with the retry policy above; non-2xx answers raise DetectorHttpError."""
        if self._session is None:
            raise RuntimeError("use 'async with' on the detector")
        url = self.base_url + path
        failures = 0
        throttled_since: float | None = None
        while True:
            await self.limiter.acquire()
            self.requests += 1
            try:
                async with self._session.request(method, url, params=params, json=json_body,
                                                 data=form() if form else None, headers=extra_headers,
                                                 allow_redirects=False) as resp:
                    body = await resp.read()
                    answer = Response(resp.status, body, resp.headers.get("Content-Type", ""))
            except aiohttp.ClientConnectorError as exc:      # never connected: nothing was sent
                failures = await self._retry_or_raise(failures, path, exc)
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                if submit:
                    raise SubmissionUnknown(self._say(f"{method} {path}: {_describe(exc)}; the service may or "
                                                      "may not have taken the file")) from None
                failures = await self._retry_or_raise(failures, path, exc)
                continue
            if 200 <= answer.status < 300:
                self.limiter.on_success()
                return answer
            if answer.status == 429:
                now = time.monotonic()
                throttled_since = throttled_since or now
                if now - throttled_since > self.retries.rate_limit_patience:
                    raise TransportError(f"{path}: still rate limited after {self.retries.rate_limit_patience:.0f} s")
                await asyncio.sleep(self.limiter.on_throttled())
                continue
            if answer.status >= 500 and (not submit or answer.status in _NOT_TAKEN):
                failures = await self._retry_or_raise(failures, path, f"HTTP {answer.status}")
                continue
            if answer.status >= 500:
                raise SubmissionUnknown(self._say(f"{method} {path}: HTTP {answer.status}; the service may or may "
                                                  "not have taken the file"))
            raise DetectorHttpError(self._say(f"{method} {path}: HTTP {answer.status} {_error_text(answer)}"),
                                    status=answer.status)

    async def _retry_or_raise(self, failures: int, path: str, cause: object) -> int:
        failures += 1
        if failures >= self.retries.attempts:
            raise TransportError(self._say(f"{path}: {_describe(cause)} after {failures} attempts; run again"))
        cap = min(self.retries.max_backoff, self.retries.backoff * 2 ** failures)
        await asyncio.sleep(cap * (0.5 + self._rng.random() / 2))
        return failures

    def _say(self, text: str) -> str:
        return self.token.redact(text)


def _error_text(answer: Response) -> str:
    """The service's own words, one line, short: its error envelope if it has one."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return body[key][:200]
        if body.get("errors"):
            return json.dumps(body["errors"])[:200]
    return answer.body[:120].decode("utf-8", "replace").replace("\n", " ")


def _describe(exc: object) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer before the deadline"
    return str(exc) or type(exc).__name__
