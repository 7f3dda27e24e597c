"""A server that is not there: one clear line at once, not seconds of silent retries.

A connection refused on a run's first call means a wrong --base-url (or a server not started), so
every verb says so in one line, fast, and creates nothing. Once the server has answered, the same
error is a restart or a drop mid-run, and is retried like any network failure.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from mirror_testkit import cli

from mirror.api.client import MargenClient
from mirror.config import ApiKey, Retries, Timeouts
from mirror.errors import TransportError
from mirror.ratelimit import RateLimiter

KEY = "mgn_live_" + "u" * 32


@pytest.fixture
def closed_url() -> Iterator[str]:
    """An http URL on 127.0.0.1 where nothing listens: the port is bound (so no one else takes it)
    but not listening, so a connection to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.mark.parametrize("verb", [["benchmarks"], ["plan", "--benchmark", "synthetic-face-v1"],
                                  ["sync", "--benchmark", "synthetic-face-v1", "--dest", "{dest}"]])
def test_a_refused_first_call_is_one_line_at_once_and_creates_nothing(verb, closed_url, tmp_path):
    dest = tmp_path / "never-created"
    args = [a.replace("{dest}", str(dest)) for a in verb]
    started = time.monotonic()
    proc = cli(*args, "--base-url", closed_url, key=KEY)
    took = time.monotonic() - started
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 5, proc.stderr                  # a transport error's exit code, as before
    assert lines == [f"margen-mirror: error: cannot reach {closed_url}: connection refused; "
                     "check --base-url (or MARGEN_BASE_URL)"], proc.stderr
    assert "ssl:default" not in proc.stderr and "resume" not in proc.stderr and KEY not in proc.stderr + proc.stdout
    assert took < 5.0, f"{took:.1f} s: retried instead of saying so"
    assert not dest.exists()


def test_the_url_from_the_environment_is_named_too(closed_url):
    proc = cli("benchmarks", key=KEY, env_extra={"MARGEN_BASE_URL": closed_url})
    assert proc.returncode == 5
    assert f"cannot reach {closed_url}: connection refused" in proc.stderr


async def test_a_server_that_answered_once_is_retried_when_it_drops(emulator_factory):
    """The first call reaches the server; it then goes away: that is retried, and the final line
    says what failed after how many attempts."""
    emulator = emulator_factory()
    key = emulator.admin.create_key("live", balance=10, rate_limit=100_000)
    client = MargenClient(ApiKey(key), emulator.url, limiter=RateLimiter(100_000),
                          timeouts=Timeouts(api=5, storage=5, connect=2),
                          retries=Retries(attempts=3, backoff=0.01, max_backoff=0.05))
    async with client:
        await client.usage()
        emulator.stop()
        calls = client.api_calls
        with pytest.raises(TransportError) as failed:
            await client.usage()
    assert client.api_calls - calls == 3                      # retried, not given up at the first refusal
    assert str(failed.value).startswith("/usage: cannot connect to 127.0.0.1:")
    assert str(failed.value).endswith("(connection refused) after 3 attempts; try again later")
