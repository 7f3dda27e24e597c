"""Shared HTTP plumbing of the two services: their config, multipart intake with a byte cap, and faults.

Uploads are read part by part so a size limit is enforced while streaming, not after buffering the
whole body; an oversized part is drained (not stored) so the client still receives the error
response instead of a reset connection.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from mirror.emulator.detectors.jobs import JOBS_KEY

SERVICES = ("synthetiq", "deepfake-detection")
DEFAULT_TOKENS = {"synthetiq": "stq_demo_token", "deepfake-detection": "dfd_demo_token"}


@dataclass(frozen=True)
class DetectorEmulatorConfig:
    """One emulated detection service. ``token`` None means the service's demo token.

    ``processing_seconds`` is how long every job stays unfinished; ``fail_rate`` is the probability
    that an API request (never an admin one) is answered 500; ``seed`` keys the fault dice and the
    detectors' per-image jitter, so two runs with one seed answer identically. ``rate_limit``
    (0: none) is how many API requests the token may make in any rolling ``rate_window_s``; past
    it the service answers 429, as a real one would.
    """

    service: str
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    data_dir: Path | None = None
    processing_seconds: float = 0.3
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    seed: int = 0
    rate_limit: int = 0
    rate_window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"service must be one of {SERVICES}, not {self.service!r}")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the detector emulators only listen on loopback")
        if not 0.0 <= self.fail_rate <= 1.0 or self.processing_seconds < 0 or self.latency_ms < 0:
            raise ValueError("fail_rate in [0, 1], processing_seconds >= 0 and latency_ms >= 0")
        if self.rate_limit < 0 or self.rate_window_s <= 0:
            raise ValueError("rate_limit >= 0 and rate_window_s > 0")

    @property
    def api_token(self) -> str:
        return self.token if self.token is not None else DEFAULT_TOKENS[self.service]


CONFIG_KEY: web.AppKey[DetectorEmulatorConfig] = web.AppKey("detector_config", DetectorEmulatorConfig)


class TooLarge(Exception):
    """A multipart part exceeded its byte cap."""

    def __init__(self, field: str, limit: int) -> None:
        super().__init__(f"{field} exceeds {limit} bytes")
        self.field, self.limit = field, limit


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart body."""

    field: str
    filename: str
    content_type: str
    data: bytes


async def read_form(request: web.Request, limit: int, total_limit: int | None = None
                    ) -> tuple[dict[str, str], list[Upload]]:
    """Text fields and file parts of a multipart/form-data body, each file capped at ``limit`` bytes.

    Raises ``TooLarge`` after draining the body, and ``ValueError`` if the body is not multipart.
    """
    if not request.content_type.startswith("multipart/form-data"):
        raise ValueError("expected multipart/form-data")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    files: list[Upload] = []
    overflow: TooLarge | None = None
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.read_chunk(1 << 20):
            size += len(chunk)
            total += len(chunk)
            if size > limit or (total_limit is not None and total > total_limit):
                overflow = overflow or TooLarge(part.name, limit if size > limit else total_limit or limit)
                chunks.clear()
            elif overflow is None:
                chunks.append(chunk)
        if overflow is not None:
            continue
        data = b"".join(chunks)
        if part.filename is None:
            fields[part.name] = data.decode("utf-8", "replace")
        else:
            ctype = part.headers.get("Content-Type", "application/octet-stream")
            files.append(Upload(part.name, part.filename, ctype, data))
    if overflow is not None:
        raise overflow
    return fields, files


def fault_middleware(config: DetectorEmulatorConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    """``rate_limit``, ``latency_ms`` and ``fail_rate`` on every API request (admin routes are exempt)."""
    dice = random.Random(f"faults/{config.service}/{config.seed}")
    window: deque[float] = deque()          # arrival times of the requests let through in the window

    @web.middleware
    async def faults(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if request.path.startswith("/_admin"):
            return await handler(request)
        counters = request.app[JOBS_KEY].counters
        if config.rate_limit:
            now = time.monotonic()
            while window and window[0] <= now - config.rate_window_s:
                window.popleft()
            if len(window) >= config.rate_limit:
                counters.rate_limited += 1
                return web.json_response({"error": "rate limit exceeded"}, status=429)
            window.append(now)
            counters.max_in_window = max(counters.max_in_window, len(window))
        counters.api_requests += 1
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.fail_rate > 0 and dice.random() < config.fail_rate:
            request.app[JOBS_KEY].counters.injected_failures += 1
            return web.Response(status=500, text="Internal Server Error")
        return await handler(request)

    return faults


def is_loopback_host(host: str | None) -> bool:
    """Only loopback targets may be fetched or called back: this machine sends nothing off-host."""
    return (host or "").strip("[]").lower() in ("127.0.0.1", "localhost", "::1")
