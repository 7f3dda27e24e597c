"""SIGINT and SIGTERM end a run the same way: what is finished is saved, one line says so, exit 130.

Ctrl-C sends SIGINT; systemd, docker, Kubernetes and ``timeout`` send SIGTERM. A sync hears both
as its ``stop`` event: it stops taking work, flushes the rows of the files already in place and
ends with its summary line, counts included. Every other verb hears SIGTERM as Ctrl-C
(``KeyboardInterrupt``), which ``main`` turns into one line and exit 130.

A signal the process was started with ignored (``nohup``, a background job of a shell without job
control) stays ignored: a Ctrl-C meant for the terminal's foreground job does not stop it.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["STOP_SIGNALS", "sigterm_as_ctrl_c", "stopped_by_signals"]

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ctrl_c(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def sigterm_as_ctrl_c() -> None:
    """From now on SIGTERM interrupts the process as Ctrl-C does (unless it is ignored)."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _ctrl_c)


async def stopped_by_signals(run: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """``await run(stop)`` with SIGINT and SIGTERM setting ``stop`` while it runs; the handlers the
    process had before come back afterwards. A second signal changes nothing: the run is already
    stopping, and its summary line is on its way."""
    # Imported here, not at the top: main imports this module before it parses the flags.
    import asyncio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    heard = [sig for sig, handler in before.items() if handler != signal.SIG_IGN]
    for sig in heard:
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run(stop)
    finally:
        for sig in heard:
            loop.remove_signal_handler(sig)
            signal.signal(sig, before[sig])
