"""The deterministic corpus of one benchmark: an endless stream of lineages, cut at N items.

A lineage is one real source image plus 1-3 fakes from distinct generators (same identity,
each with a scene); every base image (the real and each fake) is delivered in every variant
of the benchmark (21 for synthetic-face-v1).  Items are ordered by creation (their index),
lineage after lineage, so ``created_at`` order == index order and appended items land at
the end.

Per-item data is kept column-wise in small numpy arrays (codes into the benchmark's value
tables) because benchmarks run with up to 200,000 items and start-up must stay well under a
second; ids are computed on demand from the index with a keyed Feistel permutation, so
looking an id up is O(1) arithmetic instead of a 200k-entry dict.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from mirror.emulator.benchmarks import BenchmarkDef
from mirror.emulator.images import DOCUMENT_SIZE, FACE_SIZE, GENDERS, SCENES, SKIN_TONES, ImageSpec
from mirror.emulator.perturb import PIPELINES

_ITA_RANGES = {  # Individual Typology Angle band per skin tone (Chardon et al.)
    "very_light": (55.0, 70.0), "light": (41.0, 55.0), "intermediate": (28.0, 41.0),
    "tan": (10.0, 28.0), "brown": (-30.0, 10.0), "dark": (-60.0, -30.0),
}
_OCCLUSIONS = ("none", "none", "none", "glasses", "hair", "hand", "mask")
_DIFFICULTIES = ("easy", "medium", "hard")
IMAGE_SIZE = {"face": FACE_SIZE, "document": DOCUMENT_SIZE}


def delivered_size(style: str, perturbation: str) -> tuple[int, int]:
    """Pixel size of a delivered image: resizes and platform pipelines scale the base."""
    width, height = IMAGE_SIZE[style]
    if perturbation.startswith("resize_"):
        factor = float(perturbation.partition("_")[2])
    elif perturbation in PIPELINES:
        factor = PIPELINES[perturbation].scale
    else:
        return width, height
    return max(1, round(width * factor)), max(1, round(height * factor))


@dataclass(frozen=True, slots=True)
class Lineage:
    """One real source and its fakes; codes index the benchmark's value tables."""

    index: int
    first_base: int
    identity: int  # -1 = unresolved (identity_id null)
    skin: int
    gender: int
    fakes: tuple[tuple[int, int], ...]  # (generator code, scene code) per fake
    attr: int  # attribute-dimension code, -1 when the benchmark has none
    sample: bool  # part of the free test-tier sample

    @property
    def n_bases(self) -> int:
        return 1 + len(self.fakes)


class _Permutation:
    """A keyed 4-round Feistel permutation of ``bits``-bit integers (ids that look random
    but decode back to the index without a lookup table)."""

    def __init__(self, key: bytes, bits: int) -> None:
        self._key, self._half = key, bits // 2
        self._mask = (1 << self._half) - 1

    def _f(self, rnd: int, value: int) -> int:
        digest = hashlib.blake2b(bytes([rnd]) + value.to_bytes(8, "big"), key=self._key, digest_size=8)
        return int.from_bytes(digest.digest(), "big") & self._mask

    def encode(self, x: int) -> int:
        left, right = x >> self._half, x & self._mask
        for rnd in range(4):
            left, right = right, left ^ self._f(rnd, right)
        return (left << self._half) | right

    def decode(self, y: int) -> int:
        left, right = y >> self._half, y & self._mask
        for rnd in reversed(range(4)):
            left, right = right ^ self._f(rnd, left), left
        return (left << self._half) | right


def cell_of_identity(seed: int, bench_id: str, identity: int) -> tuple[int, int]:
    """(skin, gender) codes of a resolved identity: every block of 12 consecutive new people
    covers each skin tone × gender cell once, in a seeded order.

    Drawing cells independently left small corpora with a few cells only (the 600-item demo had
    5 of 12), so a fairness breakdown showed little; the block schedule guarantees coverage as
    soon as 12 people exist and keeps the cells balanced at any size.
    """
    cells = len(SKIN_TONES) * len(GENDERS)
    order = random.Random(f"{seed}:{bench_id}:cells:{identity // cells}").sample(range(cells), cells)
    cell = order[identity % cells]
    return cell // len(GENDERS), cell % len(GENDERS)


class LineageStream:
    """Generates lineages in order; identities recur across lineages (a person has several
    source photos) and ~6% of lineages have no resolved identity. Resolved people get their
    cell from ``cell_of_identity``."""

    def __init__(self, bench: BenchmarkDef, seed: int) -> None:
        self._bench, self._seed = bench, seed
        self.lineages: list[Lineage] = []
        self._next_base = 0
        self._identities: list[tuple[int, int, int]] = []  # (identity, skin, gender)

    def extend_to(self, count: int) -> None:
        while len(self.lineages) < count:
            self._generate()

    def _generate(self) -> None:
        bench, idx = self._bench, len(self.lineages)
        rng = random.Random(f"{self._seed}:{bench.id}:lineage:{idx}")
        if idx % 16 == 3 or rng.random() < 0.03:  # every corpus has a few unresolved rows
            identity, skin, gender = -1, rng.randrange(len(SKIN_TONES)), rng.randrange(len(GENDERS))
        elif self._identities and rng.random() < 0.45:
            identity, skin, gender = rng.choice(self._identities[-6:])
        else:
            identity = len(self._identities)
            rng.randrange(len(SKIN_TONES)), rng.randrange(len(GENDERS))  # kept: the later draws stay as they were
            skin, gender = cell_of_identity(self._seed, bench.id, identity)
            self._identities.append((identity, skin, gender))
        n_fakes = rng.randint(1, min(3, len(bench.generators)))
        gens = sorted(rng.sample(range(len(bench.generators)), n_fakes))
        fakes = tuple((g, rng.randrange(len(SCENES))) for g in gens)
        attr = rng.randrange(len(bench.attribute.values)) if bench.attribute else -1
        sample = idx == 0 or rng.random() < 0.3
        self.lineages.append(Lineage(idx, self._next_base, identity, skin, gender, fakes, attr, sample))
        self._next_base += 1 + n_fakes


class Corpus:
    """All items of one benchmark, plus the append log that grows it.

    ``segments`` records how the corpus was cut: the initial ``items`` count, then one entry
    per admin append (each starting at a fresh lineage).  Replaying the same segments with
    the same seed reproduces the same items, which is how appends survive a restart.
    """

    def __init__(self, bench: BenchmarkDef, seed: int, items: int, appends: list[int] | None = None) -> None:
        self.bench, self.seed = bench, seed
        key = hashlib.blake2b(f"margen-emulator:{seed}:{bench.id}".encode(), digest_size=32).digest()
        self._tag_key = key
        self._item_perm = _Permutation(key[:16], 64)
        self._base_perm = _Permutation(key[16:], 48)
        self._ident_perm = _Permutation(key[8:24], 40)
        self._stream = LineageStream(bench, seed)
        self.taken: list[tuple[int, int]] = []  # (lineage index, items taken), in order
        self.release_sizes: list[int] = []
        self._id_cache: dict[int, str] = {}
        self._index_cache: dict[str, int] = {}     # the reverse: ids already issued, decoded by a lookup
        self._base_cache: dict[int, str] = {}
        self._ident_cache: dict[int, str] = {}
        nv = len(bench.variants)
        self._variant_pert = np.array([bench.dimension("perturbation").values.index(p)
                                       for p, _ in bench.variants], dtype=np.int8)
        self._variant_layer = np.array([bench.dimension("layer").values.index(layer)
                                        for layer in bench.variant_layers], dtype=np.int8)
        self._nv = nv
        self.cols: dict[str, np.ndarray] = {}
        self.n = 0
        self._add_segment(items)
        for count in appends or []:
            self._add_segment(count)

    # -- growth ---------------------------------------------------------------------------

    def append(self, count: int) -> int:
        """Append ``count`` items as whole new lineages (the last one cut at ``count``)."""
        return self._add_segment(count)

    def _add_segment(self, count: int) -> int:
        start = self.taken[-1][0] + 1 if self.taken else 0
        new: list[tuple[int, int]] = []
        left, idx = count, start
        while left > 0:
            self._stream.extend_to(idx + 1)
            size = self._stream.lineages[idx].n_bases * self._nv
            take = min(size, left)
            new.append((idx, take))
            left -= take
            idx += 1
        self.taken.extend(new)
        if new:
            cols = self._build([self._stream.lineages[i] for i, _ in new], [t for _, t in new])
            self.cols = cols if not self.cols else {k: np.concatenate([self.cols[k], cols[k]]) for k in cols}
        self.n += count
        self.release_sizes.append(self.n)
        return count

    def _build(self, lineages: list[Lineage], takes: list[int]) -> dict[str, np.ndarray]:
        """Columns for consecutive lineages, each cut after its ``takes`` items."""
        nv = self._nv
        per_base: dict[str, list[int]] = {k: [] for k in ("kind", "gen", "scene", "base", "local", "pos")}
        for k, lg in enumerate(lineages):
            for j in range(lg.n_bases):
                fake = lg.fakes[j - 1] if j else (-1, -1)
                for name, value in (("kind", int(j > 0)), ("gen", fake[0]), ("scene", fake[1]),
                                    ("base", lg.first_base + j), ("local", k), ("pos", j * nv)):
                    per_base[name].append(value)

        def rows(values: list[int], dtype: type) -> np.ndarray:  # per-base value -> per-item column
            return np.repeat(np.array(values, dtype=dtype), nv)

        def per_lineage(attr: str, dtype: type) -> np.ndarray:
            return np.array([getattr(lg, attr) for lg in lineages], dtype=dtype)[local]

        variant = np.tile(np.arange(nv, dtype=np.int8), len(per_base["base"]))
        local = rows(per_base["local"], np.int32)
        cols = {
            "kind": rows(per_base["kind"], np.int8), "gen": rows(per_base["gen"], np.int8),
            "scene": rows(per_base["scene"], np.int8), "base": rows(per_base["base"], np.int32),
            "lineage": per_lineage("index", np.int32), "variant": variant,
            "pert": self._variant_pert[variant], "layer": self._variant_layer[variant],
            "skin": per_lineage("skin", np.int8), "gender": per_lineage("gender", np.int8),
            "identity": per_lineage("identity", np.int32), "attr": per_lineage("attr", np.int8),
            "sample": per_lineage("sample", np.bool_),
        }
        keep = rows(per_base["pos"], np.int32) + variant < np.array(takes, dtype=np.int32)[local]
        return {k: v[keep] for k, v in cols.items()}

    # -- ids ------------------------------------------------------------------------------

    def item_id(self, index: int) -> str:
        cached = self._id_cache.get(index)
        if cached is None:
            block = self._item_perm.encode(index).to_bytes(8, "big")
            tag = hashlib.blake2b(block, key=self._tag_key, digest_size=8).hexdigest()
            h = block.hex()
            cached = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{tag[:4]}-{tag[4:]}"
            self._id_cache[index] = cached
            self._index_cache[cached] = index
        return cached

    def index_of(self, item_id: str) -> int | None:
        """Decode an item id back to its index; None when it is not an item of this corpus.

        An id this corpus has issued is found by lookup: decoding (a tag check and four keyed hash
        rounds) was ~7% of the emulator's CPU on a mirror run, one /download and one storage fetch
        per item."""
        known = self._index_cache.get(item_id)
        if known is not None:
            return known if known < self.n else None
        raw = item_id.replace("-", "")
        if len(raw) != 32 or len(item_id) != 36:
            return None
        try:
            block = bytes.fromhex(raw[:16])
        except ValueError:
            return None
        if hashlib.blake2b(block, key=self._tag_key, digest_size=8).hexdigest() != raw[16:].lower():
            return None
        index = self._item_perm.decode(int.from_bytes(block, "big"))
        return index if index < self.n and self.item_id(index) == item_id else None

    def base_id(self, base: int) -> str:
        cached = self._base_cache.get(base)
        if cached is None:
            cached = self._base_cache[base] = f"img_{self._base_perm.encode(base):012x}"
        return cached

    def decode_base(self, value: str) -> int | None:
        if len(value) != 16 or not value.startswith("img_"):
            return None
        try:
            return self._base_perm.decode(int(value[4:], 16))
        except ValueError:
            return None

    @staticmethod
    def lineage_id(lineage: int) -> str:
        return f"real_{lineage:06d}"

    @staticmethod
    def decode_lineage(value: str) -> int | None:
        digits = value[5:]
        if not value.startswith("real_") or len(digits) < 6 or not digits.isdigit():
            return None
        return int(digits) if f"real_{int(digits):06d}" == value else None

    def identity_id(self, identity: int) -> str | None:
        if identity < 0:
            return None
        cached = self._ident_cache.get(identity)
        if cached is None:
            cached = self._ident_cache[identity] = f"idn_{self._ident_perm.encode(identity):010x}"
        return cached

    # -- rendering of one item --------------------------------------------------------------

    def item_json(self, i: int, metadata: bool = False) -> dict:
        b, c = self.bench, self.cols
        gen, scene = int(c["gen"][i]), int(c["scene"][i])
        pert = b.variants[int(c["variant"][i])][0]
        item = {
            "object": "attack_data_item", "id": self.item_id(i), "benchmark": b.id,
            "kind": "real" if c["kind"][i] == 0 else "fake",
            "skin_tone": SKIN_TONES[c["skin"][i]], "gender": GENDERS[c["gender"][i]],
            "generator": None if gen < 0 else b.generators[gen], "perturbation": pert,
            "layer": b.variant_layers[int(c["variant"][i])],
            "base_id": self.base_id(int(c["base"][i])),
            "source_real_id": self.lineage_id(int(c["lineage"][i])),
            "identity_id": self.identity_id(int(c["identity"][i])),
            "scene": None if scene < 0 else SCENES[scene],
            "attributes": ({b.attribute.key: b.attribute.values[c["attr"][i]]} if b.attribute else {}),
        }
        if metadata:
            item["metadata"] = self.metadata(i, item)
        return item

    def metadata(self, i: int, item: dict | None = None) -> dict:
        """The flat per-image label object of ``include=metadata`` (deterministic per item)."""
        item = item or self.item_json(i)
        rng = random.Random(f"{self.seed}:{self.bench.id}:meta:{int(self.cols['base'][i])}")
        lo, hi = _ITA_RANGES[item["skin_tone"]]
        width, height = delivered_size(self.bench.style, item["perturbation"])
        meta = {
            "skin_tone": item["skin_tone"], "ita": round(rng.uniform(lo, hi), 2),
            "skin_tone_confidence": round(rng.uniform(0.7, 0.99), 3),
            "gender": item["gender"], "gender_confidence": round(rng.uniform(0.75, 0.999), 3),
            "gender_crosscheck_agree": rng.random() < 0.95,
            "age": rng.randint(18, 80), "age_confidence": round(rng.uniform(0.5, 0.95), 3),
            "scene": item["scene"], "scene_confidence": None if item["scene"] is None else
            round(rng.uniform(0.6, 0.99), 3),
            "face_count": 1, "face_confidence": round(rng.uniform(0.9, 0.999), 3),
            "occlusion": rng.choice(_OCCLUSIONS), "difficulty": rng.choice(_DIFFICULTIES),
            "kind": item["kind"], "generator": item["generator"], "perturbation": item["perturbation"],
            "layer": item["layer"], "width": width, "height": height, "format": "jpeg",
        }
        meta.update(item["attributes"])
        return meta

    def image_spec(self, i: int) -> ImageSpec:
        c, b = self.cols, self.bench
        gen, scene, variant = int(c["gen"][i]), int(c["scene"][i]), int(c["variant"][i])
        pert, recropped = b.variants[variant]
        return ImageSpec(
            seed=self.seed * 1_000_003 + int(c["base"][i]),
            base_key=f"{b.id}:{self.base_id(int(c['base'][i]))}",
            identity_key=self.identity_id(int(c["identity"][i])),
            kind="real" if c["kind"][i] == 0 else "fake",
            skin_tone=SKIN_TONES[c["skin"][i]], gender=GENDERS[c["gender"][i]],
            generator=None if gen < 0 else b.generators[gen],
            scene=None if scene < 0 else SCENES[scene],
            perturbation=pert, recropped=recropped, style=b.style)
