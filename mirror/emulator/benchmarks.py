"""Benchmark definitions: the registry the emulator's /benchmarks and /catalog publish.

The real API is registry-driven ("do not hardcode dimension values in a client"), so every
dimension, its allowed values and labels live in one table here and the corpus, the filters,
the catalog and the release shard sets are all derived from it.  A second benchmark
(``passport-pad-v1``) exists so clients meet an attribute-backed dimension, a benchmark that is
not visible to every key, and the ``ambiguous_benchmark`` rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mirror.emulator.images import (
    GENDERS,
    GENERATORS,
    LAYER_LABELS,
    LAYERS,
    PERTURBATION_LABELS,
    PERTURBATIONS,
    SCENES,
    SKIN_TONES,
    layer_of,
)

FACES = "synthetic-face-v1"
PASSPORT = "passport-pad-v1"
DEFAULT_BENCHMARKS: tuple[str, ...] = (FACES,)

KINDS = ("real", "fake")
PIPELINES = tuple(p for p in PERTURBATIONS if p.endswith("_pipeline"))
DOCUMENT_TYPES = ("passport", "id_card", "drivers_license")

SKIN_TONE_LABELS = {
    "very_light": "Very light", "light": "Light", "intermediate": "Intermediate",
    "tan": "Tan", "brown": "Brown", "dark": "Dark",
}
GENERATOR_LABELS = {
    "diffusion-v1": "Diffusion v1", "stylegan2": "StyleGAN2", "sdxl-1.0": "SDXL 1.0",
    "flux1-dev": "FLUX.1 [dev]",
}


@dataclass(frozen=True)
class Dimension:
    """One queryable dimension.

    ``column`` names the corpus column holding value codes (an index into ``values``);
    lineage keys have no values and are matched by decoding the id instead.
    """

    key: str
    label: str
    column: str
    values: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    source: str = "column"
    alias: str | None = None
    lineage: bool = False
    note: str | None = None

    @property
    def fixed(self) -> bool:
        return not self.lineage

    def catalog_entry(self) -> dict:
        entry: dict = {"key": self.key, "label": self.label, "source": self.source}
        if self.alias:
            entry["alias"] = self.alias
        if self.lineage:
            entry["lineage"] = True
        else:
            entry["values"] = [{"value": v, "label": self.labels.get(v, v)} for v in self.values]
        if self.note:
            entry["note"] = self.note
        return entry


@dataclass(frozen=True)
class BenchmarkDef:
    """A benchmark: its public description plus how its deterministic corpus is shaped.

    ``variants`` lists the (perturbation, recropped) conditions every base image is
    delivered in; ``generators`` are the fakes a lineage can draw from.
    """

    id: str
    product: str
    title: str
    description: str
    style: str
    generators: tuple[str, ...]
    variants: tuple[tuple[str, bool], ...]
    dimensions: tuple[Dimension, ...]
    attribute: Dimension | None = None
    default_items: int = 0

    def public(self) -> dict:
        return {
            "object": "benchmark", "id": self.id, "product": self.product, "title": self.title,
            "description": self.description, "dimensions": [d.key for d in self.dimensions],
        }

    def summary(self) -> dict:
        """The ``available`` entry of an unknown/ambiguous benchmark error."""
        return {"id": self.id, "title": self.title, "product": self.product}

    def dimension(self, key: str) -> Dimension | None:
        for dim in self.dimensions:
            if dim.key == key or dim.alias == key:
                return dim
        return None

    @cached_property
    def variant_layers(self) -> tuple[str, ...]:
        return tuple(layer_of(p, r) for p, r in self.variants)


def _common_dims(generators: tuple[str, ...], perturbations: tuple[str, ...]) -> list[Dimension]:
    layers = tuple(sorted({layer_of(p, r) for p in perturbations for r in (False, True)
                           if r is False or p in PIPELINES}, key=LAYERS.index))
    return [
        Dimension("skin_tone", "Skin tone", "skin", SKIN_TONES, SKIN_TONE_LABELS),
        Dimension("gender", "Gender", "gender", GENDERS, {"female": "Female", "male": "Male"}),
        Dimension("kind", "Kind", "kind", KINDS, {"real": "Real", "fake": "Fake (AI-generated)"}),
        Dimension("generator", "Generator", "gen", generators,
                  {g: GENERATOR_LABELS.get(g, g) for g in generators},
                  note="Fake items only; null for real images."),
        Dimension("perturbation", "Condition", "pert", perturbations,
                  {p: PERTURBATION_LABELS[p] for p in perturbations}, alias="condition"),
        Dimension("layer", "Layer", "layer", layers, {k: LAYER_LABELS[k] for k in layers}),
    ]


def _lineage_dims() -> list[Dimension]:
    return [
        Dimension("base_id", "Base image", "base", lineage=True,
                  note="Every perturbation of one base image shares it."),
        Dimension("source_real_id", "Source real image", "lineage", lineage=True,
                  note="The real image a lineage descends from; shared by the whole lineage."),
    ]


_FACE_VARIANTS = tuple((p, False) for p in PERTURBATIONS) + tuple((p, True) for p in PIPELINES)
_FACE_DIMS = _common_dims(GENERATORS, PERTURBATIONS) + [
    Dimension("scene", "Scene", "scene", SCENES, {s: s.capitalize() for s in SCENES},
              note="Synthetic images only; null for real images."),
] + _lineage_dims()

_PASSPORT_PERTS = ("clean", "jpeg_q70", "ig_pipeline")
_PASSPORT_VARIANTS = (("clean", False), ("jpeg_q70", False), ("ig_pipeline", False), ("ig_pipeline", True))
_PASSPORT_GENS = ("sdxl-1.0", "flux1-dev")
_DOCUMENT_DIM = Dimension(
    "document_type", "Document type", "attr", DOCUMENT_TYPES,
    {"passport": "Passport", "id_card": "National ID card", "drivers_license": "Driver's license"},
    source="attribute")
_PASSPORT_DIMS = _common_dims(_PASSPORT_GENS, _PASSPORT_PERTS) + [_DOCUMENT_DIM] + _lineage_dims()

BENCHMARKS: dict[str, BenchmarkDef] = {
    FACES: BenchmarkDef(
        id=FACES, product="faces", title="Synthetic Face Image",
        description=("Real vs AI-generated face crops across demographic cells and generator "
                     "models, re-encoded through platform pipelines and image perturbations."),
        style="face", generators=GENERATORS, variants=_FACE_VARIANTS,
        dimensions=tuple(_FACE_DIMS)),
    PASSPORT: BenchmarkDef(
        id=PASSPORT, product="liveness", title="Passport Presentation Attacks",
        description=("Bona fide identity-document photos vs AI-generated forgeries, for "
                     "presentation-attack detection."),
        style="document", generators=_PASSPORT_GENS, variants=_PASSPORT_VARIANTS,
        dimensions=tuple(_PASSPORT_DIMS), attribute=_DOCUMENT_DIM, default_items=120),
}
