"""One module per verb, in the order ``margen-mirror --help`` lists them (rclone's ``cmd/<verb>/``).

Each module has ``register(subparsers)``, which adds the verb's parser and sets its handler with
``set_defaults(handler=...)``; ``main`` calls ``args.handler(args)``. Registering is cheap: a
handler imports what its verb needs (the engine, the detectors, matplotlib, an emulator) when it
runs, so ``status`` never loads aiohttp and a sync never loads the detectors.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mirror.api.client import MargenClient

__all__ = ["Shown", "Subparsers", "api_verb", "ask_and_show", "reader_verb", "server_verb", "with_client"]

T = TypeVar("T")
Subparsers = Any      # argparse's private ``_SubParsersAction``
Shown = tuple[Any, list[str]]      # what a verb prints: the --json document, and the lines otherwise


async def with_client(args: argparse.Namespace, fn: Callable[[MargenClient], Awaitable[T]]) -> T:
    """``fn(client)`` with a client for the key and host the flags name (``benchmarks``, ``usage``, ``catalog``)."""
    from mirror.api.client import MargenClient
    from mirror.config import Retries, Timeouts, load_api_key, resolve_base_url
    from mirror.ratelimit import RateLimiter

    client = MargenClient(load_api_key(args.api_key_file), resolve_base_url(args.base_url),
                          limiter=RateLimiter(60), timeouts=Timeouts(), retries=Retries())
    async with client:
        return await fn(client)



def api_verb(subparsers: Subparsers, name: str, text: str,
             run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """The parser of a verb that talks to the API: its handler, and the flags every such verb has
    (``--base-url``, ``--api-key-file``, ``--json``, ``-q``); the verb adds its own after them."""
    from mirror.cli.args import add_common

    p = subparsers.add_parser(name, help=text)
    add_common(p)
    p.set_defaults(handler=run)
    return p


def ask_and_show(args: argparse.Namespace, ask: Callable[[MargenClient], Awaitable[T]],
                 show: Callable[[T], Shown]) -> int:
    """One API question, its answer printed (``benchmarks``, ``usage``, ``catalog``); exit 0."""
    from mirror.cli.output import emit
    from mirror.errors import EXIT_OK

    data, lines = show(asyncio.run(with_client(args, ask)))
    emit(data, as_json=args.json, lines=lines)
    return EXIT_OK


def reader_verb(subparsers: Subparsers, name: str, text: str,
                read: Callable[[Path, str], Shown]) -> argparse.ArgumentParser:
    """A verb that reads a mirrored DEST (``status``, ``compact``): ``read(dest, as_given)``, printed."""
    def run(args: argparse.Namespace) -> int:
        from mirror.cli.args import mirrored_dest
        from mirror.cli.output import emit
        from mirror.errors import EXIT_OK

        data, lines = read(mirrored_dest(args.dest), args.dest)
        emit(data, as_json=args.json, lines=lines)
        return EXIT_OK

    p = subparsers.add_parser(name, help=text)
    p.add_argument("dest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)
    return p


def server_verb(subparsers: Subparsers, name: str, text: str, module: str) -> argparse.ArgumentParser:
    """A verb that runs one of the emulators, whose command line is ``module``'s own: its flags are
    filled in (``add_arguments``) only when the verb parses or prints help, and its
    ``config_from_args`` and ``serve_config`` run it, so no other verb imports the emulator."""
    def run(args: argparse.Namespace) -> int:
        server = importlib.import_module(module)
        return int(server.serve_config(server.config_from_args(args, p)))

    p: argparse.ArgumentParser = subparsers.add_parser(
        name, help=text, fill=lambda parser: importlib.import_module(module).add_arguments(parser))
    p.set_defaults(handler=run)
    return p
