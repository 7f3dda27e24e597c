"""The one retry loop every HTTP request of the client runs in: API calls, storage fetches, detectors.

``attempt_loop`` runs one request (an *attempt*, a coroutine function of the caller's) until it
returns, and sorts every way it can end into one of four outcomes:

* **success**: the attempt returned; the rate limiter, if any, hears of it;
* **retryable**: a network failure (``aiohttp.ClientError``, a deadline's ``TimeoutError``) or the
  attempt raised ``Retry`` (a 5xx, a malformed answer): wait ``Retries.delay`` and try again, up to
  ``Retries.attempts`` tries in all, then raise ``Retry.error`` or a one-line ``TransportError``;
* **rate limited**: the attempt raised ``Throttled`` (a 429): wait the limiter's pause (at least
  the server's Retry-After, when it sends one) and try again, for ``Retries.rate_limit_patience``
  seconds of consecutive 429s at most; these waits are not failures;
* **fatal**: anything else the attempt raises propagates at once (a 4xx, an expired URL, a body
  that failed a check).

Two rules refine the network case. *First contact*: a connection refused, or a host name that does
not exist, before the server has answered anything in this session is a wrong address, not a
hiccup, so it is one line at once naming the URL and the setting to check (``Contact``); once the
server has answered, the same error is a restart or a drop mid-run, and is retried. *Unsafe to
repeat*: a caller whose request may have had an effect (a detector upload) passes
``on_network_error`` to stop with its own error instead of sending it again.

A caller writes only what an answer means (``Retry``, ``Throttled``, or its own error); the loop,
the back-off, the patience and the messages are here, so no caller can get them wrong.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from mirror.api.deadlines import Deadlines
from mirror.config import Retries
from mirror.errors import TransportError
from mirror.ratelimit import RateLimiter

__all__ = ["Contact", "Retry", "Throttled", "attempt_loop", "describe", "retry_after"]

T = TypeVar("T")
_NETWORK = (TimeoutError, aiohttp.ClientError)


class Retry(Exception):
    """Raised by an attempt whose answer is worth another try (a 5xx, a malformed body).

    ``error`` is what to raise once the attempts are spent (default: a TransportError naming ``reason``).
    """

    def __init__(self, reason: str, error: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class Throttled(Exception):
    """Raised by an attempt answered 429: ``error`` is raised once the patience is spent."""

    def __init__(self, error: BaseException, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class Contact:
    """Whether the server at ``url`` has answered yet in this session (see the first-contact rule).

    ``hint`` says where the address comes from, e.g. "check --base-url (or MARGEN_BASE_URL)".
    """

    __slots__ = ("answered", "hint", "url")

    def __init__(self, url: str, hint: str) -> None:
        self.url = url
        self.hint = hint
        self.answered = False

    def unreachable(self, exc: BaseException) -> TransportError | None:
        """The one-line error for a first call that found nobody at ``url``; None for anything else."""
        if self.answered or not isinstance(exc, aiohttp.ClientConnectorError):
            return None
        code = exc.os_error.errno
        if code == errno.ECONNREFUSED:
            reason = "connection refused"
        elif code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            reason = "no such host"
        else:
            return None
        return TransportError(f"cannot reach {self.url}: {reason}; {self.hint}")


async def attempt_loop(attempt: Callable[[], Awaitable[T]], retries: Retries, *, what: str,
                       limiter: RateLimiter | None = None, deadlines: Deadlines | None = None,
                       seconds: float = 0.0, contact: Contact | None = None,
                       on_network_error: Callable[[BaseException], BaseException | None] | None = None,
                       redact: Callable[[str], str] = str) -> T:
    """Run ``attempt`` until it returns, with the policy of the module docstring.

    ``limiter``: acquired before each attempt, told of successes and 429s. ``deadlines`` and
    ``seconds``: a total deadline on each attempt (without them the caller keeps its own).
    ``what`` names the request in messages, after ``redact`` (which masks a secret).
    """
    failures = 0
    throttled_since: float | None = None
    while True:
        if limiter is not None:
            await limiter.acquire()
        try:
            if deadlines is not None:
                with deadlines.limit(seconds):
                    result = await attempt()
            else:
                result = await attempt()
        except Retry as exc:
            if contact is not None:
                contact.answered = True     # an answer worth another try: the server is there
            reason, error = exc.reason, exc.error
        except Throttled as exc:
            now = time.monotonic()
            throttled_since = throttled_since or now
            if now - throttled_since > retries.rate_limit_patience:
                raise exc.error from None
            if contact is not None:
                contact.answered = True
            pause = limiter.on_throttled() if limiter is not None else retries.delay(failures + 1)
            await asyncio.sleep(max(pause, exc.retry_after or 0.0))
            continue
        except _NETWORK as exc:
            stop = (contact.unreachable(exc) if contact is not None else None) \
                or (on_network_error(exc) if on_network_error is not None else None)
            if stop is not None:
                raise stop from None
            reason, error = describe(exc), None
        else:
            if limiter is not None:
                limiter.on_success()
            if contact is not None:
                contact.answered = True
            return result
        failures += 1
        if failures >= retries.attempts:
            if error is None:
                error = TransportError(redact(f"{what}: {reason} after {failures} attempts; try again later"))
            raise error
        await asyncio.sleep(retries.delay(failures))


def describe(exc: BaseException) -> str:
    """A network failure in a few words, never a URL (a signed URL is a credential while it lives)."""
    if isinstance(exc, TimeoutError):
        return "no answer before the deadline"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({_os_reason(exc.os_error)})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return str(exc) or type(exc).__name__
    return type(exc).__name__


def retry_after(value: str | None) -> float | None:
    """A Retry-After header's delay in seconds (the number form); None when absent or a date."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _os_reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error)
    return os.strerror(error.errno).lower()
