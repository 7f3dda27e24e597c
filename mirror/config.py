"""Typed value objects for how a run behaves, and where the API key comes from.

Kept apart from the code that uses them so the CLI, job files and library callers all build the
same objects, and so a reader sees every knob in one place.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from mirror.errors import UsageError

__all__ = ["DEFAULT_BASE_URL", "ApiKey", "Limits", "Timeouts", "Retries", "load_api_key", "resolve_base_url"]

DEFAULT_BASE_URL = "https://www.margensoftware.com"   # the canonical host: the apex redirects, dropping auth


class ApiKey:
    """The API key, kept out of every repr, str, log line and exception message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise UsageError("the API key is empty; set MARGEN_API_KEY or pass --api-key-file FILE")
        self._value = value

    def reveal(self) -> str:
        """The raw key, for the Authorization header only."""
        return self._value

    def redact(self, text: str) -> str:
        return text.replace(self._value, "mgn_***")

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__


def load_api_key(key_file: str | os.PathLike[str] | None = None) -> ApiKey:
    """The key from ``key_file`` if given, else from ``MARGEN_API_KEY``; never from a flag."""
    if key_file is not None:
        try:
            return ApiKey(Path(key_file).expanduser().read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read the API key file {key_file}: {exc.strerror}") from None
    value = os.environ.get("MARGEN_API_KEY", "")
    if not value.strip():
        raise UsageError("no API key: pass --api-key-file FILE (a file only you can read), or set $MARGEN_API_KEY "
                         "without typing it on the command line (read -rs MARGEN_API_KEY; export MARGEN_API_KEY)")
    return ApiKey(value)


def resolve_base_url(base_url: str | None = None) -> str:
    url = (base_url or os.environ.get("MARGEN_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"base URL {url!r} must start with http:// or https://")
    return url


@dataclass(frozen=True)
class Limits:
    """How hard a run may push: API requests per minute for the key, and requests in flight.

    ``concurrency`` is how many items are in flight at once, each being reserved or fetched by a
    worker of its own. An item costs two round trips, so 128 keeps ~2,500 images/s flowing at
    25 ms per request (a far API); the rate limit, not this, paces the API side.
    """

    rate_limit: float = 60.0        # the API's documented default per-key limit
    concurrency: int = 128          # items in flight (each worker reserves, then fetches)
    max_image_bytes: int = 50 * 2**20

    @property
    def connections(self) -> int:
        """Connections in the pool the API client and the storage fetcher share: one per worker
        (a worker holds one at a time: it reserves, then fetches), plus a few for the page walker and
        the probe. Half as many was no faster on loopback at 0 ms (2,000 and 10,000 items, within
        noise), and at 20 ms per request it was 6% slower on 500 items: a run starts with every
        worker reserving at once, and half of them waited for a connection."""
        return self.concurrency + 4

    def __post_init__(self) -> None:
        if self.rate_limit <= 0:
            raise UsageError("--rate-limit must be a positive number of requests per minute")
        if not 1 <= self.concurrency <= 1024:
            raise UsageError("--concurrency must be between 1 and 1024")


@dataclass(frozen=True)
class Timeouts:
    """Every request has a total deadline, so nothing can hang."""

    api: float = 30.0
    storage: float = 60.0
    connect: float = 10.0

    def __post_init__(self) -> None:
        if min(self.api, self.storage, self.connect) <= 0:
            raise UsageError("--timeout must be a positive number of seconds")


_JITTER = random.Random()


@dataclass(frozen=True)
class Retries:
    """Retry budget for transient failures (5xx, dropped connections, deadlines).

    The policy itself (which outcome is retried, how long 429s are waited out) is applied in one
    place, ``mirror.api.retry``; ``delay`` is its back-off.
    """

    attempts: int = 6
    backoff: float = 0.25
    max_backoff: float = 15.0
    rate_limit_patience: float = 900.0   # seconds of consecutive 429s tolerated before giving up

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("--retries must be at least 1")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure in a row: ``backoff * 2**failures``, capped
        at ``max_backoff``, jittered to 50-100% so callers that failed together do not retry together."""
        cap = min(self.max_backoff, self.backoff * 2 ** failures)
        return cap * (0.5 + (rng or _JITTER).random() / 2)
