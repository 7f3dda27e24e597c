"""Which S3 client writes images fastest from asyncio: PUTs per second of 30 kB bodies, same concurrency.

Starts the tests' SeaweedFS server (tests/objectstore/seaweed.py) on 127.0.0.1 and PUTs N bodies
with each client at concurrency C, twice each, each pass in a fresh ``asyncio.run`` (as each CLI
run is): pyarrow's S3FileSystem (sync, through ``asyncio.to_thread``), obstore (``put_async``,
native asyncio) and s3fs (aiobotocore, ``_pipe_file``). A client that cannot run in a second event
loop is reported as failing. ``python scripts/bench_s3_clients.py [N] [C]``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "objectstore"))

from seaweed import SeaweedS3


def main(n: int = 2000, concurrency: int = 16) -> None:
    server = SeaweedS3(Path(tempfile.mkdtemp(prefix="s3-clients-")))
    server.start()
    os.environ.update(server.env())
    body = os.urandom(30_000)
    from pyarrow import fs
    arrow = fs.S3FileSystem(endpoint_override=server.endpoint, scheme="http", region="us-east-1",
                            allow_bucket_creation=True)
    for bucket in ("b-pyarrow", "b-obstore", "b-s3fs"):
        arrow.create_dir(bucket)

    async def pool(put) -> float:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await put(i)
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)

    def arrow_put(i: int) -> None:
        with arrow.open_output_stream(f"b-pyarrow/x/{i}.jpg") as out:
            out.write(body)

    async def with_pyarrow() -> float:
        return await pool(lambda i: asyncio.to_thread(arrow_put, i))

    async def with_obstore() -> float:
        import obstore
        from obstore.store import S3Store
        store = S3Store("b-obstore", client_options={"allow_http": True})
        return await pool(lambda i: obstore.put_async(store, f"x/{i}.jpg", body))

    async def with_s3fs() -> float:
        import s3fs
        client = s3fs.S3FileSystem(asynchronous=True, endpoint_url=server.endpoint)
        session = await client.set_session()
        try:
            return await pool(lambda i: client._pipe_file(f"b-s3fs/x/{i}.jpg", body))
        finally:
            await session.close()

    try:
        for name, bench in (("pyarrow", with_pyarrow), ("obstore", with_obstore), ("s3fs", with_s3fs)) * 2:
            try:
                print(f"{name:8} {asyncio.run(bench()):7.0f} PUT/s", flush=True)
            except Exception as exc:
                print(f"{name:8} failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
