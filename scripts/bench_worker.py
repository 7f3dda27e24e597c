"""One measured workload, run by ``scripts/bench.py`` in a process of its own.

Each workload runs in a fresh interpreter so the parent can read that process's own CPU time and
peak RSS from ``os.wait4``; the worker adds what only it can see (wall and CPU time of the measured
part, without interpreter start-up and imports) and writes one JSON object to ``--out``.

    bare    the transport ceiling: a cursor walk feeding C workers that each do GET /download/{id}
            then GET the signed URL and read the body, over one connection pool; no disk, no
            hashing, no manifest
    sdk     the official SDK: ``iter_items`` then ``download_selection`` into a folder
    mirror  ``margen-mirror sync ... --json``: the CLI's own ``main`` in this process
    bare-release  the ceiling of a release pull: ``GET /release``, then each part fetched (8 at once),
            read with pyarrow and its images written to files (one folder per lineage) by 2 threads;
            no verification, no hashing, no temp file and rename, no manifest

The API key comes from ``MARGEN_API_KEY``, never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

FACES = "synthetic-face-v1"


def _cpu_s() -> tuple[float, float]:
    """User and system CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


async def _bare(url: str, key: str, concurrency: int, page_size: int) -> dict:
    import asyncio

    import aiohttp

    headers = {"Authorization": f"Bearer {key}"}
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
    totals = {"items": 0, "bytes": 0, "api_calls": 0, "errors": 0}
    api = f"{url}/api/v1/data"
    # One pool for both requests of an item, as the mirror has: a worker's fetch reuses the
    # connection its /download released instead of opening one more.
    pool = aiohttp.TCPConnector(limit=concurrency + 4)
    async with pool, aiohttp.ClientSession(connector=pool, connector_owner=False) as api_session, \
            aiohttp.ClientSession(connector=pool, connector_owner=False) as storage:
        async def produce() -> None:
            cursor = ""
            while True:
                async with api_session.get(f"{api}/items", headers=headers,
                                           params={"benchmark": FACES, "limit": str(page_size),
                                                   "cursor": cursor}) as resp:
                    page = await resp.json()
                totals["api_calls"] += 1
                for item in page["data"]:
                    await queue.put(item["id"])
                if not page.get("has_more"):
                    break
                cursor = page["next_cursor"]
            for _ in range(concurrency):
                await queue.put(None)

        async def work() -> None:
            while (item_id := await queue.get()) is not None:
                async with api_session.get(f"{api}/download/{item_id}",
                                           headers={**headers, "Idempotency-Key": f"bare-{item_id}"}) as resp:
                    body = await resp.json()
                totals["api_calls"] += 1
                if resp.status != 200:
                    totals["errors"] += 1
                    continue
                async with storage.get(body["url"]) as resp:
                    data = await resp.read()
                if resp.status != 200:
                    totals["errors"] += 1
                    continue
                totals["items"] += 1
                totals["bytes"] += len(data)

        await asyncio.gather(produce(), *(work() for _ in range(concurrency)))
    return totals


async def _bare_release(url: str, key: str, dest: str, downloads: int = 8, writers: int = 2) -> dict:
    import asyncio

    import aiohttp
    import pyarrow as pa
    import pyarrow.parquet as pq

    folders: set[str] = set()

    def write(data: bytes) -> tuple[int, int]:
        table = pq.read_table(pa.BufferReader(data), columns=["id", "source_real_id", "image"])
        written = size = 0
        for item_id, lineage, image in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            folder = os.path.join(dest, lineage or "_none")
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            with open(os.path.join(folder, f"{item_id}.jpg"), "wb") as fh:
                fh.write(image)
            written, size = written + 1, size + len(image)
        return written, size

    totals = {"items": 0, "bytes": 0, "parts": 0}
    fetching, writing = asyncio.Semaphore(downloads), asyncio.Semaphore(writers)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/data/release", params={"benchmark": FACES},
                               headers={"Authorization": f"Bearer {key}"}) as resp:
            release = await resp.json()
        parts = [part["url"] for shard in release["shards"] for part in shard["parts"]]

        async def one(part_url: str) -> None:
            async with fetching:
                async with session.get(part_url) as resp:
                    data = await resp.read()
            async with writing:
                written, size = await asyncio.to_thread(write, data)
            totals["items"] += written
            totals["bytes"] += size
            totals["parts"] += 1

        await asyncio.gather(*(one(u) for u in parts))
    return totals


def _sdk(url: str, key: str, out_dir: str) -> dict:
    from margen import Margen
    from margen.ergonomics import download_selection, iter_items

    client = Margen(bearer_auth=key, server_url=url)
    picks = list(iter_items(client, benchmark=FACES))
    saved = download_selection(client, picks, out_dir, progress=False)
    return {"items": len(saved), "bytes": sum(os.path.getsize(p) for p in saved), "listed": len(picks)}


def _jpegs(src: str) -> list[bytes]:
    return [Path(root, name).read_bytes() for root, _, names in os.walk(src) for name in names
            if name.endswith(".jpg")]


async def _put(bodies: list[bytes], bucket: str, concurrency: int) -> dict:
    """The object store's ceiling: PUT ``bodies`` (the JPEGs of a mirror, read before the clock
    starts) with the sync's own client, obstore, at the mirror's concurrency."""
    import obstore
    from obstore.store import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    store = S3Store(bucket, client_options={"allow_http": endpoint.startswith("http://")})
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, body: bytes) -> None:
        async with gate:
            await obstore.put_async(store, f"bare/{i}.jpg", body, use_multipart=False)
    started = time.perf_counter()
    await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    return {"items": len(bodies), "bytes": sum(map(len, bodies)), "put_s": time.perf_counter() - started}


def _mirror(argv: list[str]) -> dict:
    from mirror.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    report = json.loads(buffer.getvalue())
    report.pop("failures", None)
    return {"exit_code": code, "report": report, "items": report.get("mirrored", 0),
            "bytes": report.get("bytes", 0)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("bare", "sdk", "mirror", "put", "bare-release"))
    p.add_argument("--src", help="put: folder of JPEGs to PUT")
    p.add_argument("--bucket", help="put: bucket to PUT into (credentials and endpoint from AWS_*)")
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--dest", help="sdk, bare-release: folder to save into")
    p.add_argument("--profile", type=Path, help="write a cProfile of the measured part here")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    rest = argv[cut + 1:]              # mirror: the CLI arguments after ``--``
    key = os.environ.get("MARGEN_API_KEY", "")
    # Imports happen before the clock starts: start-up cost is reported by the parent separately.
    if a.mode == "bare":
        import aiohttp  # noqa: F401
        run = lambda: asyncio.run(_bare(a.url, key, a.concurrency, 500))  # noqa: E731
    elif a.mode == "put":
        import obstore  # noqa: F401
        run = lambda: asyncio.run(_put(_jpegs(a.src), a.bucket, a.concurrency))  # noqa: E731
    elif a.mode == "bare-release":
        from pyarrow import parquet as _parquet  # noqa: F401
        run = lambda: asyncio.run(_bare_release(a.url, key, a.dest))  # noqa: E731
    elif a.mode == "sdk":
        import margen.ergonomics  # noqa: F401
        run = lambda: _sdk(a.url, key, a.dest)  # noqa: E731
    else:
        import mirror.cli
        import mirror.engine.sync  # noqa: F401
        run = lambda: _mirror(rest)  # noqa: E731
    profiler = None
    if a.profile:
        import cProfile
        profiler = cProfile.Profile()
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = run()
    if profiler:
        profiler.disable()
    wall, (user1, sys1) = time.perf_counter() - wall0, _cpu_s()
    if profiler:
        profiler.dump_stats(a.profile)
    user, system = user1 - cpu0[0], sys1 - cpu0[1]
    result.update(mode=a.mode, wall_s=wall, cpu_s=user + system, user_s=user, sys_s=system)
    a.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
