"""Item ids decode back to their index, by lookup once issued and by the keyed permutation before."""

from __future__ import annotations

from mirror.emulator.benchmarks import BENCHMARKS, FACES
from mirror.emulator.corpus import Corpus


def test_ids_decode_cold_and_warm_and_refuse_what_was_not_issued():
    issuer, reader = Corpus(BENCHMARKS[FACES], 7, 120), Corpus(BENCHMARKS[FACES], 7, 120)
    ids = [issuer.item_id(i) for i in range(120)]
    assert len(set(ids)) == 120
    assert [reader.index_of(x) for x in ids] == list(range(120))         # decoded: nothing issued yet
    assert [reader.index_of(x) for x in ids] == list(range(120))         # looked up
    assert [issuer.index_of(x) for x in ids] == list(range(120))
    for corpus in (issuer, reader):
        assert corpus.index_of(ids[3].upper()) is None
        assert corpus.index_of(ids[3][:-1] + ("0" if ids[3][-1] != "0" else "1")) is None
        assert corpus.index_of("not-an-id") is None
    later = issuer.item_id(125)              # an id of an item not released yet
    assert issuer.index_of(later) is None and reader.index_of(later) is None
    issuer.append(10)
    reader.append(10)
    assert issuer.index_of(later) == 125 == reader.index_of(later)
    assert Corpus(BENCHMARKS[FACES], 8, 120).index_of(ids[0]) is None   # another seed's id
