"""Joining or starting the Ray cluster a run works on, and keeping Ray's own output off the terminal.

``--ray`` alone starts a local cluster on this machine (every core, no dashboard) and stops it at
the end; ``--ray ADDRESS`` (or ``$RAY_ADDRESS``) joins an existing one and only disconnects. A
process that is already connected (a library caller who ran ``ray.init`` itself) is used as it
is. An address nobody listens on is refused in seconds: Ray itself would retry for minutes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from mirror.errors import UsageError

__all__ = ["ray_session", "check_address", "stderr_to"]

NAMESPACE = "margen-mirror"         # where the named actors (pacers) live
_HOST_PORT = re.compile(r"(?:ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})")


def check_address(address: str) -> str:
    """``address`` if it names a cluster (``host:port``, ``ray://host:port`` or ``auto``); else UsageError."""
    address = address.strip()
    if address == "auto":
        return address
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 0 < int(match.group(2)) < 65536:
        hint = " (put KEY=V filters before --ray)" if "=" in address else ""
        raise UsageError(f"--ray takes a cluster address like 10.0.0.5:6379, ray://10.0.0.5:10001 or auto, "
                         f"not {address!r}{hint}")
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
                         "'ray start --head' or fix the address") from None
    return address


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[bool]:
    """Connected to Ray for the block; yields True when this call started a local cluster.

    ``address`` None: ``$RAY_ADDRESS`` if set, else a new local cluster with every core of this
    machine. Ray's progress bars are off and its loggers say only warnings and errors.
    """
    import ray
    import ray.data

    started = connected = False
    if not ray.is_initialized():
        connected = True
        address = address or os.environ.get("RAY_ADDRESS") or None
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=check_address(address), **quiet)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
            started = True
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield started
    finally:
        if connected:
            ray.shutdown()


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 goes to ``path`` for the block (Ray's C++ and Python logs alike), then back.

    The CLI's contract is one summary line on stderr; Ray writes startup notes and worker
    restarts there from threads of its own, so only the descriptor itself keeps them apart.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
