"""Stage 2: an item id becomes a signed URL, paid for at most once.

Every credit-spending call in the project goes through ``Reserver.reserve``: it checks the budget,
writes the journal, then calls ``/download``. Two rules keep it from paying twice, and keep what it
reports true to the ledger:

* A reservation an earlier run sent and never heard back about (killed, the connection lost) is
  sent again with *its* Idempotency-Key, read back from the journal. The server then answers as it
  did, or would have (``charged: true`` if it debited the credit), so the row says whether the item
  was paid for. A replayed URL may be stale: its fetch is refused and renewed like any expired one.
* Every other reservation gets a key never sent before (a random token, journaled before the
  request). The account is charged once per item, whatever the key, so an item it owns comes back
  ``charged: false``: free, and reported free. A key derived from the item alone would have the
  server replay its first answer, ``charged: true``, to every later DEST or re-fetch, and the run
  would report (and count against ``--max-credits``) credits it never spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from mirror.api.client import MargenClient
from mirror.api.models import Download
from mirror.errors import BudgetExhausted, InsufficientCredits
from mirror.store.reservations import ReservationLog

__all__ = ["Budget", "Reserver", "idempotency_key", "new_token"]


def new_token() -> str:
    """A reservation's own part of its Idempotency-Key: 64 random bits, journaled before it is sent."""
    return secrets.token_hex(8)


def idempotency_key(benchmark: str | None, item_id: str, token: str) -> str:
    """The Idempotency-Key of one reservation of one item: the same inputs give the same key."""
    # surrogatepass: a lone surrogate in a server-sent benchmark name or id must not crash.
    basis = f"{benchmark or ''}\n{item_id}\n{token}".encode("utf-8", "surrogatepass")
    return f"mm2-{hashlib.sha256(basis).hexdigest()[:32]}"


class Budget:
    """Never spend more than ``max_credits`` in a run, counting reservations still in flight.

    A reservation takes one credit of headroom before it is sent and gives it back if the answer
    is free (owned, test tier). While all the headroom is out in flight, the next one waits for it
    rather than being dropped: with an owned selection every answer comes back free."""

    def __init__(self, max_credits: int | None) -> None:
        self.max_credits = max_credits
        self.spent = 0
        self._held = 0
        self._returned = asyncio.Event()
        self.exhausted_reason: str | None = None

    @property
    def exhausted(self) -> bool:
        return self.exhausted_reason is not None

    async def hold(self) -> None:
        """Take one credit of headroom before a request that may charge; BudgetExhausted once there
        is none. While all of it is out in flight, wait: an answer settles one, spent or given back."""
        while True:
            if self.exhausted_reason is not None:
                raise BudgetExhausted(self.exhausted_reason)
            if self.max_credits is None or self.spent + self._held < self.max_credits:
                self._held += 1
                return
            if not self._held:                      # none in flight: it is all spent
                self.stop(self._reached)
                continue
            self._returned.clear()
            await self._returned.wait()

    def settle(self, charged: bool) -> None:
        self._held -= 1
        if charged:
            self.spent += 1
        if self.max_credits is not None and self.spent >= self.max_credits:
            self.stop(self._reached)
        self._returned.set()

    @property
    def _reached(self) -> str:
        return f"--max-credits {self.max_credits} reached"

    def release(self) -> None:
        self._held -= 1
        self._returned.set()

    def stop(self, reason: str) -> None:
        self.exhausted_reason = self.exhausted_reason or reason
        self._returned.set()


class Reserver:
    def __init__(self, client: MargenClient, journal: ReservationLog, budget: Budget) -> None:
        self.client = client
        self.journal = journal
        self.budget = budget
        self.free = 0            # items whose reservation cost nothing (owned, test tier), renewals aside
        self.balance: int | None = None   # the balance the last answer reported (live tier)

    async def reserve(self, item_id: str, benchmark: str | None, *, renewal: bool = False) -> Download:
        """Reserve one item; raises BudgetExhausted instead of spending past the budget.

        ``renewal``: this run reserved the item already and its URL expired; the item was counted
        then, as charged or free, and is not counted again."""
        already_paid = self.journal.was_charged(item_id)
        if not already_paid:
            await self.budget.hold()
        replay = self.journal.unanswered_token(item_id)      # see the module docstring
        replaying = replay is not None
        token = replay or new_token()
        self.journal.reserving(item_id, benchmark, token)
        try:
            download = await self.client.download(item_id, idempotency_key=idempotency_key(benchmark, item_id, token))
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
        if not download.charged and not renewal:
            self.free += 1
        if download.balance is not None and not replaying:     # a replayed answer's balance may be old
            self.balance = download.balance
        self.journal.reserved(item_id, download.charged)
        return download
