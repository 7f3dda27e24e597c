"""Typed value objects for how a run behaves, and where the API key comes from.

Kept apart from the code that uses them so the CLI, job files and library callers all build the
same objects, and so a reader sees every knob in one place.
"""

from __future__ import annotations

import math
import os
import random
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from mirror.errors import UsageError

__all__ = ["DEFAULT_BASE_URL", "KEY_SHAPE", "ApiKey", "Limits", "Timeouts", "Retries", "load_api_key",
           "looks_like_key", "resolve_base_url"]

DEFAULT_BASE_URL = "https://www.margensoftware.com"   # the canonical host: the apex redirects, dropping auth
KEY_SHAPE = re.compile(r"mgn_(?:live|test)_", re.IGNORECASE)   # how every Margen key begins
_TOKEN = re.compile(r"[A-Za-z0-9_+=-]{20,}")                    # no dot, no slash: not a file name


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


def looks_like_key(text: str) -> bool:
    """True for a string that may be a key rather than a path or a word, so it is never printed:
    anything holding ``mgn_live_``/``mgn_test_``, or a long run of token characters with no dot or
    slash and the look of random ones (several digits, or both cases), such as another service's key."""
    if KEY_SHAPE.search(text):
        return True
    if not _TOKEN.fullmatch(text):
        return False
    return sum(c.isdigit() for c in text) >= 4 or (text.lower() != text and text.upper() != text)


def load_api_key(key_file: str | os.PathLike[str] | None = None) -> ApiKey:
    """The key, never from a flag: from ``key_file`` if given (``--api-key-file``), else from the file
    ``$MARGEN_API_KEY_FILE`` names, else from ``$MARGEN_API_KEY``. When both variables are set the
    file wins: it is the more deliberate setting (a cron job exports it)."""
    if key_file is not None:
        return _read_key_file(os.fspath(key_file), "--api-key-file")
    env_file = os.environ.get("MARGEN_API_KEY_FILE", "")
    if env_file.strip():
        return _read_key_file(env_file.strip(), "$MARGEN_API_KEY_FILE")
    value = os.environ.get("MARGEN_API_KEY", "")
    if not value.strip():
        raise UsageError("no API key: pass --api-key-file FILE (a file only you can read), or set $MARGEN_API_KEY_FILE "
                         "or $MARGEN_API_KEY without typing the key on the command line "
                         "(read -rs MARGEN_API_KEY; export MARGEN_API_KEY)")
    return ApiKey(value)


def _read_key_file(name: str, source: str) -> ApiKey:
    """Read a key file the way ssh reads a private key: one the user owns must be theirs alone.

    When the file cannot be read, ``name`` is printed only if it cannot be a key itself
    (``looks_like_key``): a key pasted where its file's path belongs stays off the screen and out
    of the logs.
    """
    path = Path(name).expanduser()
    where = name if source.startswith("-") else f"{name} (from {source})"
    try:
        st = path.stat()
        if (os.name == "posix" and stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()
                and st.st_mode & 0o077):
            raise UsageError(f"the API key file {where} is open to group or others (mode {st.st_mode & 0o777:04o}); "
                             f"make it yours alone: chmod 600 {shlex.quote(name)}")
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise UsageError(f"the API key file {where} is empty; it should hold the key on one line")
        return ApiKey(text)
    except OSError as exc:
        if looks_like_key(name):
            what = f"{source} takes" if source.startswith("-") else f"{source} holds"
            raise UsageError(f"{what} a path to a file holding the key, not the key itself (the value is not shown "
                             "in case it is one); put the key in a file only you can read (chmod 600) and give "
                             "its path") from None
        raise UsageError(f"cannot read the API key file {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the API key file {where} is not text; it should hold the key on one line") from None


def resolve_base_url(base_url: str | None = None) -> str:
    url = (base_url or os.environ.get("MARGEN_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"base URL {url!r} must start with http:// or https://")
    return url


@dataclass(frozen=True)
class Limits:
    """How hard a run may push: API requests per minute for the key, and requests in flight.

    ``concurrency`` is how many items are in flight at once, each being reserved or fetched by a
    worker of its own (an item costs two round trips); the rate limit, not this, paces the API side.
    """

    rate_limit: float = 60.0        # the API's documented default per-key limit
    concurrency: int = 128          # items in flight (each worker reserves, then fetches)
    max_image_bytes: int = 50 * 2**20

    @property
    def connections(self) -> int:
        """Connections in the pool the API client and the storage fetcher share: one per worker
        (a worker holds one at a time: it reserves, then fetches), plus a few for the page walker and
        the probe: a run starts with every worker reserving at once (fewer was slower:
        docs/design.md)."""
        return self.concurrency + 4

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_limit) and self.rate_limit > 0):
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
        if not all(math.isfinite(t) and t > 0 for t in (self.api, self.storage, self.connect)):
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
