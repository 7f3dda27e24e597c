"""What a run did, as a typed value: for the library caller, ``--json`` and the cron summary line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mirror.engine.outlook import describe_duration, estimate_seconds, listing_calls
from mirror.errors import EXIT_BUDGET, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL

__all__ = ["SyncReport", "RepairReport", "PlanReport", "Failure", "outcome_dict"]


@dataclass(frozen=True)
class Failure:
    item_id: str
    reason: str
    retryable: bool = True


@dataclass
class SyncReport:
    """Outcome of one ``sync``. ``status`` is complete, up-to-date, partial, budget or interrupted."""

    selection: str
    dest: str
    status: str = "complete"
    matching: int | None = None          # items the selection matches (None in lineage/identity modes)
    already_mirrored: int = 0            # in the manifest and on disk before this run
    mirrored: int = 0                    # new rows written by this run
    charged: int = 0                     # credits this run spent (or an earlier run, killed before the answer)
    free: int = 0                        # reservations that cost nothing (owned, test tier)
    recovered: int = 0                   # items paid for by an earlier run and finished now
    failed: int = 0
    left: int | None = None              # items of the selection not yet here when the run ended (None: unknown)
    bytes: int = 0
    api_calls: int = 0
    throttled: int = 0                   # 429 answers received
    balance: int | None = None
    elapsed_s: float = 0.0
    slow_disk: bool = False              # files were slow to create: the later ones went to a worker thread
    message: str = ""
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.status == "budget":
            return EXIT_BUDGET
        if self.status == "partial":
            return EXIT_PARTIAL
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_OK

    def summary_line(self) -> str:
        """One line a cron mail or a log can carry: status, counts, money, time."""
        parts = [f"{self.status}:"]
        if self.matching is not None:
            parts.append(f"{self.matching} matching,")
        parts.append(f"{self.mirrored} new ({self.charged} charged, {self.free} free),")
        parts.append(f"{self.already_mirrored} already here, {self.failed} failed,")
        if self.left is not None:
            parts.append(f"{self.left} left,")
        parts.append(f"{self.bytes / 1e6:.1f} MB in {self.elapsed_s:.1f} s, {self.api_calls} API calls")
        if self.balance is not None:
            parts.append(f"| balance {self.balance}")
        line = "margen-mirror " + " ".join(parts)
        return f"{line} | {self.message}" if self.message else line

    def to_dict(self) -> dict[str, Any]:
        return outcome_dict(self)


@dataclass
class RepairReport(SyncReport):
    """A ``verify --repair`` run: damaged items re-fetched, except those it would have to buy."""

    repaired: int = 0                                      # damaged items whose new copy is in place
    not_owned: list[str] = field(default_factory=list)    # left as they are: the account does not own them


def outcome_dict(report: Any) -> dict[str, Any]:
    """A run report (sync or score) as JSON-ready data: its fields, its exit code, the first 100 failures."""
    data = asdict(report)
    data["exit_code"] = report.exit_code
    data["failures"] = [asdict(f) for f in report.failures[:100]]
    return data


@dataclass(frozen=True)
class PlanReport:
    """What a sync would do, computed before a credit is spent."""

    selection: str
    dest: str
    tier: str
    matching: int | None
    mirrored_here: int | None
    owned: int | None
    to_charge: int | None
    balance: int | None
    max_credits: int | None
    api_calls: int
    rate_limit: float = 60.0             # the API requests per minute the sync would run at

    @property
    def to_fetch(self) -> int | None:
        """Items a sync would reserve and fetch: those matching that are not here yet."""
        return None if self.matching is None else max(0, self.matching - (self.mirrored_here or 0))

    @property
    def seconds(self) -> float | None:
        """The time the rate limit gives the sync: each item one API call, plus the listing pages."""
        if self.to_fetch is None or self.matching is None:
            return None
        return estimate_seconds(self.to_fetch, self.rate_limit, listing_calls(self.matching if self.to_fetch else 0))

    @property
    def fits(self) -> bool:
        if self.to_charge is None:
            return True
        if self.max_credits is not None and self.to_charge > self.max_credits:
            return False
        return self.tier == "test" or self.balance is None or self.to_charge <= self.balance

    def lines(self) -> list[str]:
        def show(value: int | None) -> str:
            return "unknown" if value is None else f"{value:,}"
        budget = "no limit" if self.max_credits is None else f"{self.max_credits:,}"
        return [
            f"selection        {self.selection}",
            f"destination      {self.dest}",
            f"items matching   {show(self.matching)}",
            f"mirrored here    {show(self.mirrored_here)}",
            f"owned (free)     {show(self.owned)}",
            f"to be charged    {show(self.to_charge)}",
            f"time needed      {self._time()}",
            f"rate limit       {self.rate_limit:g} requests/min; a key's limit is set when the key is created "
            "(default 60): pass yours with --rate-limit N",
            f"balance          {show(self.balance)} ({self.tier} tier)",
            f"--max-credits    {budget}",
            f"fits             {'yes' if self.fits else 'NO: raise --max-credits or top up'}",
        ]

    def _time(self) -> str:
        seconds = self.seconds
        if seconds is None or self.to_fetch is None or self.matching is None:
            return "unknown (--lineage and --distinct-identities selections are not counted ahead)"
        other = listing_calls(self.matching if self.to_fetch else 0)
        return (f"{describe_duration(seconds)} at {self.rate_limit:g} requests/min ({self.to_fetch:,} downloads + "
                f"{other:,} other API calls)")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits, "to_fetch": self.to_fetch,
                "seconds": None if self.seconds is None else round(self.seconds, 1)}
