"""Which ids this run has already queued, in ~16 bytes per id instead of a Python string in a set.

The walk must not queue an id twice (a server may repeat ids across pages, and reservation-pending
items are queued before the walk starts). A ``set[str]`` of every id was the largest thing a big
run held (docs/design.md), so ids are kept exactly in a small set only until ``FOLD_AT`` of
them have gathered, then folded into two sorted numpy arrays of their 128-bit BLAKE2b digests.
Two different ids share a digest with probability ~n²/2¹²⁹ (about 10⁻²⁸ for a million ids): far
rarer than a memory error, so a digest match counts as the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["SeenIds"]

FOLD_AT = 4096


def _digests(item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    raw = b"".join(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=16).digest() for i in item_ids)
    pairs = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


class SeenIds:
    def __init__(self) -> None:
        self._recent: set[str] = set()
        self._hi = np.empty(0, dtype=np.uint64)      # sorted
        self._lo = np.empty(0, dtype=np.uint64)      # aligned with _hi

    def __len__(self) -> int:
        return len(self._recent) + len(self._hi)

    def add_all(self, item_ids: Iterable[str]) -> None:
        for item_id in item_ids:
            self._recent.add(item_id)
        self._maybe_fold()

    def first_sightings(self, item_ids: Sequence[str]) -> list[bool]:
        """For each id, True if this is its first sighting (in this run and earlier in the list); marks them seen."""
        folded = self._in_folded(item_ids)
        fresh = []
        for item_id, old in zip(item_ids, folded, strict=True):
            new = not old and item_id not in self._recent
            if new:
                self._recent.add(item_id)
            fresh.append(new)
        self._maybe_fold()
        return fresh

    def _in_folded(self, item_ids: Sequence[str]) -> list[bool]:
        if not len(self._hi) or not item_ids:
            return [False] * len(item_ids)
        hi, lo = _digests(item_ids)
        left = np.searchsorted(self._hi, hi, side="left")
        right = np.searchsorted(self._hi, hi, side="right")
        found = (left < right) & (self._lo[np.minimum(left, len(self._lo) - 1)] == lo)
        for j in np.flatnonzero(right - left > 1).tolist():    # equal upper halves: never seen in practice
            found[j] = bool((self._lo[left[j]:right[j]] == lo[j]).any())
        return found.tolist()

    def _maybe_fold(self) -> None:
        if len(self._recent) < FOLD_AT:
            return
        hi, lo = _digests(list(self._recent))
        order = np.argsort(hi, kind="stable")
        hi, lo = hi[order], lo[order]
        at = np.searchsorted(self._hi, hi)
        self._hi = np.insert(self._hi, at, hi)
        self._lo = np.insert(self._lo, at, lo)
        self._recent = set()
