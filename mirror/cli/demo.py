"""``margen-mirror demo``: the whole product in one command, on the embedded emulator.

Starts the local Margen emulator on a free loopback port, mirrors its corpus into ``./margen-demo``
with the emulator's ready-made live key, runs the same sync again to show that a complete mirror
costs two API calls and no credit, and prints what to look at next.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

from mirror.cli.output import Progress, say
from mirror.config import ApiKey, Limits
from mirror.engine.status import read_status
from mirror.engine.sync import run_sync
from mirror.jobs import Selection, SyncJob

__all__ = ["run_demo"]

_DEMO_KEY = "mgn_live_demo"      # a key the emulator creates for itself; it opens nothing real


def run_demo(dest: Path, *, items: int, quiet: bool) -> int:
    from mirror.emulator import EmulatorConfig, start_emulator_thread

    with tempfile.TemporaryDirectory(prefix="margen-emulator-") as data_dir, \
            start_emulator_thread(EmulatorConfig(items=items, data_dir=Path(data_dir))) as emulator:
        say(f"emulator listening on {emulator.url} ({items} items, key {_DEMO_KEY})")
        job = SyncJob(selection=Selection(benchmark="synthetic-face-v1", include_metadata=True), dest=dest,
                      limits=Limits(rate_limit=6000, concurrency=32))
        progress = Progress(enabled=not quiet)
        try:
            first = anyio.run(lambda: run_sync(job, api_key=ApiKey(_DEMO_KEY), base_url=emulator.url,
                                               progress=progress.advance, on_total=progress.set_total))
        finally:
            progress.close()
        say(first.summary_line())
        again = anyio.run(lambda: run_sync(job, api_key=ApiKey(_DEMO_KEY), base_url=emulator.url))
        say(again.summary_line())
    for line in read_status(dest).lines()[:12]:
        print(line)
    print(f"""
Look at:
  {dest}/images/synthetic-face-v1/    one folder per lineage (a real source and everything derived from it)
  {dest}/manifest/                    the Parquet manifest, one row per image
  {sys.executable} -c "import mirror; print(mirror.open_manifest('{dest}').to_table().slice(0, 5))"
  margen-mirror status {dest}         counts per cell and perturbation
  margen-mirror verify {dest}         re-hash every file against the manifest""")
    return max(first.exit_code, again.exit_code)
