"""Helpers for the mirror engine's tests: fast retry settings, a sync call, an independent item listing, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mirror
from mirror.config import ApiKey, Retries, Timeouts
from mirror.engine.sync import run_sync
from mirror.jobs import Selection, SyncJob

FAST_RETRIES = Retries(attempts=6, backoff=0.01, max_backoff=0.2, rate_limit_patience=60)
FAST_TIMEOUTS = Timeouts(api=5, storage=5, connect=2)


@dataclass
class Account:
    key: str
    name: str


async def do_sync(emulator, account: Account, dest: Path, *, filters=None, max_credits=None, concurrency=8,
                  lineage=False, include_metadata=False, benchmark="synthetic-face-v1") -> mirror.SyncReport:
    selection = Selection(benchmark=benchmark, filters={k: tuple(v.split(",")) for k, v in (filters or {}).items()},
                          lineage=lineage, include_metadata=include_metadata)
    job = SyncJob(selection=selection, dest=dest, max_credits=max_credits,
                  limits=mirror.Limits(rate_limit=100_000, concurrency=concurrency))
    return await run_sync(job, api_key=ApiKey(account.key), base_url=emulator.url, timeouts=FAST_TIMEOUTS,
                          retries=FAST_RETRIES)


def all_items(emulator, account: Account, **filters) -> list[dict]:
    """Every item of a selection, listed by offset paging: an independent view of what should be mirrored."""
    import json
    import urllib.parse
    import urllib.request
    out, offset = [], 0
    while True:
        query = urllib.parse.urlencode({"benchmark": "synthetic-face-v1", "limit": 500, "offset": offset, **filters})
        req = urllib.request.Request(f"{emulator.url}/api/v1/data/items?{query}",
                                     headers={"Authorization": f"Bearer {account.key}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            page = json.loads(resp.read())
        out += page["data"]
        if not page["has_more"]:
            return out
        offset += len(page["data"])


def cli(*args: str, key: str | None, env_extra: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mirror ARGS`` the way a user would: key in the environment, never on the line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_")}
    if key is not None:
        env["MARGEN_API_KEY"] = key
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def hear_ctrl_c() -> None:
    """``preexec_fn`` of a CLI child that a test sends SIGINT to. A shell starts a background job
    (``pytest … &``) with SIGINT ignored and its children inherit that, so the sync would rightly
    never hear the Ctrl-C: give the child the terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
