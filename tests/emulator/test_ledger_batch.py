"""The ledger's group commit: the /downloads of one loop turn share a transaction and decide as one at a time would.

These drive ``Ledger.download`` directly (it is the emulator's own money code, below its HTTP layer), with a
trace of the SQL it runs, so the number of commits is counted, not assumed. The HTTP-level money rules are in
``test_money.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mirror.emulator.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path):
    led = Ledger(tmp_path / "ledger.sqlite3")
    statements: list[str] = []
    led._db.set_trace_callback(statements.append)
    led.statements = statements           # type: ignore[attr-defined]
    yield led
    led.close()


def _body(charged: bool, owned: bool, balance: int | None) -> bytes:
    return f'{{"charged": {str(charged).lower()}, "balance": {balance}}}'.encode()


def _download(led: Ledger, item: str, *, idem: str | None = None, account: str = "acct", make_body=_body):
    return led.download(account=account, tier="live", benchmark="b", item_index=int(item.removeprefix("item")),
                        item_id=item, idem_key=idem, make_body=make_body)


def _commits(led: Ledger) -> int:
    return sum(s.strip().upper() == "COMMIT" for s in led.statements)      # type: ignore[attr-defined]


async def test_one_loop_turn_is_one_commit_and_duplicates_charge_once(ledger):
    ledger.create_key("k", "live", "acct", 60, ("b",), balance=100)
    before = _commits(ledger)
    items = [f"item{n % 5}" for n in range(30)]                # each of 5 items asked for 6 times at once
    outcomes = await asyncio.gather(*(_download(ledger, i) for i in items))
    assert _commits(ledger) - before == 1
    assert [o.status for o in outcomes] == ["ok"] * 30
    assert sum(o.charged for o in outcomes) == 5
    assert [o.charged for o in outcomes[:5]] == [True] * 5       # the first of each, in arrival order
    report = ledger.report("acct")
    assert report["balance"] == 95 and report["charge_count"] == 5 and sorted(report["owned"]) == sorted(set(items))


async def test_idempotency_in_one_batch_replays_and_conflicts_in_arrival_order(ledger):
    ledger.create_key("k", "live", "acct", 60, ("b",), balance=10)
    first, replay, conflict = await asyncio.gather(_download(ledger, "item1", idem="key-1"),
                                                   _download(ledger, "item1", idem="key-1"),
                                                   _download(ledger, "item2", idem="key-1"))
    assert first.status == "ok" and first.charged
    assert replay.status == "replay" and replay.body == first.body
    assert conflict.status == "idempotency_conflict"
    assert ledger.report("acct")["charge_count"] == 1


async def test_a_failing_request_rolls_back_alone(ledger):
    ledger.create_key("k", "live", "acct", 60, ("b",), balance=10)

    def broken(charged: bool, owned: bool, balance: int | None) -> bytes:
        raise RuntimeError("signing failed")

    results = await asyncio.gather(_download(ledger, "item1"), _download(ledger, "item2", make_body=broken),
                                   _download(ledger, "item3"), return_exceptions=True)
    assert isinstance(results[1], RuntimeError)
    assert [r.charged for r in (results[0], results[2])] == [True, True]
    report = ledger.report("acct")
    assert report["balance"] == 8 and sorted(report["owned"]) == ["item1", "item3"]
    again = await _download(ledger, "item2")            # nothing of the failed one was kept: it is charged now
    assert again.charged and ledger.report("acct")["balance"] == 7


async def test_the_balance_runs_out_inside_a_batch(ledger):
    ledger.create_key("k", "live", "acct", 60, ("b",), balance=3)
    outcomes = await asyncio.gather(*(_download(ledger, f"item{n}") for n in range(5)))
    assert [o.status for o in outcomes] == ["ok", "ok", "ok", "insufficient", "insufficient"]
    report = ledger.report("acct")
    assert report["balance"] == 0 and report["charge_count"] == 3


async def test_a_request_cancelled_before_its_batch_is_not_charged(ledger):
    ledger.create_key("k", "live", "acct", 60, ("b",), balance=10)
    kept = asyncio.ensure_future(_download(ledger, "item1"))
    dropped = asyncio.ensure_future(_download(ledger, "item2"))
    await asyncio.sleep(0)              # both queued, their batch not yet run
    dropped.cancel()
    assert (await kept).charged
    assert ledger.report("acct")["owned"] == ["item1"] and ledger.report("acct")["balance"] == 9


async def test_a_failed_commit_keeps_nothing_of_its_batch_and_each_request_hears_of_it(ledger):
    """The COMMIT itself fails (a full or failing disk): no debit, ownership or idempotency record of
    that batch may survive, or a retry with the same key would replay an answer nobody was sent."""
    ledger.create_key("k", "live", "acct", 60, ("b",), balance=10)
    assert (await _download(ledger, "item0")).charged           # committed before the failure
    real = ledger._db

    class CommitFailsOnce:
        """The ledger's connection, except that the next COMMIT fails as a disk error would."""

        failed = False

        def __getattr__(self, name: str):
            return getattr(real, name)

        def execute(self, sql: str, *args):
            if sql == "COMMIT" and not CommitFailsOnce.failed:
                CommitFailsOnce.failed = True
                raise sqlite3.OperationalError("disk I/O error")
            return real.execute(sql, *args)

    ledger._db = CommitFailsOnce()
    keys = {f"item{n}": f"key-{n}" for n in (1, 2, 3)}
    failed = await asyncio.gather(*(_download(ledger, i, idem=k) for i, k in keys.items()), return_exceptions=True)
    assert CommitFailsOnce.failed and all(isinstance(r, sqlite3.OperationalError) for r in failed)
    assert not real.in_transaction
    report = ledger.report("acct")
    assert report["balance"] == 9 and report["owned"] == ["item0"] and report["charge_count"] == 1

    again = await asyncio.gather(*(_download(ledger, i, idem=k) for i, k in keys.items()))
    assert [o.status for o in again] == ["ok"] * 3, "decided afresh: no idempotency record outlived the failure"
    assert all(o.charged for o in again) and ledger.report("acct")["balance"] == 6
