"""The money: accounts, keys, ownership, charges and idempotency records in SQLite.

One file (``data_dir/ledger.sqlite3``, WAL) so a restart keeps everything and a test can
inspect it.  Every transaction runs synchronously on the server's event-loop thread, so two
requests can never interleave inside one (``download`` group-commits the requests of one loop
turn, but decides them one after another); ``BEGIN IMMEDIATE`` additionally guards against a
second process on the same file.  Ownership is keyed by (account, tier) so it survives key
rotation, exactly like the real API's per-account rule.

Durability is that of a process crash, not of a power cut (``synchronous=OFF``): every commit is
in the OS page cache before its response is sent, so a killed or restarted emulator (the chaos
suite does both) loses nothing, but SQLite does not fsync at its WAL checkpoints. Those fsyncs
cost ~110 us of a ~190 us /download on this project's VM disks, on the emulator's single event
loop, which the client under test shares two cores with: a 500-item sync at 20 ms per request
took 0.55 s against it and 0.47 s without them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IDEMPOTENCY_TTL = 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (account TEXT PRIMARY KEY, balance INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY, account TEXT NOT NULL, tier TEXT NOT NULL CHECK (tier IN ('live','test')),
    rate_limit INTEGER NOT NULL, benchmarks TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS owned (
    account TEXT NOT NULL, tier TEXT NOT NULL, benchmark TEXT NOT NULL, item_index INTEGER NOT NULL,
    item_id TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (account, tier, item_id));
CREATE INDEX IF NOT EXISTS owned_by_bench ON owned (account, tier, benchmark);
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, tier TEXT NOT NULL,
    benchmark TEXT NOT NULL, item_id TEXT NOT NULL, via TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    account TEXT NOT NULL, idem_key TEXT NOT NULL, item_id TEXT NOT NULL, body BLOB NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (account, idem_key));
CREATE TABLE IF NOT EXISTS release_pulls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, tier TEXT NOT NULL, benchmark TEXT NOT NULL,
    release TEXT NOT NULL, filters TEXT NOT NULL, items INTEGER NOT NULL, credits INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS appends (
    id INTEGER PRIMARY KEY AUTOINCREMENT, benchmark TEXT NOT NULL, count INTEGER NOT NULL, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class KeyRecord:
    key: str
    account: str
    tier: str
    rate_limit: int
    benchmarks: tuple[str, ...]
    revoked: bool


@dataclass(frozen=True)
class DownloadOutcome:
    """What the download transaction decided; ``body`` is the exact JSON bytes to send."""

    status: str  # "ok" | "replay" | "idempotency_conflict" | "insufficient"
    body: bytes = b""
    charged: bool = False


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")      # see the module docstring
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._keys: dict[str, KeyRecord | None] = {}
        self._downloads: list[tuple[Callable[[sqlite3.Connection], DownloadOutcome],
                                    asyncio.Future[DownloadOutcome]]] = []

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction; whatever fails inside it or at its COMMIT leaves nothing behind."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # -- keys and accounts ------------------------------------------------------------------

    def create_key(self, key: str, tier: str, account: str, rate_limit: int, benchmarks: tuple[str, ...],
                   balance: int | None, *, if_missing: bool = False) -> bool:
        """Insert a key (and its account).  ``balance`` sets the account balance when given;
        with ``if_missing`` an existing key is left untouched (idempotent demo keys)."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM keys WHERE key=?", (key,)).fetchone():
                if if_missing:
                    return False
                raise KeyError(key)
            created = db.execute("INSERT OR IGNORE INTO accounts (account, balance) VALUES (?, 0)",
                                 (account,)).rowcount
            if balance is not None and (created or not if_missing):
                db.execute("UPDATE accounts SET balance=? WHERE account=?", (balance, account))
            db.execute("INSERT INTO keys VALUES (?,?,?,?,?,0,?)",
                       (key, account, tier, rate_limit, json.dumps(list(benchmarks)), time.time()))
        self._keys.pop(key, None)
        return True

    def revoke_key(self, key: str) -> bool:
        with self._tx() as db:
            changed = db.execute("UPDATE keys SET revoked=1 WHERE key=?", (key,)).rowcount
        self._keys.pop(key, None)
        return bool(changed)

    def lookup_key(self, key: str) -> KeyRecord | None:
        if key in self._keys:
            return self._keys[key]
        row = self._db.execute("SELECT key, account, tier, rate_limit, benchmarks, revoked FROM keys WHERE key=?",
                               (key,)).fetchone()
        rec = None if row is None else KeyRecord(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])),
                                                 bool(row[5]))
        if rec is not None:  # unknown keys are not cached: a later create_key must take effect
            self._keys[key] = rec
        return rec

    def balance(self, account: str) -> int:
        row = self._db.execute("SELECT balance FROM accounts WHERE account=?", (account,)).fetchone()
        return row[0] if row else 0

    def add_credits(self, account: str, add: int | None = None, set_to: int | None = None) -> int:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO accounts (account, balance) VALUES (?, 0)", (account,))
            if set_to is not None:
                db.execute("UPDATE accounts SET balance=? WHERE account=?", (set_to, account))
            if add is not None:
                db.execute("UPDATE accounts SET balance=balance+? WHERE account=?", (add, account))
            return db.execute("SELECT balance FROM accounts WHERE account=?", (account,)).fetchone()[0]

    # -- ownership --------------------------------------------------------------------------

    def owned_indices(self, account: str, tier: str, benchmark: str) -> list[int]:
        rows = self._db.execute("SELECT item_index FROM owned WHERE account=? AND tier=? AND benchmark=?",
                                (account, tier, benchmark))
        return [r[0] for r in rows]

    async def download(self, *, account: str, tier: str, benchmark: str, item_index: int, item_id: str,
                       idem_key: str | None, make_body: Callable[[bool, bool, int | None], bytes]) -> DownloadOutcome:
        """The sign-then-debit transaction of one /download, group-committed.

        Every /download that reaches the ledger in one turn of the event loop shares one
        transaction (8 on average in a 500-item sync at 20 ms per request): one commit instead of
        one per request, ~40 us instead of ~80 us each in batches of 16. Each request is its own
        savepoint inside it, decided in arrival order, so concurrent duplicates and
        Idempotency-Keys resolve exactly as one at a time would; and no response is sent before
        the commit that holds its debit.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DownloadOutcome] = loop.create_future()
        decide = functools.partial(self._download_one, account=account, tier=tier, benchmark=benchmark,
                                   item_index=item_index, item_id=item_id, idem_key=idem_key, make_body=make_body)
        self._downloads.append((decide, future))
        if len(self._downloads) == 1:
            loop.call_soon(self._commit_downloads)
        return await future

    def _commit_downloads(self) -> None:
        batch, self._downloads = self._downloads, []
        batch = [(decide, future) for decide, future in batch if not future.cancelled()]
        outcomes: list[DownloadOutcome | Exception] = []
        try:
            with self._tx() as db:
                for decide, _ in batch:
                    db.execute("SAVEPOINT one_download")
                    try:
                        outcomes.append(decide(db))
                    except Exception as exc:      # that request's alone: its savepoint rolls back
                        db.execute("ROLLBACK TO one_download")
                        outcomes.append(exc)
                    db.execute("RELEASE one_download")
        except Exception as exc:                  # the commit itself failed: nothing of the batch holds
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):    # no await since the filter above
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _download_one(self, db: sqlite3.Connection, *, account: str, tier: str, benchmark: str, item_index: int,
                      item_id: str, idem_key: str | None,
                      make_body: Callable[[bool, bool, int | None], bytes]) -> DownloadOutcome:
        """Replay or reject by Idempotency-Key, decide the charge, reserve the credit (the balance
        check), call ``make_body`` (which signs the URL), then debit and record ownership, the
        charge event and the idempotency record. If ``make_body`` raises, nothing is charged."""
        now = time.time()
        if idem_key is not None:
            row = db.execute("SELECT item_id, body, at FROM idempotency WHERE account=? AND idem_key=?",
                             (account, idem_key)).fetchone()
            if row is not None and now - row[2] < IDEMPOTENCY_TTL:
                if row[0] != item_id:
                    return DownloadOutcome("idempotency_conflict")
                return DownloadOutcome("replay", bytes(row[1]))
        owned = db.execute("SELECT 1 FROM owned WHERE account=? AND tier=? AND item_id=?",
                           (account, tier, item_id)).fetchone() is not None
        charge = tier == "live" and not owned
        balance: int | None = None
        if tier == "live":
            balance = db.execute("SELECT balance FROM accounts WHERE account=?", (account,)).fetchone()
            balance = balance[0] if balance else 0
            if charge and balance < 1:
                return DownloadOutcome("insufficient")
        body = make_body(charge, owned, None if balance is None else balance - int(charge))
        if charge:
            db.execute("UPDATE accounts SET balance=balance-1 WHERE account=?", (account,))
            db.execute("INSERT INTO charges (account, tier, benchmark, item_id, via, at) VALUES (?,?,?,?,?,?)",
                       (account, tier, benchmark, item_id, "download", now))
        if not owned:
            db.execute("INSERT INTO owned VALUES (?,?,?,?,?,?)", (account, tier, benchmark, item_index, item_id, now))
        if idem_key is not None:
            db.execute("INSERT OR REPLACE INTO idempotency VALUES (?,?,?,?,?)", (account, idem_key, item_id, body, now))
        return DownloadOutcome("ok", body, charge)

    def buy_release(self, *, account: str, tier: str, benchmark: str, release: str, filters: dict[str, list[str]],
                    items: list[tuple[int, str]]) -> tuple[bool, int, int]:
        """Charge for every not-yet-owned item of a release pull, all or nothing, and record the pull.

        Every pull that succeeds and delivers items is a row of ``release_pulls`` (a re-pull too, with
        0 credits), so a test can read what was bought, when, and at what price. Returns (ok,
        credits_charged_or_required, balance_after)."""
        now = time.time()
        with self._tx() as db:
            owned = {r[0] for r in db.execute("SELECT item_id FROM owned WHERE account=? AND tier=? AND benchmark=?",
                                              (account, tier, benchmark))}
            new = [(idx, iid) for idx, iid in items if iid not in owned]
            row = db.execute("SELECT balance FROM accounts WHERE account=?", (account,)).fetchone()
            balance = row[0] if row else 0
            if len(new) > balance:
                return False, len(new), balance
            db.execute("UPDATE accounts SET balance=balance-? WHERE account=?", (len(new), account))
            db.executemany("INSERT INTO charges (account, tier, benchmark, item_id, via, at) VALUES (?,?,?,?,?,?)",
                           [(account, tier, benchmark, iid, "release", now) for _, iid in new])
            db.executemany("INSERT INTO owned VALUES (?,?,?,?,?,?)",
                           [(account, tier, benchmark, idx, iid, now) for idx, iid in new])
            if items:       # a pull whose filters kept nothing bought nothing: not a purchase
                db.execute("INSERT INTO release_pulls (account, tier, benchmark, release, filters, items, credits, at) "
                           "VALUES (?,?,?,?,?,?,?,?)",
                           (account, tier, benchmark, release, json.dumps(filters, sort_keys=True), len(items),
                            len(new), now))
            return True, len(new), balance - len(new)

    # -- corpus growth ----------------------------------------------------------------------

    def record_append(self, benchmark: str, count: int) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO appends (benchmark, count, at) VALUES (?,?,?)", (benchmark, count, time.time()))

    def appends(self, benchmark: str) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT count FROM appends WHERE benchmark=? ORDER BY id",
                                               (benchmark,))]

    # -- inspection -------------------------------------------------------------------------

    def report(self, account: str) -> dict:
        owned_rows = self._db.execute("SELECT item_id, tier FROM owned WHERE account=? ORDER BY at, rowid",
                                      (account,)).fetchall()
        charges = [{"item_id": r[0], "tier": r[1], "benchmark": r[2], "via": r[3], "at": r[4]}
                   for r in self._db.execute("SELECT item_id, tier, benchmark, via, at FROM charges "
                                             "WHERE account=? ORDER BY id", (account,))]
        by_tier: dict[str, list[str]] = {"live": [], "test": []}
        for iid, tier in owned_rows:
            by_tier[tier].append(iid)
        pulls = [{"benchmark": r[0], "release": r[1], "filters": json.loads(r[2]), "items": r[3], "credits": r[4],
                  "tier": r[5], "at": r[6]}
                 for r in self._db.execute("SELECT benchmark, release, filters, items, credits, tier, at "
                                           "FROM release_pulls WHERE account=? ORDER BY id", (account,))]
        return {"account": account, "balance": self.balance(account),
                "owned": [r[0] for r in owned_rows], "owned_by_tier": by_tier,
                "charges": charges, "charge_count": len(charges), "release_pulls": pulls}
