"""A user's own detector: ``python:package.module:function``, called in a thread or process pool.

The function takes the file's path (a ``str``), or its bytes when its first parameter is
annotated ``bytes`` or ``input="bytes"`` is given, and returns P(fake) in 0..1. It runs off the
event loop so a slow model cannot stall the run; ``pool="process"`` sidesteps the GIL for
pure-Python models (the function must then be importable by name, which it is by construction).
Local scoring costs nothing and is deterministic, so it is never journaled: a killed run simply
scores the unfinished files again.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from mirror.detectors.base import DetectorFailed, Media, Prepared, Verdict
from mirror.detectors.options import LocalOptions, Pacing
from mirror.errors import UsageError

__all__ = ["LocalDetector"]


class LocalDetector:
    remote = False
    retry_rejected = False

    def __init__(self, name: str, fn: Callable[[Any], Any], *, wants_bytes: bool, pool: str = "thread",
                 workers: int = 4) -> None:
        self.name = name
        self.fn = fn
        self.wants_bytes = wants_bytes
        self.pool = pool
        self.workers = workers
        self._executor: Executor | None = None
        self._results: dict[str, float] = {}

    @classmethod
    def open(cls, spec: str, options: LocalOptions, pacing: Pacing) -> LocalDetector:
        """The function named by ``spec`` (``python:package.module:function``), in ``pacing.concurrency`` workers."""
        target = spec.removeprefix("python:")
        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise UsageError(f"write a local detector as python:package.module:function, not {spec!r}")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            raise UsageError(f"cannot import {module_name!r} for {spec}: {exc}") from None
        except AttributeError:
            raise UsageError(f"{module_name} has no {attr!r} for {spec}") from None
        if not callable(fn):
            raise UsageError(f"{spec} is not callable")
        wants_bytes = options.input == "bytes" if options.input else _first_param_is_bytes(fn)
        return cls(spec, fn, wants_bytes=wants_bytes, pool=options.pool, workers=pacing.concurrency)

    async def __aenter__(self) -> LocalDetector:
        self._executor = (ProcessPoolExecutor(self.workers) if self.pool == "process"
                          else ThreadPoolExecutor(self.workers, thread_name_prefix="detector"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def prepare(self, media: Media) -> Prepared:
        return Prepared(media, media.path.read_bytes() if self.wants_bytes else b"", "local")

    async def submit(self, prepared: Prepared) -> str:
        """Runs the function right away; the handle names the in-memory result."""
        assert self._executor is not None, "use 'async with' on the detector"
        arg: Any = prepared.data if self.wants_bytes else str(prepared.media.path)
        try:
            value = await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, arg)
        except Exception as exc:            # the user's code: any failure is this file's error
            raise DetectorFailed(f"{self.name} raised {type(exc).__name__}: {str(exc)[:200]}") from None
        p = _probability(value)
        if p is None:
            raise DetectorFailed(f"{self.name} returned {value!r}, not a probability in 0..1")
        handle = uuid.uuid4().hex
        self._results[handle] = p
        return handle

    async def wait(self, job: str, media: Media) -> Verdict:
        p = self._results.pop(job)
        return Verdict(label="fake" if p >= 0.5 else "real", p_fake=p, raw=json.dumps({"p_fake": p}))

    async def reconcile(self, media: Media) -> str | None:
        return None


def _first_param_is_bytes(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    annotation = params[0].annotation
    return annotation is bytes or annotation == "bytes"


def _probability(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)        # numpy scalars, 0-d tensors
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if 0.0 <= value <= 1.0 else None
