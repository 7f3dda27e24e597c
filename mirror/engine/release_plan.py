"""Which way to mirror a selection, per image or as a bulk release, and what each would cost.

``/release`` lists a release's parts only in the answer that buys it, so nothing here sends a
request that could buy anything:

* ``list_releases`` asks for a pull whose filters keep no shard set (``kind=fake`` and a generator
  no set has). By contract such a pull delivers nothing and costs nothing; it names the newest
  release, every release, the key's coverage and, since nothing matched, the filter values that
  would. A server that refuses the made-up value outright (400) has sold nothing either.
* ``release_selections`` turns the release's filters back into ``/items`` selections, and their
  ``exclude_owned`` counts (``quote``) bound ``credits_required`` from above: a release is a
  snapshot of the corpus, never more than ``/items`` lists, and owning only grows. ``generator=``
  keeps the real sets too unless ``kind`` names fakes alone, so that quote adds the reals.

The choice (``choose``) is for ``--source auto``: the release when the key is covered, the
selection maps onto whole shard sets, its credits are no more than per image and fit both
``--max-credits`` and the balance, and it takes fewer API calls than fetching image by image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mirror.api.client import MargenClient
from mirror.api.models import Release
from mirror.engine.outlook import describe_duration, estimate_seconds, listing_calls
from mirror.engine.pages import Probe, probe
from mirror.errors import InvalidParam, UsageError
from mirror.jobs import Selection

__all__ = ["SOURCES", "RELEASE_FILTERS", "ReleasePlan", "WayCosts", "release_filters", "release_selections",
           "list_releases", "quote", "choose"]

SOURCES = ("per-image", "release", "auto")
RELEASE_FILTERS = ("generator", "kind", "condition", "skin_tone", "gender", "layer")
_TO_RELEASE = {"perturbation": "condition"}       # /catalog's key -> the /release parameter
_NO_SUCH_GENERATOR = "margen-mirror-listing-only"  # a value no shard set has: the pull keeps nothing
# API calls of a release pull besides the per-selection quotes: /catalog, /usage, the listing,
# the purchase, and one owned count afterwards per quoted selection (see engine/release.py).
_RELEASE_FIXED_CALLS = 4


def release_filters(selection: Selection) -> tuple[dict[str, list[str]] | None, str]:
    """The ``/release`` filters ``selection`` stands for, or None and why it is no release."""
    if selection.lineage or selection.distinct_identities:
        mode = "--lineage" if selection.lineage else "--distinct-identities"
        return None, f"{mode} is not a set of whole shard sets"
    out: dict[str, list[str]] = {}
    for key, values in selection.filters.items():
        name = _TO_RELEASE.get(key, key)
        if name not in RELEASE_FILTERS:
            return None, (f"filter {key}= does not select whole shard sets (a release filters by "
                          f"{', '.join(RELEASE_FILTERS)})")
        out[name] = list(values)
    return out, ""


def adds_reals(filters: dict[str, list[str]]) -> bool:
    """Whether the release keeps real sets the ``/items`` selection of the same words does not hold."""
    return "generator" in filters and "real" in filters.get("kind", ["real"])


def release_selections(selection: Selection, filters: dict[str, list[str]]) -> list[Selection]:
    """``/items`` selections whose union is every image the release's filters keep."""
    plain = Selection(benchmark=selection.benchmark, filters=selection.filters)
    if not adds_reals(filters):
        return [plain]
    reals = {k: v for k, v in selection.filters.items() if k not in ("generator", "kind")}
    out = [Selection(benchmark=selection.benchmark, filters={**reals, "kind": ("real",)})]
    if "fake" in filters.get("kind", ["fake"]):
        out.append(Selection(benchmark=selection.benchmark, filters={**selection.filters, "kind": ("fake",)}))
    return out


async def list_releases(client: MargenClient, benchmark: str | None, release: str | None = None) -> Release | None:
    """The releases of ``benchmark``, from a pull that keeps no set and so costs nothing (see the
    module docstring); None when the server will not list them that way. An unknown ``release``
    is a UsageError naming the ones that exist."""
    try:
        listing = await client.release(benchmark, release=release,
                                       filters={"kind": ["fake"], "generator": [_NO_SUCH_GENERATOR]})
    except InvalidParam as exc:
        if exc.param == "release":
            raise UsageError(f"unknown release {release!r} of {benchmark}"
                             + (f"; available: {', '.join(exc.allowed)}" if exc.allowed else "")) from None
        return None
    if listing.parts or listing.credits_required:
        # Never expected of a server keeping the contract; said loudly rather than mirrored quietly.
        raise UsageError(f"the server sold a release for a request whose filters keep no shard set "
                         f"({listing.credits_required} credits); nothing was fetched: report this to Margen")
    return listing


async def quote(client: MargenClient, selections: list[Selection]) -> Probe:
    """Images, owned and not, of the union of ``selections`` (disjoint by construction)."""
    total = owned = remaining = 0
    for selection in selections:
        found = await probe(client, selection)
        assert found is not None, "plain selections always have a probe"
        total, owned, remaining = total + found.total_matching, owned + found.owned, remaining + found.remaining
    return Probe(total_matching=total, owned=owned, remaining=remaining)


@dataclass(frozen=True)
class WayCosts:
    """What one way would take: images to fetch, credits, API calls and their time at the key's rate."""

    items: int | None
    credits: int | None
    api_calls: int | None
    seconds: float | None

    @classmethod
    def at_rate(cls, items: int | None, credits: int | None, api_calls: int, rate_limit: float) -> WayCosts:
        """A way whose API calls are all it waits for at the key's rate (a release: its parts are not paced)."""
        return cls(items, credits, api_calls, round(estimate_seconds(0, rate_limit, api_calls), 1))


def per_image_costs(matching: int | None, here: int | None, to_charge: int | None, rate_limit: float) -> WayCosts:
    """The per-image way (``engine/outlook``): ``/catalog`` and a count, one ``/items`` page per 500
    items and one ``/download`` per image missing here."""
    if matching is None:
        return WayCosts(None, to_charge, None, None)
    missing = max(0, matching - (here or 0))
    return WayCosts(missing, to_charge, listing_calls(matching) + missing,
                    round(estimate_seconds(missing, rate_limit, listing_calls(matching)), 1))


def release_calls(selections: int) -> int:
    return _RELEASE_FIXED_CALLS + 2 * selections


@dataclass(frozen=True)
class ReleasePlan:
    """Both ways for one selection and the one a sync with ``source`` takes, with the reason."""

    source: str                      # what was asked: per-image | release | auto
    choice: str                      # what a sync would do: per-image | release
    reason: str
    per_image: WayCosts
    release: str | None = None       # the release that would be pulled
    available: tuple[str, ...] = ()
    coverage: str | None = None
    usable: str = ""                 # why the release cannot serve this selection ("" if it can)
    adds_reals: bool = False         # generator= keeps the real sets as well
    release_costs: WayCosts | None = None
    parts: int | None = None         # known once bought (a free re-pull lists them)
    sets: int | None = None
    part_bytes: int | None = None

    def lines(self) -> list[str]:
        def show(value: int | float | None, unit: str = "") -> str:
            return "unknown" if value is None else f"{value:,}{unit}"

        def way(costs: WayCosts | None) -> str:
            if costs is None:
                return "-"
            time = "unknown" if costs.seconds is None else describe_duration(costs.seconds)
            return (f"{show(costs.items)} images, {show(costs.credits)} credits, {show(costs.api_calls)} API calls "
                    f"({time} at the key's rate)")

        out = [f"per image        {way(self.per_image)}"]
        if self.usable:
            out.append(f"release          not usable: {self.usable}")
        else:
            known = "sets and parts are listed with the purchase"
            if self.parts is not None and self.sets is not None:
                size = f", {self.part_bytes / 1e6:,.1f} MB" if self.part_bytes is not None else ""
                known = f"{self.sets:,} shard sets in {self.parts:,} parts{size}"
            at_most = "at most " if self.release_costs and self.release_costs.credits else ""
            out.append(f"release          {self.release} ({self.coverage} coverage): {known}")
            if self.release_costs is not None:
                costs = self.release_costs
                out.append(f"                 {show(costs.items)} images in whole sets, {at_most}{show(costs.credits)} "
                           f"credits net of owned, {show(costs.api_calls)} API calls plus the part downloads")
            if self.adds_reals:
                out.append("                 generator= keeps the real sets too; add kind=fake for the fakes alone")
            if len(self.available) > 1:
                out.append(f"releases         {', '.join(self.available)}")
        out.append(f"would use        {self.choice} (--source {self.source}): {self.reason}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(source: str, *, per_image: WayCosts, release_costs: WayCosts | None, usable: str,
           max_credits: int | None, balance: int | None, tier: str) -> tuple[str, str]:
    """(per-image | release, why) for ``source``; ``usable`` is why the release cannot serve ("" if it can)."""
    if source == "per-image":
        return "per-image", "the default: every selection, a partial --max-credits, only the images missing here"
    if usable:
        return "per-image", f"the release cannot serve this selection ({usable})"
    assert release_costs is not None and release_costs.credits is not None
    credits = release_costs.credits
    if max_credits is not None and credits > max_credits:
        return "per-image", (f"the release is bought whole, up to {credits:,} credits, more than --max-credits "
                             f"{max_credits:,}")
    if tier == "live" and balance is not None and credits > balance:
        return "per-image", f"the release needs up to {credits:,} credits; the balance is {balance:,}"
    if source == "release":
        return "release", "asked for with --source release"
    if per_image.credits is not None and credits > per_image.credits:
        return "per-image", (f"the release costs up to {credits:,} credits, per image {per_image.credits:,} "
                             "(it holds whole sets beyond the selection)")
    if per_image.api_calls is not None and release_costs.api_calls is not None \
            and per_image.api_calls <= release_costs.api_calls:
        return "per-image", (f"per image takes {per_image.api_calls:,} API calls, no more than the release's "
                             f"{release_costs.api_calls:,} (and fetches only what is missing)")
    return "release", (f"it covers the selection for no more credits, in {release_costs.api_calls:,} API calls "
                       f"instead of {per_image.api_calls:,}")

