"""Start-up of the detector emulators: a background-thread runner for tests and the CLI verb.

``start_detector_thread`` serves one service on its own event loop in a daemon thread so
synchronous tests can drive it; ``main`` is ``margen-mirror detector-emulator``: it binds
127.0.0.1, prints ``READY <url>`` once listening and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from mirror.emulator.detectors import deepfake_detection, synthetiq
from mirror.emulator.detectors.admin import AdminClient
from mirror.emulator.detectors.uploads import SERVICES, DetectorEmulatorConfig
from mirror.emulator.runner import LISTEN_BACKLOG, LoopThread, serve_until_signal

SHUTDOWN_GRACE = 0.5


def build_app(config: DetectorEmulatorConfig) -> web.Application:
    """The aiohttp application of ``config.service`` (creates ``data_dir`` if it is set)."""
    if config.data_dir is not None:
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    if config.service == "synthetiq":
        return synthetiq.build_app(config)
    return deepfake_detection.build_app(config)


async def _start(config: DetectorEmulatorConfig) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port, reuse_address=True, backlog=LISTEN_BACKLOG).start()
    except BaseException:
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]
    return runner, f"http://{'[' + host + ']' if ':' in host else host}:{port}"


class RunningDetector:
    """One detector emulator served from a daemon thread; a context manager."""

    def __init__(self, config: DetectorEmulatorConfig) -> None:
        self.config = config
        self.token = config.api_token
        self.url = ""
        self.admin = AdminClient("http://127.0.0.1")
        self._thread: LoopThread[tuple[web.AppRunner, str]] = LoopThread(f"detector-{config.service}")

    def start(self) -> RunningDetector:
        async def close(started: tuple[web.AppRunner, str]) -> None:
            await started[0].cleanup()

        _, self.url = self._thread.start(lambda: _start(self.config), close)
        self.admin = AdminClient(self.url)
        return self

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> RunningDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_detector_thread(config: DetectorEmulatorConfig) -> RunningDetector:
    """Start a detector emulator in a background thread; returns once it is listening."""
    return RunningDetector(config).start()


async def serve(config: DetectorEmulatorConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve until cancelled; ``ready(url)`` is called once listening."""
    runner, url = await _start(config)
    try:
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


_ENV = {"synthetiq": ("SYNTHETIQ_URL", "SYNTHETIQ_API_TOKEN"),
        "deepfake-detection": ("DEEPFAKE_DETECTION_URL", "DEEPFAKE_DETECTION_TOKEN")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``margen-mirror detector-emulator`` command line on ``p``: its flags and description."""
    p.description = "Run a local detection-service emulator on 127.0.0.1."
    p.epilog = ("once listening it prints READY http://127.0.0.1:PORT, then the variables "
                "`margen-mirror score --detector SERVICE` reads (the demo token is printed; "
                "a --token-file token is not)")
    p.add_argument("--service", required=True, choices=SERVICES)
    p.add_argument("--port", type=int, required=True, help="TCP port (0 = pick a free one)")
    p.add_argument("--token-file", type=Path, default=None, help="file holding the API token (default: demo token)")
    p.add_argument("--processing-seconds", type=float, default=0.3, help="how long every job stays processing")
    p.add_argument("--data-dir", type=Path, default=None, help="where processed movies are kept (default: memory)")
    p.add_argument("--rate-limit", type=int, default=0, metavar="N",
                   help="answer 429 past N API requests in any rolling --rate-window (default 0: no limit)")
    p.add_argument("--rate-window", type=float, default=60.0, metavar="S", help="seconds (default 60)")


def build_parser() -> argparse.ArgumentParser:
    """The ``margen-mirror detector-emulator`` command line (flags spelled out whole, like every verb's)."""
    p = argparse.ArgumentParser(prog="margen-mirror detector-emulator", allow_abbrev=False)
    add_arguments(p)
    return p


def config_from_args(a: argparse.Namespace, p: argparse.ArgumentParser) -> DetectorEmulatorConfig:
    """The configuration the parsed flags ask for; a value out of range or an unreadable token file is ``p.error``."""
    if not 0 <= a.port < 65536 or a.processing_seconds < 0:
        p.error("--port in [0, 65535] and --processing-seconds >= 0")
    if a.rate_limit < 0 or a.rate_window <= 0:
        p.error("--rate-limit >= 0 and --rate-window > 0")
    token = None
    if a.token_file is not None:
        try:
            token = a.token_file.read_text().strip()
        except OSError as err:
            p.error(f"cannot read --token-file: {err}")
        if not token:
            p.error("--token-file is empty")
    return DetectorEmulatorConfig(service=a.service, port=a.port, token=token,
                                  processing_seconds=a.processing_seconds, data_dir=a.data_dir,
                                  rate_limit=a.rate_limit, rate_window_s=a.rate_window)


def main(argv: list[str] | None = None) -> int:
    """The ``detector-emulator`` command line on its own: serve until SIGINT/SIGTERM, exit 0 (1 if it cannot listen)."""
    return serve_config(_parse(argv))


def _parse(argv: list[str] | None) -> DetectorEmulatorConfig:
    p = build_parser()
    return config_from_args(p.parse_args(argv), p)


def serve_config(config: DetectorEmulatorConfig) -> int:
    """Serve ``config`` until SIGINT/SIGTERM, printing ``READY <url>`` and the variables to export."""
    def ready_then_usage(ready: Callable[[str], None]) -> Callable[[str], None]:
        def announce(url: str) -> None:
            ready(url)
            url_var, token_var = _ENV[config.service]
            token = config.api_token if config.token is None else '"$(cat TOKEN_FILE)"'
            print(f"try: export {url_var}={url} {token_var}={token}; margen-mirror score DEST --detector "
                  f"{config.service}", flush=True)
        return announce

    return serve_until_signal(lambda ready: serve(config, ready=ready_then_usage(ready)), name="detector-emulator",
                              where=f"{config.host}:{config.port}")
