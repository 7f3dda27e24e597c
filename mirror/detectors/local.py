"""A user's own detector: ``python:package.module:NAME``, called in a thread or process pool.

``NAME`` is a function, or a class constructed once (no arguments) when the detector opens, so a
model loads once per run (once per worker under ``--ray``); the function or instance takes the
file's path (a ``str``), or its bytes when its first parameter is annotated ``bytes`` or
``input="bytes"`` is given, and returns P(fake) in 0..1. A *batch* detector says so with a
``batch_input`` attribute (``"path"``, ``"bytes"`` or ``"array"``: H×W×3 uint8 RGB): it is called
with a list of those and returns one P(fake) per input, in order; the files in flight at once
(``concurrency``) are gathered into one call. Calls run off the event loop so a slow model cannot
stall the run; ``pool="process"`` sidesteps the GIL for pure-Python functions (the function must
then be importable by name, which it is by construction). Local scoring costs nothing and is
deterministic, so it is never journaled: a killed run simply scores the unfinished files again.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import io
import json
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from mirror.detectors.base import DetectorFailed, Media, Prepared, Verdict
from mirror.detectors.options import LocalOptions, Pacing
from mirror.errors import UsageError

__all__ = ["LocalDetector", "BATCH_INPUTS"]

BATCH_INPUTS = ("path", "bytes", "array")     # what a batch detector's list holds
_LINGER_S = 0.05                              # a batch waits this long for more files before it runs


class LocalDetector:
    remote = False
    retry_rejected = False

    def __init__(self, name: str, fn: Callable[[Any], Any], *, wants_bytes: bool, pool: str = "thread",
                 workers: int = 4, batch_input: str | None = None) -> None:
        self.name = name
        self.fn = fn                # a class is replaced by its instance when the detector opens
        self.wants_bytes = wants_bytes or batch_input in ("bytes", "array")
        self.pool = pool
        self.workers = workers      # threads for a per-file callable; the largest batch for a batch one
        self.batch_input = batch_input
        self._executor: Executor | None = None
        self._results: dict[str, float] = {}
        self._batcher: _Batcher | None = None

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
        batch_input = getattr(fn, "batch_input", None)
        if batch_input is not None and batch_input not in BATCH_INPUTS:
            raise UsageError(f"{spec}.batch_input must be one of {', '.join(BATCH_INPUTS)}, not {batch_input!r}")
        is_class = inspect.isclass(fn)
        if is_class and not any("__call__" in vars(c) for c in fn.__mro__[:-1]):
            raise UsageError(f"{spec} is a class without __call__: give it one that takes a file (or a list)")
        if is_class and options.pool == "process":
            raise UsageError(f"{spec} is a class: it runs in one process (--pool thread), or one per --ray worker")
        per_file = fn.__call__ if is_class else fn
        wants_bytes = options.input == "bytes" if options.input else _first_param_is_bytes(per_file, is_class)
        return cls(spec, fn, wants_bytes=wants_bytes, pool=options.pool, workers=pacing.concurrency,
                   batch_input=batch_input)

    async def __aenter__(self) -> LocalDetector:
        if inspect.isclass(self.fn):        # the model loads here, once, off the event loop
            try:
                self.fn = await asyncio.to_thread(self.fn)
            except Exception as exc:
                raise DetectorFailed(f"{self.name}: constructing it raised {type(exc).__name__}: "
                                     f"{str(exc)[:200]}") from None
        if self.batch_input is not None:    # one batch at a time, in one thread
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="detector")
            self._batcher = _Batcher(self._executor, self._call_batch, self.workers)
        else:
            self._executor = (ProcessPoolExecutor(self.workers) if self.pool == "process"
                              else ThreadPoolExecutor(self.workers, thread_name_prefix="detector"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._batcher = None

    def prepare(self, media: Media) -> Prepared:
        return Prepared(media, media.path.read_bytes() if self.wants_bytes else b"", "local")

    async def submit(self, prepared: Prepared) -> str:
        """Runs the function right away (a batch one with the files in flight); the handle names the result."""
        assert self._executor is not None, "use 'async with' on the detector"
        arg: Any = prepared.data if self.wants_bytes else str(prepared.media.path)
        if self._batcher is not None:
            value = await self._batcher.call(arg)
        else:
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

    def _call_batch(self, inputs: list[Any]) -> list[Any]:
        """One call of a batch detector, in the worker thread: a value or a DetectorFailed per input, in order."""
        out: list[Any] = list(inputs)
        if self.batch_input == "array":
            for i, data in enumerate(inputs):
                try:
                    out[i] = _decode(data)
                except Exception as exc:        # not an image PIL can read: this file's error only
                    out[i] = DetectorFailed(f"{self.name}: cannot decode the image ({type(exc).__name__})")
        ready = [i for i, value in enumerate(out) if not isinstance(value, DetectorFailed)]
        if not ready:
            return out
        try:
            values = list(self.fn([out[i] for i in ready]))
        except Exception as exc:                # the user's code: every file of the batch fails
            raise DetectorFailed(f"{self.name} raised {type(exc).__name__}: {str(exc)[:200]}") from None
        if len(values) != len(ready):
            raise DetectorFailed(f"{self.name} returned {len(values)} values for {len(ready)} inputs")
        for i, value in zip(ready, values, strict=True):
            out[i] = value
        return out


class _Batcher:
    """Gathers concurrent ``call``s into one call of ``run`` (in ``executor``): ``size`` inputs, or
    what arrived within ``_LINGER_S`` of the first; each caller gets its own value back, in order."""

    def __init__(self, executor: Executor, run: Callable[[list[Any]], list[Any]], size: int) -> None:
        self._executor = executor
        self._run = run
        self._size = max(1, size)
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(_LINGER_S, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._settle(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _settle(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            values = await asyncio.get_running_loop().run_in_executor(self._executor, self._run,
                                                                      [item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), value in zip(batch, values, strict=True):
            if future.done():
                continue
            if isinstance(value, DetectorFailed):
                future.set_exception(value)
            else:
                future.set_result(value)


def _decode(data: bytes) -> Any:
    """The image as an H×W×3 uint8 RGB array (PIL and numpy load only for ``batch_input="array"``)."""
    import numpy as np
    from PIL import Image
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _first_param_is_bytes(fn: Callable[..., Any], skip_self: bool = False) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())[1 if skip_self else 0:]
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
