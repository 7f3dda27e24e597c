"""What a sync has ahead of it: the selection's size, what is already here, and the time the key's
rate limit gives it. ``plan`` prints the time beside the credits; a sync tells its progress display.

Every API request waits for the key's per-minute limit (set when the key is created, 60 by
default), and each item costs one: its ``/download`` reservation. The signed URL is fetched from
storage, which the limit does not pace. So at 60 requests a minute, 10,000 items take about three
hours however fast the network is: the estimate is a floor, not a forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from mirror.engine.pages import PAGE_SIZE

__all__ = ["API_CALLS_PER_ITEM", "FIXED_CALLS", "Outlook", "RunCounters", "estimate_seconds", "listing_calls",
           "describe_duration"]

API_CALLS_PER_ITEM = 1    # the /download reservation; the signed-URL fetch goes to storage
FIXED_CALLS = 2           # /catalog, and the exclude_owned probe that counts the selection


class RunCounters(Protocol):
    """What a progress view reads of a run's report (``SyncReport`` has these), as they move."""

    mirrored: int
    charged: int
    free: int
    failed: int
    balance: int | None


def listing_calls(matching: int) -> int:
    """The API calls a walk of ``matching`` items makes besides the reservations (pages, catalog, probe)."""
    return math.ceil(matching / PAGE_SIZE) + FIXED_CALLS


def estimate_seconds(to_fetch: int, rate_limit: float, other_calls: int) -> float:
    """Seconds the key's rate limit needs for ``to_fetch`` items plus ``other_calls`` API calls."""
    return (to_fetch * API_CALLS_PER_ITEM + other_calls) * 60.0 / rate_limit


def describe_duration(seconds: float) -> str:
    """A duration as a person says it: "under a minute", "about 5 min", "about 2 h 47 min", "about 3 days 4 h"."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"
    days, hours = divmod(hours, 24)
    return f"about {days} days {hours} h" if hours else f"about {days} days"


@dataclass(frozen=True)
class Outlook:
    """Told once to a sync's ``on_total`` hook, when the run knows what it has ahead of it.

    ``total`` is the whole selection (None: unknown, as in the lineage and identity modes), ``here``
    the part of it DEST held when the run began, counted as done. ``report`` is the run's own report:
    its counters (mirrored, charged, free, failed, bytes, balance) move as the run goes; read them,
    never write them.
    """

    total: int | None
    here: int
    rate_limit: float
    report: RunCounters

    @property
    def to_fetch(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.here)

    @property
    def seconds(self) -> float | None:
        """The time the key's rate limit needs for what is left (a floor: see the module docstring)."""
        if self.total is None or self.to_fetch is None:
            return None
        return estimate_seconds(self.to_fetch, self.rate_limit, listing_calls(self.total))
