"""One module per verb, in the order ``margen-mirror --help`` lists them (rclone's ``cmd/<verb>/``).

Each module has ``register(subparsers)``, which adds the verb's parser and sets its handler with
``set_defaults(handler=...)``; ``main`` calls ``args.handler(args)``. Registering is cheap: a
handler imports what its verb needs (the engine, the detectors, matplotlib, an emulator) when it
runs, so ``status`` never loads aiohttp and a sync never loads the detectors.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mirror.api.client import MargenClient

__all__ = ["with_client"]

T = TypeVar("T")


async def with_client(args: argparse.Namespace, fn: Callable[[MargenClient], Awaitable[T]]) -> T:
    """``fn(client)`` with a client for the key and host the flags name (``benchmarks``, ``usage``, ``catalog``)."""
    from mirror.api.client import MargenClient
    from mirror.config import Retries, Timeouts, load_api_key, resolve_base_url
    from mirror.ratelimit import RateLimiter

    client = MargenClient(load_api_key(args.api_key_file), resolve_base_url(args.base_url),
                          limiter=RateLimiter(60), timeouts=Timeouts(), retries=Retries())
    async with client:
        return await fn(client)


Handler = Callable[[argparse.Namespace], int]
Subparsers = Any      # argparse's private ``_SubParsersAction``
