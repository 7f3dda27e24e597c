"""Stage 1: a selection becomes a stream of item pages.

Plain selections walk in cursor mode (stable while the server appends items, and resumable from
a saved cursor); ``--lineage`` and ``--distinct-identities`` exist only in offset form on the
API, so they page by offset over lineages or identities. Every walk refuses to loop: a page that
claims more but makes no progress ends the walk with an error instead of spinning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass

from mirror.api.client import MargenClient
from mirror.api.models import Item, Page
from mirror.errors import TransportError
from mirror.jobs import Selection

__all__ = ["PAGE_SIZE", "Probe", "PageOf", "page_params", "probe", "unowned", "walk"]

PAGE_SIZE = 500   # the API's maximum; fewer pages means fewer rate-limited calls
_BASE_IDS_PER_REQUEST = 50      # ownership questions: keeps the query string near 2 KB


@dataclass(frozen=True)
class Probe:
    """What the account owns of a selection, from one ``exclude_owned`` request."""

    total_matching: int
    owned: int
    remaining: int


@dataclass(frozen=True)
class PageOf:
    items: list[Item]
    cursor: str | None        # the cursor that fetched this page (cursor mode), to resume from later
    malformed: int = 0        # entries the server sent without a usable id


async def probe(client: MargenClient, selection: Selection) -> Probe | None:
    """One cheap request telling how much of the selection is already paid for (plain mode only)."""
    if selection.lineage or selection.distinct_identities:
        return None
    params = {**selection.query(), "exclude_owned": "true", "limit": "1", "offset": "0"}
    params.pop("include", None)
    page = await client.items(params)
    raw = page.raw
    remaining = raw.get("remaining", page.total)
    total = raw.get("total_matching")
    owned = raw.get("owned")
    if not all(isinstance(v, int) for v in (remaining, total, owned)):
        raise TransportError("the server's exclude_owned answer lacks remaining/owned/total_matching")
    return Probe(total_matching=total, owned=owned, remaining=remaining)


def page_params(selection: Selection, cursor: str) -> dict[str, str]:
    """The ``/items`` query of one cursor-mode page of a plain selection."""
    return {**selection.query(), "limit": str(PAGE_SIZE), "cursor": cursor}


async def unowned(client: MargenClient, benchmark: str | None, base_ids: Iterable[str]) -> set[str]:
    """Ids the account does not own among every item of these base images (``exclude_owned`` listing).

    ``/download`` charges an item the account does not own, and nothing tells beforehand, except
    this listing: ``base_id`` takes a comma-separated list, so ~50 base images cost one request.
    """
    found: set[str] = set()
    ordered = sorted(set(base_ids))
    for start in range(0, len(ordered), _BASE_IDS_PER_REQUEST):
        params = {"base_id": ",".join(ordered[start:start + _BASE_IDS_PER_REQUEST]), "exclude_owned": "true",
                  "limit": str(PAGE_SIZE)}
        if benchmark:
            params["benchmark"] = benchmark
        offset = 0
        while True:
            page = await client.items({**params, "offset": str(offset)})
            found.update(item["id"] for item in page.items)
            if not page.has_more or not page.items:
                break
            offset += len(page.items)
    return found


async def walk(client: MargenClient, selection: Selection, *, start_cursor: str = "",
               first: Awaitable[Page] | None = None) -> AsyncIterator[PageOf]:
    """Yield every page of the selection once, in server order.

    ``first``, in cursor mode: the page at ``start_cursor``, already asked for by the caller.
    """
    if selection.lineage or selection.distinct_identities:
        async for page in _walk_offset(client, selection):
            yield page
        return
    cursor = start_cursor
    seen: set[str] = set()
    while True:
        if first is not None:
            page, first = await first, None
        else:
            page = await client.items(page_params(selection, cursor))
        yield PageOf(page.items, cursor, page.malformed)
        if not page.has_more:
            return
        nxt = page.next_cursor
        if nxt is None or nxt in seen or (not page.items and nxt == cursor):
            raise TransportError("the server said has_more but gave no new cursor; stopped the walk to avoid a "
                                 "loop (run again later)")
        seen.add(nxt)
        cursor = nxt


async def _walk_offset(client: MargenClient, selection: Selection) -> AsyncIterator[PageOf]:
    flag = "lineage" if selection.lineage else "distinct_identities"
    limit = 100 if selection.lineage else PAGE_SIZE     # lineage pages count lineages, each ~60 rows
    offset = 0
    while True:
        page = await client.items({**selection.query(), flag: "true", "limit": str(limit), "offset": str(offset)})
        yield PageOf(page.items, None, page.malformed)
        if not page.has_more:
            return
        if selection.lineage:
            step = page.raw.get("lineages")
            if not isinstance(step, int):
                step = len({it.get("source_real_id") for it in page.items})
        else:
            step = len(page.items)
        if step <= 0:
            raise TransportError("the server said has_more but returned an empty page; stopped the walk")
        offset += step
