"""The reservation log (``.state/journal.jsonl``): items this destination paid for but has not yet written.

A credit is spent when ``/download`` answers, but the image only counts as mirrored once its
manifest part is on disk. Anything can happen in between (a kill -9, a full disk, an expired
URL), so every reservation is written here *before* the request is sent, its answer is recorded
when it arrives, and the item is marked done once its row is flushed. The next run fetches every
pending item first: the account already owns it, so it is free.

An answer's record rides along with the next record written (any worker's next reservation, the
next ``done`` batch; ``close`` rewrites what is pending from memory) instead of costing a system
call of its own. A kill can lose the last few; those reservations then read as never answered,
and the next run sends each one's key again: the server repeats its answer (``charged``
included) and debits nothing.

A bulk purchase (a release pull, ``engine/release.py``) is one more record type in the same log:
``buy`` before its request is sent, ``bought`` with what the answer said, ``parts`` as its parts'
rows reach the manifest, ``paid-off`` once all of them did; until then it is in ``purchases``.

Format: JSON lines in ``.state/journal.jsonl``, a ``RecordLog`` (``store.records``): a batch of
records is appended with one write, so a record is either whole or absent after a kill (a torn
last line is ignored). Only ids, outcomes and each reservation's random Idempotency-Key token
are written: never the API key, never a signed URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.store.records import RecordLog, replay_records

__all__ = ["ReservationLog", "Pending", "Purchase", "read_pending", "read_purchases"]


@dataclass
class Pending:
    """An item reserved by an earlier run whose row never reached the manifest."""

    item_id: str
    benchmark: str | None
    charged: bool | None = None   # None: the answer never arrived, so we cannot tell
    token: str | None = None      # the last reservation's Idempotency-Key token (None: an older version's)


@dataclass
class Purchase:
    """A bulk purchase: journaled before it is sent, pending until every one of its parts is placed."""

    key: str                                   # names what was bought (benchmark, release, filters)
    spec: dict[str, Any]                       # the request, and what was known before it was sent
    answer: dict[str, Any] | None = None       # what the answer said, once it arrived
    parts_done: set[str] = field(default_factory=set)


class ReservationLog:
    """The reservation records on a ``RecordLog``; ``pending`` is what earlier runs left unfinished
    (``purchases``: the bulk purchases among it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, Pending] = read_pending(path)
        self.purchases: dict[str, Purchase] = read_purchases(path)
        self._log = RecordLog(path, self._live())
        self._answers: list[str] = []     # "reserved" records not yet written (see the module docstring)

    def close(self) -> None:
        """Stop appending and leave only what is still pending, so the next run replays only that."""
        self._log.close(self._live())

    def unanswered_token(self, item_id: str) -> str | None:
        """The token of this item's last reservation when reservations were sent and none was ever
        answered (a kill, a lost connection): the key worth sending again (see ``reserve``)."""
        entry = self.pending.get(item_id)
        return entry.token if entry and entry.charged is None else None

    def reserving(self, item_id: str, benchmark: str | None, token: str) -> None:
        """Called before ``/download`` is sent: from here on a crash leaves a pending entry whose
        key (derived from ``token``) can be sent again."""
        entry = self.pending.setdefault(item_id, Pending(item_id, benchmark))
        entry.token = token
        self._write(f'{{"op":"reserve","id":{json.dumps(item_id)},"b":{json.dumps(benchmark)},'
                    f'"k":{json.dumps(token)},"t":{time.time():.3f}}}\n')

    def reserved(self, item_id: str, charged: bool) -> None:
        entry = self.pending.get(item_id)
        if entry is not None:
            entry.charged = bool(entry.charged) or charged
        self._answers.append(f'{{"op":"reserved","id":{json.dumps(item_id)},"charged":{"true" if charged else "false"},'
                             f'"t":{time.time():.3f}}}\n')

    def done(self, item_ids: list[str]) -> None:
        """The rows of these items are in a flushed manifest part: forget them."""
        if not item_ids:
            return
        for item_id in item_ids:
            self.pending.pop(item_id, None)
        stamp = f"{time.time():.3f}"
        self._write("".join(f'{{"op":"done","id":{json.dumps(i)},"t":{stamp}}}\n' for i in item_ids))

    # -- bulk purchases ---------------------------------------------------------------------------
    def purchasing(self, purchase: Purchase) -> None:
        """Called before the purchase is sent: from here on a crash leaves it pending."""
        self.purchases[purchase.key] = purchase
        self._write(_line({"op": "buy", "key": purchase.key, "spec": purchase.spec, "t": round(time.time(), 3)}))

    def purchased(self, key: str, answer: dict[str, Any]) -> None:
        self.purchases[key].answer = answer
        self._write(_line({"op": "bought", "key": key, "answer": answer}))

    def parts_placed(self, key: str, parts: list[str]) -> None:
        """These parts' rows are in a flushed manifest part: a later run does not fetch them again."""
        if parts:
            self.purchases[key].parts_done.update(parts)
            self._write(_line({"op": "parts", "key": key, "parts": parts}))

    def purchase_done(self, key: str) -> None:
        """Every part is placed (or the purchase never happened): forget it."""
        if self.purchases.pop(key, None) is not None:
            self._write(_line({"op": "paid-off", "key": key}))

    def _live(self) -> Iterator[dict[str, Any]]:
        yield from _live(self.pending)
        for purchase in self.purchases.values():
            yield {"op": "buy", "key": purchase.key, "spec": purchase.spec}
            if purchase.answer is not None:
                yield {"op": "bought", "key": purchase.key, "answer": purchase.answer}
            if purchase.parts_done:
                yield {"op": "parts", "key": purchase.key, "parts": sorted(purchase.parts_done)}

    def was_charged(self, item_id: str) -> bool:
        entry = self.pending.get(item_id)
        return bool(entry and entry.charged)

    def _write(self, lines: str) -> None:
        """Answers waiting to be written go first, in the same write. A record that cannot be
        written (DEST full or read-only) stops the run as a DestinationError before the request it
        announces is sent."""
        if self._answers:
            lines = "".join(self._answers) + lines
            self._answers = []
        self._log.append(lines)


def _live(pending: dict[str, Pending]) -> Iterator[dict[str, object]]:
    """The records that replay to ``pending``: what a compacted journal holds."""
    for entry in pending.values():
        yield {"op": "reserve", "id": entry.item_id, "b": entry.benchmark, "k": entry.token}
        if entry.charged is not None:
            yield {"op": "reserved", "id": entry.item_id, "charged": entry.charged}


def read_pending(path: Path) -> dict[str, Pending]:
    """Replay a journal without touching it (safe while another run holds the destination)."""
    pending: dict[str, Pending] = {}
    for rec in replay_records(path, "op", "id"):
        op, item_id = rec["op"], rec["id"]
        if op == "reserve":
            entry = pending.setdefault(item_id, Pending(item_id, rec.get("b")))
            token = rec.get("k")
            entry.token = token if isinstance(token, str) else None
        elif op == "reserved" and item_id in pending:
            entry = pending[item_id]
            entry.charged = bool(entry.charged) or rec.get("charged") is True
        elif op == "done":
            pending.pop(item_id, None)
    return pending


def read_purchases(path: Path) -> dict[str, Purchase]:
    """The bulk purchases a journal holds that are not paid off (see ``Purchase``)."""
    purchases: dict[str, Purchase] = {}
    for rec in replay_records(path, "op", "key"):
        op, key = rec["op"], rec["key"]
        if not isinstance(key, str):
            continue
        if op == "buy" and isinstance(rec.get("spec"), dict):
            purchases.setdefault(key, Purchase(key, rec["spec"]))
        elif key not in purchases:
            continue
        elif op == "bought" and isinstance(rec.get("answer"), dict):
            purchases[key].answer = rec["answer"]
        elif op == "parts" and isinstance(rec.get("parts"), list):
            purchases[key].parts_done.update(p for p in rec["parts"] if isinstance(p, str))
        elif op == "paid-off":
            del purchases[key]
    return purchases


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"      # ASCII: server text may hold lone surrogates
