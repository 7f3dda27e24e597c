"""How the CLI's process is tuned for a run: Arrow's allocator and the garbage collector.

Only the CLI does this: a library call leaves the caller's process as it found it.
"""

from __future__ import annotations

import gc
import os

__all__ = ["tune_gc", "use_system_allocator"]


def use_system_allocator() -> None:
    """Arrow's default allocator (mimalloc) keeps freed pages for reuse, so a long sync's peak stays
    resident; the C library's malloc hands them back (``release_unused``). Set before pyarrow is
    imported, the choice covers Arrow's C++ internals too, which ``pa.set_memory_pool`` does not
    reach (measured: 18 MB less resident in the middle of a 20k-item sync). A value the user set wins."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def tune_gc() -> None:
    """Fewer and smaller garbage-collector passes for a process that allocates per request.

    What the imports created lives as long as the process: frozen, it is no longer scanned by every
    full collection. Most of a run's objects are freed by reference counting; the young generation
    is collected every 10,000 allocations instead of 700 (mypy uses 200,000, freqtrade 50,000).
    Measured on a 500-item sync: ~22 ms of collection down to ~3 ms.

    ``main`` calls it before parsing, and a verb that imports the engine calls it again once the
    engine is imported: imports leave a full collection due, and one that lands in the run scans
    every object of pyarrow, aiohttp and numpy (30-50 ms, measured in 4 of 4 runs of a 500-item
    sync); frozen, they are not scanned.
    """
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
