"""The library face of margen-mirror: ``sync``, ``sync_blocking`` and ``plan`` (re-exported by ``mirror``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping

from mirror.config import ApiKey, Limits, Timeouts, load_api_key, resolve_base_url
from mirror.engine.outcome import PlanReport, SyncReport
from mirror.engine.sync import run_plan, run_sync
from mirror.jobs import Selection, SyncJob
from mirror.store.destination import sync_dest

__all__ = ["sync", "sync_blocking", "plan"]

Filters = Mapping[str, str | Iterable[str]]


def _job(dest: str | os.PathLike[str] | SyncJob, benchmark: str | None, filters: Filters | None,
         include_metadata: bool, lineage: bool, distinct_identities: bool, max_credits: int | None,
         limits: Limits | None) -> SyncJob:
    if isinstance(dest, SyncJob):
        return dest
    values = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in (filters or {}).items()}
    selection = Selection(benchmark=benchmark, filters=values, lineage=lineage,
                          distinct_identities=distinct_identities, include_metadata=include_metadata)
    return SyncJob(selection=selection, dest=sync_dest(dest), max_credits=max_credits, limits=limits or Limits())


def _key(api_key: str | ApiKey | None, api_key_file: str | os.PathLike[str] | None) -> ApiKey:
    if isinstance(api_key, ApiKey):
        return api_key
    return ApiKey(api_key) if api_key is not None else load_api_key(api_key_file)


async def sync(dest: str | os.PathLike[str] | SyncJob, *, benchmark: str | None = None,
               filters: Filters | None = None, include_metadata: bool = False, lineage: bool = False,
               distinct_identities: bool = False, max_credits: int | None = None, limits: Limits | None = None,
               api_key: str | ApiKey | None = None, api_key_file: str | os.PathLike[str] | None = None,
               base_url: str | None = None, timeouts: Timeouts | None = None,
               stop: asyncio.Event | None = None, source: str = "per-image", release: str | None = None) -> SyncReport:
    """Mirror a selection into ``dest`` (or run a ``SyncJob``); returns what happened.

    Resumable and idempotent: run it again after any failure and it continues; run it again on a
    complete mirror and it costs two API calls. Raises ``MirrorError`` subclasses for input, auth,
    lock and transport problems (a refused run creates nothing in ``dest``); budget stops and
    partial runs are reported in ``report.status``. Setting ``stop`` ends the run early: what is
    finished is saved, and the report says ``interrupted`` (a cancellation stays a cancellation).
    ``source="release"`` buys and pulls whole shard sets as a bulk release (``release`` pins one),
    ``"auto"`` does so when that covers the selection for no more credits; same DEST either way.
    """
    job = _job(dest, benchmark, filters, include_metadata, lineage, distinct_identities, max_credits, limits)
    return await run_sync(job, api_key=_key(api_key, api_key_file), base_url=resolve_base_url(base_url),
                          timeouts=timeouts or Timeouts(), stop=stop, source=source, release=release)


def sync_blocking(dest: str | os.PathLike[str] | SyncJob, **kwargs: object) -> SyncReport:
    """``sync`` for code without an event loop (scripts, notebooks without top-level await)."""
    return asyncio.run(sync(dest, **kwargs))  # type: ignore[arg-type]


async def plan(dest: str | os.PathLike[str] | SyncJob, *, benchmark: str | None = None,
               filters: Filters | None = None, lineage: bool = False, distinct_identities: bool = False,
               max_credits: int | None = None, api_key: str | ApiKey | None = None,
               api_key_file: str | os.PathLike[str] | None = None, base_url: str | None = None,
               source: str = "per-image", release: str | None = None) -> PlanReport:
    """What ``sync`` would spend, per image and as a release, and which way ``source`` takes; spends nothing."""
    job = _job(dest, benchmark, filters, False, lineage, distinct_identities, max_credits, None)
    return await run_plan(job, api_key=_key(api_key, api_key_file), base_url=resolve_base_url(base_url),
                          source=source, release=release)
