"""Per-key rolling-window rate limit, as the real API applies it to every API route.

At most N requests in any rolling 60 s window; a rejected request does not consume budget
(otherwise a client that keeps retrying would never get back in).  No Retry-After or
X-RateLimit-* headers exist on the real API, so the limiter only answers yes/no.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._window = window
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, limit: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True

    def reset(self) -> None:
        self._hits.clear()
