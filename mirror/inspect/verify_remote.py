"""``verify s3://…``: re-hash every object of a mirror in a bucket against its manifest.

Each image named by the manifest (the newest row of each id) is read back whole with the sync's
own client and compared by size and sha256; a missing object and a damaged one are reported as for
a local DEST, so ``verify --repair`` re-fetches them (free, owned items only) through the same
pipeline, which overwrites each with one complete PUT.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

from mirror.inspect.verify import RepairTarget, VerifyReport
from mirror.store import open_manifest
from mirror.store.objectstore import classify
from mirror.store.remote import RemoteDest

__all__ = ["verify_objects"]


async def verify_objects(dest: str | os.PathLike[str], *, concurrency: int = 32) -> VerifyReport:
    """Compare every manifest row's object with its size and hash; raises one line if the store fails."""
    import obstore
    remote = RemoteDest.open(dest)
    report = VerifyReport(dest=str(remote.url))
    table = await asyncio.to_thread(lambda: open_manifest(str(remote.url)).to_table(
        columns=["id", "benchmark", "base_id", "path", "bytes", "sha256"]))
    latest: dict[str, tuple[RepairTarget, str, int, str]] = {}
    for row in table.to_pylist():
        latest[row["id"]] = (RepairTarget(row["benchmark"], row["base_id"]), row["path"], row["bytes"], row["sha256"])
    gate = asyncio.Semaphore(concurrency)

    async def check(item_id: str, target: RepairTarget, relpath: str, size: int, sha: str) -> None:
        async with gate:
            try:
                data = await (await obstore.get_async(remote.store, remote.url.key(relpath))).bytes_async()
            except FileNotFoundError:
                report.missing.append(item_id)
                report.targets[item_id] = target
                return
            except Exception as exc:
                raise classify(remote.url, f"read {relpath}", exc) from None
        report.checked += 1
        if len(data) == size and hashlib.sha256(data).hexdigest() == sha:
            report.ok += 1
        else:
            report.corrupt.append(item_id)
            report.targets[item_id] = target

    await asyncio.gather(*(check(item_id, *entry) for item_id, entry in latest.items()))
    report.checked += len(report.missing)
    report.missing.sort()
    report.corrupt.sort()
    return report
