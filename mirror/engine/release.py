"""Mirroring through a bulk release: decide, buy once, then place its parts (``release_parts``).

A sync with ``--source release|auto`` comes here after its selection is validated and its no-op
shortcut did not apply; every sync comes here first when the journal holds a purchase an earlier
run did not finish. The money rules are those of a reservation:

* Nothing is bought before ``--max-credits`` and the balance were checked against the quote, an
  upper bound of ``credits_required`` (``release_plan``): the release is bought whole or not at all.
* The purchase is journaled before its request is sent, with what was known then (the quote,
  how many of the release's images the account owned and how many were in DEST). A later run
  finishes it: with the answer journaled it only re-pulls (free) for fresh URLs and fetches the
  parts not placed yet; without one it counts what the account owns, and if nothing was bought
  since, the request never reached the server and the purchase is dropped, else it re-pulls.
* What the purchase cost is the answer's ``credits_required``, unless the answer came only on a
  retry or in a later run (a retry re-pulls, free): then it is what the account owns now minus
  what it owned before. Each row's ``charged`` is true when credits were spent and every image
  the account owned was already here (so each new row was bought), false when nothing was spent,
  and null otherwise: a pull does not say which images it charged.

After a release pull that left every image of the per-image selection here, the selection's
record is saved as a per-image walk's would be, so a per-image sync of it is a two-call no-op.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirror.api.client import MargenClient
from mirror.api.models import Release
from mirror.config import Limits, Retries, Timeouts
from mirror.engine.outcome import SyncReport
from mirror.engine.outlook import Outlook
from mirror.engine.pages import Probe, probe
from mirror.engine.release_parts import PartsRun
from mirror.engine.release_plan import (
    SOURCES,
    ReleasePlan,
    WayCosts,
    adds_reals,
    choose,
    list_releases,
    per_image_costs,
    quote,
    release_calls,
    release_filters,
    release_selections,
)
from mirror.engine.seen import SeenIds
from mirror.errors import InsufficientCredits, RateLimited, ServerError, TransportError, UsageError
from mirror.inspect.local import count_local
from mirror.jobs import Selection
from mirror.store import Layout, ManifestIndex, compact
from mirror.store.destination import shown_dest, url_scheme
from mirror.store.reservations import Purchase, ReservationLog
from mirror.store.selections import SelectionRecord, SelectionStates

__all__ = ["Decision", "ReleaseRun", "ReleaseQuote", "check_source", "decide", "evaluate"]

_RETRYABLE = (TransportError, ServerError, RateLimited)


def check_source(dest: Path, source: str, release: str | None) -> None:
    """UsageError for a ``--source``/``--release`` a sync into ``dest`` cannot take, before anything is asked."""
    if source not in SOURCES:
        raise UsageError(f"unknown --source {source!r}; choose one of {', '.join(SOURCES)}")
    if release is not None and source == "per-image":
        raise UsageError("--release NAME pins a bulk release: add --source release (or auto)")
    if source != "per-image" and url_scheme(dest):
        raise UsageError(f"--source {source} places files in a local DEST only for now; sync into "
                         f"{shown_dest(dest)} with --source per-image")


@dataclass(frozen=True)
class ReleaseQuote:
    """What a release pull of a selection would be, known before anything is bought."""

    name: str
    filters: dict[str, list[str]]
    selections: list[Selection]      # the /items selections whose union the release holds
    counts: Probe                    # their images, owned and not (credits: at most ``remaining``)
    here: int                        # how many of them DEST holds


async def evaluate(client: MargenClient, where: Layout | str, selection: Selection, *, source: str, release: str | None,
                   counted: Probe | None, here: int | None, tier: str, balance: int | None, limits: Limits,
                   max_credits: int | None) -> tuple[ReleasePlan, ReleaseQuote | None]:
    """Both ways for ``selection`` and the one ``source`` takes, asking nothing that buys.

    ``counted``: the selection's own ``exclude_owned`` counts, when already asked (then a release of
    the same images needs no second count); ``here``: its images in DEST (``where``: a folder or a
    bucket URL)."""
    matching = counted.total_matching if counted else None
    to_charge = (0 if tier == "test" else counted.remaining) if counted else None
    per_image = per_image_costs(matching, here, to_charge, limits.rate_limit)
    filters, usable = release_filters(selection)
    listing = await list_releases(client, selection.benchmark, release) if filters is not None else None
    if filters is not None and listing is None:
        usable = "the server does not list its releases without a purchase"
    plan = ReleasePlan(source=source, choice="per-image", reason="", per_image=per_image)
    found: ReleaseQuote | None = None
    if listing is not None and filters is not None:
        plan = replace(plan, release=release or listing.name, available=listing.available, coverage=listing.coverage,
                       adds_reals=adds_reals(filters))
        if listing.coverage != "full":
            usable = (f"coverage {listing.coverage or 'unknown'}: this key's access does not line up with whole "
                      "shard sets (test keys never do)")
        else:
            selections = release_selections(selection, filters)
            counts = counted if counted is not None and len(selections) == 1 else await quote(client, selections)
            held = sum([await asyncio.to_thread(_count_here, where, s) for s in selections])
            found = ReleaseQuote(plan.release or "", filters, selections, counts, held)
            plan = replace(plan, release_costs=WayCosts.at_rate(max(0, counts.total_matching - held), counts.remaining,
                                                                release_calls(len(selections)), limits.rate_limit))
            if counts.total_matching == 0:
                usable = "no shard set matches these filters" + _values(listing)
    choice, reason = choose(source, per_image=per_image, release_costs=plan.release_costs, usable=usable,
                            max_credits=max_credits, balance=balance, tier=tier)
    return replace(plan, usable=usable, choice=choice, reason=reason), found


Decision = tuple[ReleasePlan, ReleaseQuote | None]


async def decide(client: MargenClient, layout: Layout, selection: Selection, *, source: str, release: str | None,
                 counted: Probe | None, limits: Limits, max_credits: int | None) -> Decision:
    """Which way a sync of ``selection`` takes (``evaluate``, with the counts it needs), before
    anything is bought or written: what ``--source release`` cannot serve is a UsageError here, so a
    refused run leaves nothing behind (``sync`` asks this before creating a new DEST)."""
    counted = counted or await probe(client, selection)
    usage = await client.usage()
    here = await asyncio.to_thread(_count_here, layout, selection)
    plan, found = await evaluate(client, layout, selection, source=source, release=release, counted=counted,
                                 here=here, tier=usage.tier, balance=usage.balance, limits=limits,
                                 max_credits=max_credits)
    if source == "release" and plan.usable:
        raise UsageError(f"--source release: {plan.usable}; use --source per-image for this selection")
    return plan, found


@dataclass
class ReleaseRun:
    """The release side of one sync (DEST locked and loaded, the client open)."""

    client: MargenClient
    layout: Layout
    index: ManifestIndex
    journal: ReservationLog
    states: SelectionStates
    report: SyncReport
    limits: Limits
    timeouts: Timeouts
    retries: Retries
    max_credits: int | None
    progress: Any = None                               # (images, bytes) placed, as a walk reports them
    on_total: Any = None                               # told what a purchase has ahead of it (an Outlook)
    seen: SeenIds = field(default_factory=SeenIds)     # ids this run gave a row, whichever purchase

    @classmethod
    def of(cls, run: Any) -> ReleaseRun:
        """The release side of a ``sync.SyncRun`` whose DEST is open (its client, DEST, report, limits)."""
        return cls(client=run.client, layout=run.layout, index=run.index, journal=run.journal, states=run.states,
                   report=run.report, limits=run.job.limits, timeouts=run.timeouts, retries=run.retries,
                   max_credits=run.job.max_credits, progress=run.progress, on_total=run.on_total)

    async def finish_purchases(self) -> bool:
        """Place what earlier runs bought and did not place (free re-pulls), before anything else.
        False when one could not be finished (its parts failed, or the budget stopped it): the run
        stops there, its status says why."""
        for purchase in list(self.journal.purchases.values()):
            if not await self._complete(purchase, fresh=None) and self.report.status != "complete":
                return False                  # stopped (budget, 402, failed parts); "complete": it was dropped
        return True

    async def pull(self, selection: Selection, *, source: str, release: str | None, counted: Probe | None,
                   decided: Decision | None = None) -> bool:
        """``--source release|auto`` once the no-op shortcut did not apply. True: the run is done (the
        release served it, or it stopped, or it could not serve and was asked for explicitly);
        False: go on per image (auto only). ``decided``: ``decide``'s answer, when asked already."""
        plan, found = decided or await decide(self.client, self.layout, selection, source=source, release=release,
                                              counted=counted, limits=self.limits, max_credits=self._budget_left())
        if plan.choice != "release":
            if source == "release":
                self._stop(plan.reason)       # the budget or the balance: nothing bought
            return source == "release"
        assert found is not None
        self.report.source, self.report.release = "release", found.name
        if found.counts.total_matching <= found.here and not found.counts.remaining:    # all here already
            rows, missing = await self._record(selection)
            self.report.message = (f"via release {found.name}: {rows} rows in the manifest" if self.report.mirrored
                                   else f"every image of release {found.name} for this selection is here already")
            return not missing or source == "release"
        spec = {"benchmark": selection.benchmark, "release": found.name, "filters": found.filters,
                "selections": [dict(s.filters) for s in found.selections], "quote": found.counts.remaining,
                "owned_before": found.counts.owned, "here_before": found.here}
        key = f"{selection.benchmark} {found.name} {json.dumps(found.filters, sort_keys=True)}"
        purchase = self.journal.purchases.get(key) or Purchase(key, spec)
        if not await self._complete(purchase, fresh=found.counts):
            return True                       # stopped: budget, 402 or failed parts (the status says)
        rows, missing = await self._record(selection)
        self.report.message = f"via release {found.name}: {rows} rows in the manifest"
        if missing and source == "release":
            self.report.message += (f"; {missing:,} image(s) of the selection are not in this release: run again "
                                    "with --source per-image (or auto) for them")
        return not missing or source == "release"

    # -- one purchase, from its request to its last part ----------------------------------------------
    async def _complete(self, purchase: Purchase, *, fresh: Probe | None) -> bool:
        """Buy (``fresh``: the counts just quoted) or finish ``purchase``; True once every part is placed."""
        spec = purchase.spec
        selections = [Selection(benchmark=spec["benchmark"], filters=f) for f in spec.get("selections") or []]
        if purchase.answer is None:
            counts = fresh or await quote(self.client, selections)
            if fresh is None and counts.owned == spec.get("owned_before") and spec.get("quote"):
                self.journal.purchase_done(purchase.key)     # its request never reached the server
                return False
            budget = self._budget_left()
            if budget is not None and counts.remaining > budget:
                self._stop(f"release {spec['release']} is bought whole, up to {counts.remaining:,} credits, more "
                           f"than the {budget:,} --max-credits leaves")
                return False
            if purchase.key not in self.journal.purchases:
                self.journal.purchasing(purchase)
            calls = self.client.api_calls
            try:
                bought = await self._request(spec)
            except _RETRYABLE as exc:                        # maybe bought: pending, the next run finds out
                return self._unfinished(spec, exc)
            except InsufficientCredits as exc:               # all or nothing: nothing was bought
                self.journal.purchase_done(purchase.key)
                balance = (await self.client.usage()).balance
                self._stop(f"release {spec['release']} needs {exc.required or counts.remaining:,} credits; the "
                           f"balance is {balance if balance is not None else 'unknown'}: top up, or use --source "
                           "per-image to buy part of the selection")
                return False
            credits = bought.credits_required
            if fresh is None or self.client.api_calls - calls > 1:      # the answer came on a re-pull
                credits = max(0, (await quote(self.client, selections)).owned - int(spec.get("owned_before") or 0))
            else:
                self.report.balance = bought.balance
            rows_charged = (None if spec.get("owned_before") != spec.get("here_before") else True) if credits else False
            self.journal.purchased(purchase.key, {"credits": credits, "items": bought.item_count,
                                                  "parts": len(bought.parts), "rows_charged": rows_charged})
            self.report.charged += credits
        else:
            try:
                bought = await self._request(spec)           # free: fresh URLs for the parts left
            except _RETRYABLE as exc:
                return self._unfinished(spec, exc)
            self.report.charged += bought.credits_required   # 0, unless the account lost what it owned
        self.report.release = self.report.release or spec["release"]
        mirrored = self.report.mirrored
        if self.on_total is not None and bought.item_count is not None:
            # the key's rate limit does not pace a release's parts: no per-image time estimate
            here = min(bought.item_count, int(spec.get("here_before") or 0))
            self.on_total(Outlook(total=bought.item_count, here=here, rate_limit=math.inf, report=self.report))
        answer = self.journal.purchases[purchase.key].answer or {}
        parts = PartsRun(layout=self.layout, pool=self.client.pool, journal=self.journal, index=self.index,
                         report=self.report, timeouts=self.timeouts, retries=self.retries, key=purchase.key,
                         rows_charged=answer.get("rows_charged"), renew=lambda: self._request(spec),
                         seen=self.seen, progress=self.progress)
        placed = await parts.run(bought)
        if fresh is None:                     # paid for by an earlier run, placed now
            self.report.recovered += self.report.mirrored - mirrored
        if not placed:
            self.report.status = "partial"
            self.report.message = (f"{parts.failed_parts} part(s) of release {spec['release']} failed; run the same "
                                   "command again to fetch them (free: the release is paid for)")
            return False
        self.journal.purchase_done(purchase.key)
        return True

    async def _request(self, spec: dict[str, Any]) -> Release:
        return await self.client.release(spec["benchmark"], release=spec["release"], filters=spec["filters"])

    async def _record(self, selection: Selection) -> tuple[int, int]:
        """Compact the manifest, and save the per-image selection's record when every image of it is
        here now (see the module docstring). (rows in the manifest, images of the selection not here)."""
        rows = await asyncio.to_thread(compact, self.layout)
        found = await probe(self.client, selection)
        if found is None:
            return rows, 0
        here = await asyncio.to_thread(_count_here, self.layout, selection)
        self.report.matching = found.total_matching
        missing = max(0, found.total_matching - here)
        if not missing and not found.remaining:
            self.states.put(selection.key, SelectionRecord(found.total_matching, "",
                                                           datetime.now(UTC).isoformat(timespec="seconds"), rows))
        return rows, missing or (1 if found.remaining else 0)

    def _unfinished(self, spec: dict[str, Any], exc: Exception) -> bool:
        self.report.status = "partial"
        self.report.message = (f"release {spec['release']}: {self.client.redact(str(exc))}; run the same command "
                               "again (what was bought is re-pulled free)")
        return False

    def _budget_left(self) -> int | None:
        return None if self.max_credits is None else max(0, self.max_credits - self.report.charged)

    def _stop(self, reason: str) -> None:
        self.report.status = "budget"
        self.report.message = f"stopped: {reason}; nothing was bought"


def _count_here(where: Layout | str, selection: Selection) -> int:
    """Rows of DEST's manifest in ``selection`` (0 for an empty DEST); ``where`` may be a bucket URL."""
    if isinstance(where, Layout) and not any(where.manifest.glob("*.parquet")):
        return 0
    return count_local(where, selection)


def _values(listing: Release) -> str:
    values = listing.available_filter_values or {}
    shown = "; ".join(f"{name}: {', '.join(vals[:12])}" for name, vals in values.items() if vals)
    return f" (values present in {listing.name}: {shown})" if shown else ""
