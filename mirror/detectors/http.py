"""The HTTP plumbing both remote detectors share: auth header, pacing, deadlines, careful retries.

Every request runs in the client's one retry loop (``mirror.api.retry``), so reads (progress,
values, results) are retried like the Margen client's. A submission is different: once its bytes
may have reached the service, retrying could submit the same file twice. So a submit is retried only when the service
certainly did not take it (the connection never opened, a 429, a 503); any other failure raises
``SubmissionUnknown`` and the caller decides (journal it, reconcile it, never blindly resend).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mirror.api.retry import Retry, Throttled, attempt_loop, describe, retry_after
from mirror.config import Retries, Timeouts
from mirror.detectors.base import DetectorFailed, SubmissionUnknown, Token
from mirror.detectors.options import Pacing
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

    @classmethod
    def paced(cls, base_url: str, token: Token, headers: dict[str, str], pacing: Pacing) -> DetectorHttp:
        """The session a remote adapter opens for one run: ``pacing``'s rate, deadlines and retries,
        and a connection for every file in flight plus two for polls."""
        return cls(base_url, token, headers, rate_limit=pacing.rate_limit, timeouts=pacing.timeouts,
                   retries=pacing.retries, connections=pacing.concurrency + 2)

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
        session = self._session
        url = self.base_url + path

        async def attempt() -> Response:
            self.requests += 1
            async with session.request(method, url, params=params, json=json_body, data=form() if form else None,
                                       headers=extra_headers, allow_redirects=False) as resp:
                answer = Response(resp.status, await resp.read(), resp.headers.get("Content-Type", ""))
                if 200 <= answer.status < 300:
                    return answer
                if answer.status == 429:
                    raise Throttled(TransportError(f"{path}: still rate limited after "
                                                   f"{self.retries.rate_limit_patience:.0f} s"),
                                    retry_after(resp.headers.get("Retry-After")))
            if answer.status >= 500 and (not submit or answer.status in _NOT_TAKEN):
                raise Retry(f"HTTP {answer.status}")
            if answer.status >= 500:
                raise SubmissionUnknown(self._say(f"{method} {path}: HTTP {answer.status}; the service may or may "
                                                  "not have taken the file"))
            raise DetectorHttpError(self._say(f"{method} {path}: HTTP {answer.status} {_error_text(answer)}"),
                                    status=answer.status)

        def maybe_taken(exc: BaseException) -> BaseException | None:
            """A submit that failed after it may have reached the service is not sent again."""
            if not submit or isinstance(exc, aiohttp.ClientConnectorError):     # never connected: nothing sent
                return None
            return SubmissionUnknown(self._say(f"{method} {path}: {describe(exc)}; the service may or may not "
                                               "have taken the file"))

        return await attempt_loop(attempt, self.retries, what=path, limiter=self.limiter,
                                  on_network_error=maybe_taken, redact=self._say)

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


class PolledDetector:
    """What every remote adapter shares: its paced session, how often it polls a job and for how long.

    ``overdue`` is the one deadline rule: a job past it is left to the next run, which polls it
    again instead of submitting the file twice (the submission log still names it).
    """

    def __init__(self, http: DetectorHttp, *, poll_interval: float = 1.0, deadline: float = 600.0) -> None:
        self.http = http
        self.poll_interval = poll_interval
        self.deadline = deadline

    def give_up_at(self) -> float:
        return time.monotonic() + self.deadline

    def overdue(self, give_up: float, who: str) -> None:
        """Raise ``DetectorFailed`` once ``give_up`` has passed."""
        if time.monotonic() > give_up:
            raise DetectorFailed(f"{who} had no verdict after {self.deadline:.0f} s; run again to keep polling")
