"""Seeded fault injection: the failures a mirror must survive, reproducibly.

Every fault is a probability; each check draws from one ``random.Random(seed)`` (only when
that fault's probability is non-zero), so the same seed and the same request sequence give
the same faults.  Every injected fault is counted so a test can assert it really happened.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

PROBABILITIES = ("api_500", "download_500_before_debit", "download_500_after_debit", "api_429", "api_slow",
                 "storage_drop", "storage_truncate", "storage_slow",
                 "release_500_before_purchase", "release_500_after_purchase", "part_500", "part_drop",
                 "part_truncate")


@dataclass
class FaultSettings:
    """Probabilities in [0, 1] plus the knobs that shape the slow/latency faults."""

    api_500: float = 0.0  # any API route; on /download and /release split evenly before/after the debit
    download_500_before_debit: float = 0.0
    download_500_after_debit: float = 0.0  # charge committed, then a 500: a lost response
    api_429: float = 0.0  # spurious rate_limited answers
    api_slow: float = 0.0  # handler sleeps ``slow_seconds`` (long enough to hit a client deadline)
    slow_seconds: float = 5.0
    latency_ms: float = 0.0  # added to every request, storage included
    storage_drop: float = 0.0  # connection closed mid-body
    storage_truncate: float = 0.0  # Content-Length larger than the body sent
    storage_slow: float = 0.0  # body dribbled out over ``slow_seconds``
    url_ttl: int = 300  # lifetime of signed storage URLs
    # /release: a 500 before the purchase (nothing bought) or after it (bought, the answer lost)
    release_500_before_purchase: float = 0.0
    release_500_after_purchase: float = 0.0
    # release parts only (the storage_* faults above hit parts and images alike)
    part_500: float = 0.0  # storage answers 500 for a part
    part_drop: float = 0.0  # connection closed mid-part
    part_truncate: float = 0.0  # Content-Length larger than the part sent


class Faults:
    def __init__(self, seed: int, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self.counts: dict[str, int] = {}

    def update(self, changes: dict) -> dict:
        """Apply a partial update; unknown names raise ValueError (admin answers 400)."""
        known = {f.name: f.type for f in fields(FaultSettings)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {sorted(known)}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            if name in PROBABILITIES and value > 1:
                raise ValueError(f"{name} is a probability in [0, 1]")
        for name, value in changes.items():
            setattr(self.settings, name, int(value) if name == "url_ttl" else float(value))
        return self.current()

    def current(self) -> dict:
        return asdict(self.settings)

    def roll(self, name: str, probability: float | None = None) -> bool:
        """Draw for fault ``name`` (its own probability unless given); count it when it fires."""
        p = getattr(self.settings, name) if probability is None else probability
        if p <= 0 or self._rng.random() >= p:
            return False
        self.count(name)
        return True

    def around_debit(self, before: str, after: str) -> tuple[bool, bool]:
        """Whether a money route fails with a 500 before its debit and/or after it (a lost answer).

        ``before``/``after`` are the route's own fault names; ``api_500`` adds to them, split evenly
        (and counted under the route's own name), as a front end failing at random would."""
        fail_before = self.roll(before)
        fail_after = not fail_before and self.roll(after)
        if not (fail_before or fail_after) and self.settings.api_500 > 0 and self.roll("api_500"):
            fail_after = self.coin()
            self.count(after if fail_after else before)
            fail_before = not fail_after
        return fail_before, fail_after

    def coin(self) -> bool:
        return self._rng.random() < 0.5

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
