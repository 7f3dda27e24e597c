"""margen-mirror: mirror the Margen attack-data corpus to local disk.

Library use (an ETL step)::

    import mirror
    report = await mirror.sync("data/faces", benchmark="synthetic-face-v1",
                               filters={"kind": "fake", "skin_tone": ["dark", "brown"]})
    table = mirror.open_manifest("data/faces").to_table()

The API key comes from ``api_key=`` or ``api_key_file=`` if given, else from the file
``MARGEN_API_KEY_FILE`` names, else from ``MARGEN_API_KEY``.
Everything raised on purpose is a ``mirror.MirrorError`` (see ``mirror.errors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirror.lazy import lazy_exports

__all__ = [
    "sync", "sync_blocking", "plan", "open_manifest", "load_job_file",
    "SyncJob", "Selection", "Limits", "Timeouts", "Retries", "SyncReport", "PlanReport",
    # errors (keep last: everything from MirrorError on lives in mirror.errors)
    "MirrorError", "UsageError", "DestinationError", "LockHeldError", "BudgetExhausted", "IntegrityError",
    "TransportError", "RedirectRefused", "ApiError", "InvalidParam", "InvalidCursor", "AmbiguousBenchmark",
    "Unauthorized", "InsufficientCredits", "ForbiddenTier", "ForbiddenScope", "NotFound", "UnknownBenchmark",
    "RateLimited", "ServerError",
]
__version__ = "0.1.0"

# Names resolve on first use, so ``import mirror.emulator`` (or the CLI's cheap verbs) does not
# load the whole engine, aiohttp client and pyarrow.
_HOMES = {
    "sync": "mirror.library", "sync_blocking": "mirror.library", "plan": "mirror.library",
    "open_manifest": "mirror.store", "load_job_file": "mirror.jobs", "SyncJob": "mirror.jobs",
    "Selection": "mirror.jobs", "Limits": "mirror.config", "Timeouts": "mirror.config", "Retries": "mirror.config",
    "SyncReport": "mirror.engine.outcome", "PlanReport": "mirror.engine.outcome",
    **dict.fromkeys(__all__[__all__.index("MirrorError"):], "mirror.errors"),
    "ray": "mirror.ray",        # the [ray] extra's face (read_mirror); Ray loads only when it is used
}

if TYPE_CHECKING:
    from mirror.config import Limits, Retries, Timeouts
    from mirror.engine.outcome import PlanReport, SyncReport
    from mirror.errors import (
        AmbiguousBenchmark,
        ApiError,
        BudgetExhausted,
        DestinationError,
        ForbiddenScope,
        ForbiddenTier,
        InsufficientCredits,
        IntegrityError,
        InvalidCursor,
        InvalidParam,
        LockHeldError,
        MirrorError,
        NotFound,
        RateLimited,
        RedirectRefused,
        ServerError,
        TransportError,
        Unauthorized,
        UnknownBenchmark,
        UsageError,
    )
    from mirror.jobs import Selection, SyncJob, load_job_file
    from mirror.library import plan, sync, sync_blocking
    from mirror.store import open_manifest


__getattr__, __dir__ = lazy_exports("mirror", _HOMES, globals(), __all__)
