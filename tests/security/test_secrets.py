"""Secrets: the API key never appears in output, files, exception messages or tracebacks, and is
never sent to a storage URL (the emulator counts such requests in ``auth_header_refusals``)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "chaos"))

from chaos_scenarios import BENCH, key_leaks, run_cli

from mirror.config import ApiKey, Limits, Retries, Timeouts
from mirror.engine.sync import run_sync
from mirror.errors import MirrorError
from mirror.jobs import Selection, SyncJob


def _args(emulator, dest: Path, *extra: str) -> list[str]:
    return ["sync", "--benchmark", BENCH, "--dest", str(dest), "--base-url", emulator.url, "--rate-limit",
            "100000", *extra]


def test_key_never_in_outputs_or_files_and_never_sent_to_storage(emulator, tmp_path):
    key = emulator.admin.create_key("live", balance=10_000, rate_limit=100_000, account="acct_secret")
    emulator.admin.set_faults(api_500=0.1, storage_drop=0.05, storage_truncate=0.05)
    dest = tmp_path / "dest"
    runs = [run_cli(*_args(emulator, dest, "--quiet"), key=key),
            run_cli(*_args(emulator, dest, "--json"), key=key),                  # the no-op, as JSON
            run_cli("usage", "--base-url", emulator.url, key=key),
            run_cli("verify", str(dest), key=key),
            run_cli("status", str(dest), key=key),
            run_cli(*_args(emulator, tmp_path / "d2", "colour=red"), key=key)]  # an error path
    assert runs[0].code in (0, 5) and runs[1].code in (0, 5)
    texts = [r.stdout + r.stderr for r in runs]
    assert key_leaks(key, texts, dest) == []
    assert (dest / ".state" / "journal.jsonl").exists()
    assert emulator.admin.counters()["auth_header_refusals"] == 0


async def test_key_not_in_exception_messages_or_tracebacks(emulator, tmp_path):
    key = emulator.admin.create_key("live", balance=10, rate_limit=100_000, account="acct_revoked")
    emulator.admin.revoke_key(key)
    job = SyncJob(selection=Selection(benchmark=BENCH), dest=tmp_path / "dest", limits=Limits(rate_limit=100_000))
    with pytest.raises(MirrorError) as info:
        await run_sync(job, api_key=ApiKey(key), base_url=emulator.url, timeouts=Timeouts(api=5, storage=5),
                       retries=Retries(attempts=2, backoff=0.01))
    text = "".join(traceback.format_exception(info.value)) + repr(info.value) + repr(ApiKey(key))
    assert key not in text
    assert info.value.exit_code == 3
