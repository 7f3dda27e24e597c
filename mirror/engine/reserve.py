"""Stage 2: an item id becomes a signed URL, paid for at most once.

Every credit-spending call in the project goes through ``Reserver.reserve``: it checks the budget,
writes the journal, then calls ``/download`` with an Idempotency-Key derived only from the
benchmark and the item id, so a retry, a second run or another machine never pays twice. A
reservation made again after a signed URL expired uses a derived key (``-r1``, ``-r2``…): the
server replays the original answer, expired URL included, for the first key, while a fresh key
gets a fresh URL, for free, because the account already owns the item.

The one exception: a reservation an earlier run sent and never heard back about (killed, or the
connection lost) is sent again with *its* key. The server then answers as it did, or would have
(``charged: true`` if it debited the credit), so the manifest row says whether the item was paid
for; a fresh key would only hear "already owned, free". A replayed URL may be stale: its fetch
is refused and renewed like any expired one.
"""

from __future__ import annotations

import hashlib

from mirror.api.client import MargenClient
from mirror.api.models import Download
from mirror.engine.journal import Journal
from mirror.errors import BudgetExhausted, InsufficientCredits

__all__ = ["Budget", "Reserver", "idempotency_key"]


def idempotency_key(benchmark: str | None, item_id: str, attempt: int = 0) -> str:
    """Deterministic from account-independent inputs: same benchmark + item -> same key everywhere."""
    # surrogatepass: a lone surrogate in a server-sent benchmark name must not crash; valid text
    # encodes exactly as plain UTF-8, so every key derived before stays the same.
    digest = hashlib.sha256(f"{benchmark or ''}\n{item_id}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"mm1-{digest}" if attempt == 0 else f"mm1-{digest}-r{attempt}"


class Budget:
    """Never spend more than ``max_credits`` in a run, counting reservations still in flight."""

    def __init__(self, max_credits: int | None) -> None:
        self.max_credits = max_credits
        self.spent = 0
        self._held = 0
        self.exhausted_reason: str | None = None

    @property
    def exhausted(self) -> bool:
        return self.exhausted_reason is not None

    def hold(self) -> bool:
        """Take one credit of headroom before a request that may charge; False when there is none."""
        if self.exhausted:
            return False
        if self.max_credits is not None and self.spent + self._held >= self.max_credits:
            return False
        self._held += 1
        return True

    def settle(self, charged: bool) -> None:
        self._held -= 1
        if charged:
            self.spent += 1
        if self.max_credits is not None and self.spent >= self.max_credits:
            self.exhausted_reason = self.exhausted_reason or f"--max-credits {self.max_credits} reached"

    def release(self) -> None:
        self._held -= 1

    def stop(self, reason: str) -> None:
        self.exhausted_reason = self.exhausted_reason or reason


class Reserver:
    def __init__(self, client: MargenClient, journal: Journal, budget: Budget) -> None:
        self.client = client
        self.journal = journal
        self.budget = budget
        self.free = 0            # reservations that cost nothing (owned, test tier)
        self.balance: int | None = None   # the balance the last answer reported (live tier)

    async def reserve(self, item_id: str, benchmark: str | None) -> Download:
        """Reserve one item; raises BudgetExhausted instead of spending past the budget."""
        already_paid = self.journal.was_charged(item_id)
        if not already_paid and not self.budget.hold():
            raise BudgetExhausted(self.budget.exhausted_reason or f"--max-credits {self.budget.max_credits} reached")
        replaying = self.journal.unanswered(item_id)      # see the module docstring
        key = idempotency_key(benchmark, item_id, self.journal.attempts(item_id) - int(replaying))
        self.journal.reserving(item_id, benchmark)
        try:
            download = await self.client.download(item_id, idempotency_key=key)
        except InsufficientCredits as exc:
            if not already_paid:
                self.budget.release()
            self.budget.stop("the account is out of credits (402)")
            raise BudgetExhausted(f"the account is out of credits ({exc.required or 1} more needed)") from None
        except BaseException:
            if not already_paid:
                self.budget.release()
            raise
        charged = download.charged and not already_paid
        if not already_paid:
            self.budget.settle(charged)
        if not download.charged:
            self.free += 1
        if download.balance is not None and not replaying:     # a replayed answer's balance may be old
            self.balance = download.balance
        self.journal.reserved(item_id, download.charged)
        return download
