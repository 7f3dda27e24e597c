"""How the CLI's process is tuned for a run: Arrow's allocator and the garbage collector.

Only the CLI does this: a library call leaves the caller's process as it found it. The figures
behind both choices are in docs/design.md.
"""

from __future__ import annotations

import gc
import os

__all__ = ["fix_mmap_threshold", "tune_gc", "use_system_allocator"]


def use_system_allocator() -> None:
    """Arrow's default allocator (mimalloc) keeps freed pages for reuse, so a long sync's peak stays
    resident; the C library's malloc hands them back (``release_unused``). Set before pyarrow is
    imported, the choice covers Arrow's C++ internals too, which ``pa.set_memory_pool`` does not
    reach. A value the user set wins."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def fix_mmap_threshold() -> None:
    """A fixed mmap threshold for the C library's malloc (glibc; elsewhere a no-op).

    glibc raises the threshold each time a large block is freed, so later large blocks (a release
    part read into memory, the images decoded from it) come from the heap and fragment it: a
    release pull's peak then grows with the size of its parts. Fixed at its initial 128 KiB, the
    peak stays put (figures: docs/design.md)."""
    import ctypes
    try:
        ctypes.CDLL(None).mallopt(-3, 128 * 1024)        # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def tune_gc() -> None:
    """Fewer and smaller garbage-collector passes for a process that allocates per request.

    What the imports created lives as long as the process: frozen, it is no longer scanned by every
    full collection. Most of a run's objects are freed by reference counting, so the young
    generation is collected every 10,000 allocations instead of 700.

    ``main`` calls it before parsing, and a verb that imports the engine calls it again once the
    engine is imported: imports leave a full collection due, and one that lands in the run would
    scan every object of pyarrow, aiohttp and numpy. Figures: docs/design.md.
    """
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
