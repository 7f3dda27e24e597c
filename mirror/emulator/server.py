"""App factory, start-up, the background-thread runner for tests, and the ``emulator`` CLI.

Binds 127.0.0.1 only.  ``serve`` runs until cancelled; ``start_emulator_thread`` runs the
same app on its own event loop in a daemon thread so synchronous tests and scripts can
drive it; ``main`` is the ``margen-mirror emulator`` verb (prints ``READY <url>`` once
listening, stops cleanly on SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from mirror.emulator.admin import AdminClient, add_admin_routes
from mirror.emulator.release import ReleaseBuilder, release_handler
from mirror.emulator.routes import STATE_KEY, add_api_routes
from mirror.emulator.runner import LISTEN_BACKLOG, LoopThread, serve_until_signal
from mirror.emulator.state import DEMO_ACCOUNT, DEMO_KEYS, DEMO_RATE_LIMIT, EmulatorConfig, EmulatorState
from mirror.emulator.storage import RELEASE_KEY, STORAGE_PREFIX, storage

SHUTDOWN_GRACE = 0.5  # seconds in-flight requests get at stop (slow faults would hold it for minutes)


@web.middleware
async def _every_request(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    """For every API and storage request: count the connection it came on, then apply the
    ``latency_ms`` fault (the request waits before it is handled)."""
    if request.path.startswith("/_admin"):
        return await handler(request)
    state = request.app[STATE_KEY]
    state.count_connection(request.transport)
    faults = state.faults
    ms = faults.settings.latency_ms
    if ms > 0:
        faults.count("latency_ms")
        await asyncio.sleep(ms / 1000)
    return await handler(request)


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(middlewares=[_every_request], client_max_size=1024 * 1024)
    app[STATE_KEY] = state
    app[RELEASE_KEY] = ReleaseBuilder(state)
    add_api_routes(app, release_handler)
    app.router.add_get(STORAGE_PREFIX + "/{tail:.+}", storage)
    if state.config.admin:
        add_admin_routes(app)
    return app


async def _start(config: EmulatorConfig, data_dir: Path, port: int) -> tuple[web.AppRunner, EmulatorState, str]:
    state = EmulatorState(config, data_dir)
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    site = web.TCPSite(runner, config.host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        state.close()
        raise
    bound = runner.addresses[0][1]
    return runner, state, f"http://{config.host}:{bound}"


async def _stop(runner: web.AppRunner, state: EmulatorState) -> None:
    await runner.cleanup()
    state.close()


async def serve(config: EmulatorConfig, ready: Callable[[str], None] | None = None, *,
                announce_keys: bool = False) -> None:
    """Run the emulator until cancelled; ``ready(url)`` is called once it is listening, and then, with
    ``announce_keys``, the demo keys are printed under it (``key_lines``)."""
    temp = config.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="margen-emulator-")) if temp else Path(config.data_dir)
    try:
        runner, state, url = await _start(config, data_dir, config.port)
        try:
            if ready is not None:
                ready(url)
            if announce_keys:
                print("\n".join(key_lines(state, url)), flush=True)
            await asyncio.Event().wait()
        finally:
            await _stop(runner, state)
    finally:
        if temp:
            shutil.rmtree(data_dir, ignore_errors=True)


class RunningEmulator:
    """An emulator served from a background thread; a context manager.

    ``restart()`` stops and starts again on the same port and data_dir, so the ledger, the
    signing secret and appended items persist, as they would across a real server restart.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._temp = config.data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="margen-emulator-")) if self._temp else Path(config.data_dir)
        self.port = config.port
        self.url = ""
        self.admin = AdminClient("http://127.0.0.1")
        self._thread: LoopThread[tuple[web.AppRunner, EmulatorState, str]] = LoopThread("margen-emulator")
        self._running: tuple[web.AppRunner, EmulatorState] | None = None

    @property
    def state(self) -> EmulatorState:
        """The live server state (for white-box assertions in tests)."""
        assert self._running is not None, "emulator is not running"
        return self._running[1]

    def start(self) -> RunningEmulator:
        async def close(started: tuple[web.AppRunner, EmulatorState, str]) -> None:
            await _stop(started[0], started[1])

        runner, state, self.url = self._thread.start(lambda: _start(self.config, self.data_dir, self.port), close)
        self._running = (runner, state)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.admin = AdminClient(self.url)
        return self

    def _halt(self) -> None:
        self._thread.stop()
        self._running = None

    def stop(self) -> None:
        self._halt()
        if self._temp:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        self._halt()
        self.start()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator_thread(config: EmulatorConfig) -> RunningEmulator:
    """Start an emulator in a background thread; returns once it is listening."""
    return RunningEmulator(config).start()


def key_lines(state: EmulatorState, url: str) -> list[str]:
    """How to use a started emulator: its public demo keys with their live balance and rate limit."""
    lines = []
    for key, tier, _ in DEMO_KEYS:
        record = state.ledger.lookup_key(key)
        if record is None or record.revoked:
            continue
        money = (f"balance {state.ledger.balance(DEMO_ACCOUNT):,} credits" if tier == "live"
                 else "free, sees the fixed test sample only")
        lines.append(f"key {key}: {tier} tier, {money}, {record.rate_limit:,} requests/min, "
                     f"benchmarks {', '.join(record.benchmarks)}")
    lines.append(f"try: export MARGEN_BASE_URL={url} MARGEN_API_KEY={DEMO_KEYS[0][0]}; margen-mirror usage")
    if state.config.admin:
        lines.append(f"admin API: {url}/_admin (POST /_admin/keys creates keys of other tiers, balances, limits)")
    return lines


def _keys_help() -> str:
    keys = "\n".join(f"  {key}  {tier} tier, "
                     + (f"{balance:,} credits at first start" if balance is not None else "free (the test sample)")
                     + f", {DEMO_RATE_LIMIT:,} requests/min" for key, tier, balance in DEMO_KEYS)
    return ("public demo keys, created at every start (they open nothing real; the balance persists in "
            f"--data-dir):\n{keys}\nonce listening it prints READY http://127.0.0.1:PORT, then the keys with "
            "their current balance")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``margen-mirror emulator`` command line on ``p``: its flags, description and key list."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _keys_help()
    p.description = "Run the local Margen Attack-Data API emulator on 127.0.0.1."
    p.add_argument("--port", type=int, required=True, help="TCP port (0 = pick a free one)")
    p.add_argument("--items", type=int, default=EmulatorConfig.items, help="corpus size of synthetic-face-v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--admin", action="store_true", help="enable the /_admin API")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--fail-rate", type=float, default=0.0, help="probability of a 500 on any API request")
    p.add_argument("--url-ttl", type=int, default=300, help="signed URL lifetime in seconds")
    p.add_argument("--data-dir", type=Path, default=None, help="ledger, secret and image cache (default: temp)")
    p.add_argument("--image-memory-mb", type=int, default=EmulatorConfig.image_cache_bytes // 2**20,
                   help="images kept in memory, in MiB; past it they are read back from the disk cache "
                        "through a thread pool (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The ``margen-mirror emulator`` command line (flags spelled out whole, like every verb's)."""
    p = argparse.ArgumentParser(prog="margen-mirror emulator", allow_abbrev=False)
    add_arguments(p)
    return p


def config_from_args(a: argparse.Namespace, p: argparse.ArgumentParser) -> EmulatorConfig:
    """The configuration the parsed flags ask for; a value out of range is ``p.error``."""
    if a.items < 0 or not 0.0 <= a.fail_rate <= 1.0 or a.url_ttl < 1 or not 0 <= a.port < 65536 \
            or a.image_memory_mb < 0:
        p.error("--items >= 0, --fail-rate in [0, 1], --url-ttl >= 1, --port in [0, 65535], --image-memory-mb >= 0")
    return EmulatorConfig(port=a.port, items=a.items, seed=a.seed, admin=a.admin, latency_ms=a.latency_ms,
                          fail_rate=a.fail_rate, url_ttl=a.url_ttl, data_dir=a.data_dir,
                          image_cache_bytes=a.image_memory_mb * 2**20)


def serve_config(config: EmulatorConfig) -> int:
    """Serve ``config`` until SIGINT/SIGTERM, printing ``READY <url>`` and the keys; exit 0."""
    return serve_until_signal(lambda ready: serve(config, ready=ready, announce_keys=True), name="emulator",
                              where=f"127.0.0.1:{config.port}")


def _parse(argv: list[str] | None) -> EmulatorConfig:
    p = build_parser()
    return config_from_args(p.parse_args(argv), p)


def main(argv: list[str] | None = None) -> int:
    """The ``emulator`` command line on its own (``python -m mirror.emulator``): serve until SIGINT/SIGTERM."""
    return serve_config(_parse(argv))
