"""SeenIds: exact answers across the fold from a plain set into sorted digest arrays."""

from __future__ import annotations

import random

from mirror.engine import seen
from mirror.engine.seen import SeenIds


def test_first_sightings_match_a_plain_set_across_many_folds(monkeypatch):
    monkeypatch.setattr(seen, "FOLD_AT", 50)          # fold often, so most lookups hit the arrays
    rng = random.Random(5)
    universe = [f"id-{n}-{'x' * rng.randrange(0, 40)}" for n in range(2_000)] + ["", "é", "\ud800", "a/b", ".."]
    reference: set[str] = set()
    ids = SeenIds()
    for _ in range(120):
        page = [rng.choice(universe) for _ in range(rng.randrange(0, 60))]
        expected = []
        for item_id in page:
            expected.append(item_id not in reference)
            reference.add(item_id)
        assert ids.first_sightings(page) == expected
    assert len(ids) == len(reference)
    assert len(ids._hi) > 0, "the test must exercise the folded arrays"


def test_ids_added_up_front_are_not_first_sightings(monkeypatch):
    monkeypatch.setattr(seen, "FOLD_AT", 3)
    ids = SeenIds()
    ids.add_all(["p1", "p2", "p3", "p4"])             # folded: more than FOLD_AT
    assert ids.first_sightings(["p2", "n1", "n1", "p4", "n2"]) == [False, True, False, False, True]


def test_equal_upper_halves_still_compare_the_lower_half(monkeypatch):
    """Force every digest's upper 64 bits equal: lookups must still be exact."""
    real = seen._digests

    def same_upper(item_ids):
        hi, lo = real(item_ids)
        hi[:] = 7
        return hi, lo

    monkeypatch.setattr(seen, "_digests", same_upper)
    monkeypatch.setattr(seen, "FOLD_AT", 4)
    ids = SeenIds()
    ids.add_all([f"a{n}" for n in range(10)])
    assert ids.first_sightings(["a3", "b3", "a9", "b3"]) == [False, True, False, False]
