"""The signed-URL storage route: where /download's ``url`` and release shard URLs point.

Like a real object store it needs no API key, only a valid unexpired signature; a request
that nevertheless carries ``Authorization`` or ``x-api-key`` is refused with 400 and counted
(``auth_header_refusals``), because a client that sends its key here would leak it to a
third party in production.  Errors are plain text, as object stores answer.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from mirror.emulator.corpus import Corpus
from mirror.emulator.routes import STATE_KEY
from mirror.emulator.state import EmulatorState

STORAGE_PREFIX = "/_storage"
RELEASE_KEY: web.AppKey = web.AppKey("emulator_release")
_SLOW_CHUNKS = 16


async def image_bytes(state: EmulatorState, corpus: Corpus, index: int) -> bytes:
    """The item's JPEG; a memory hit skips the thread-pool hop, a miss renders off-loop."""
    spec = corpus.image_spec(index)
    data = state.images.cached(spec)
    if data is None:
        data = await asyncio.get_running_loop().run_in_executor(None, state.images.get, spec)
    return data


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


async def storage(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    counters = state.counters
    counters.storage_requests += 1
    if "Authorization" in request.headers or "x-api-key" in request.headers:
        counters.auth_header_refusals += 1
        return _plain(400, "Authorization headers are not accepted on signed URLs; send no credentials.")
    problem = state.signer.check_path(request.path, request.query.get("exp", ""), request.query.get("sig", ""))
    if problem is not None:
        counters.storage_forbidden += 1
        return _plain(403, f"Request has {problem} signature." if problem == "expired" else "Signature mismatch.")
    tail = request.match_info["tail"]
    part = tail.startswith("releases/")
    if part:
        data, content_type = await _release_part(request, tail), "application/vnd.apache.parquet"
    else:
        bench_id, _, name = tail.partition("/")
        corpus = state.corpora.get(bench_id)
        index = corpus.index_of(name.removesuffix(".jpg")) if corpus and name.endswith(".jpg") else None
        if corpus is None or index is None:
            return _plain(404, "No such object.")
        data, content_type = await image_bytes(state, corpus, index), "image/jpeg"
    if data is None:
        return _plain(404, "No such object.")
    return await _send(request, state, data, content_type, part=part)


async def _release_part(request: web.Request, tail: str) -> bytes | None:
    return await request.app[RELEASE_KEY].part_bytes(tail.removeprefix("releases/"))


async def _send(request: web.Request, state: EmulatorState, data: bytes, content_type: str, *,
                part: bool = False) -> web.StreamResponse:
    """Send one object, applying the storage faults (and, for a release ``part``, the part faults)."""
    faults = state.faults
    if part and faults.roll("part_500"):
        return _plain(500, "Internal error.")
    if (part and faults.roll("part_drop")) or faults.roll("storage_drop"):
        return await _broken(request, data, content_type, len(data), len(data) // 2)
    if (part and faults.roll("part_truncate")) or faults.roll("storage_truncate"):
        return await _broken(request, data, content_type, len(data) + max(1024, len(data) // 4), len(data))
    slow = faults.roll("storage_slow")
    state.counters.storage_ok += 1  # counted before sending: the client may see the body before we return
    headers = {"Content-Type": content_type, "Cache-Control": "private, max-age=0"}
    if not slow:        # headers and body in one write (a StreamResponse costs three awaits)
        return web.Response(body=data, headers=headers)
    resp = web.StreamResponse(headers=headers)
    resp.content_length = len(data)
    await resp.prepare(request)
    step = max(1, -(-len(data) // _SLOW_CHUNKS))
    for start in range(0, len(data), step):
        await asyncio.sleep(faults.settings.slow_seconds / _SLOW_CHUNKS)
        await resp.write(data[start:start + step])
    await resp.write_eof()
    return resp


async def _broken(request: web.Request, data: bytes, content_type: str, declared: int, sent: int
                  ) -> web.StreamResponse:
    """Announce ``declared`` bytes, send ``sent``, then cut the connection."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    resp.content_length = declared
    await resp.prepare(request)
    await resp.write(data[:sent])
    await asyncio.sleep(0.01)  # let the partial body reach the socket before the reset
    if request.transport is not None:
        request.transport.close()
    return resp

