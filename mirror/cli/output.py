"""How the CLI talks: a tqdm bar for humans on a TTY, status lines for logs, the summary for everyone.

Everything goes to stderr except the result (tables, ``--json``), which goes to stdout, so
``margen-mirror sync --json > report.json`` works while a human still sees the progress bar.
No line written here carries the API key: the bar, the status lines and the log show counts,
item ids and paths, never a header, a signed URL or the key.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm

from mirror.engine.outlook import Outlook, describe_duration
from mirror.errors import UsageError

__all__ = ["LONG_RUN_S", "Progress", "configure_logging", "emit", "parse_duration", "say", "stats_interval"]

LONG_RUN_S = 3600.0          # a sync the rate limit keeps busy longer than this says so first
OFF_TTY_STATS_S = 60.0       # the status-line interval off a terminal, unless --stats says otherwise
_TICK_S = 1.0                # how often the bar's counters are redrawn
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """rclone's durations: ``30s``, ``1m``, ``1h30m``, ``500ms``, a bare number of seconds; ``0`` or ``off``: none."""
    value = text.strip().lower()
    if value == "off":
        return 0.0
    try:
        return _non_negative(float(value), text)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise UsageError(f"--stats {text!r}: write a duration such as 30s, 1m or 1h30m (0 turns the status line off)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _non_negative(seconds: float, text: str) -> float:
    if not seconds >= 0:
        raise UsageError(f"--stats {text!r}: a duration cannot be negative (0 turns the status line off)")
    return seconds


def stats_interval(given: str | None, *, quiet: bool, stream: TextIO | None = None) -> float:
    """Seconds between status lines: ``--stats`` if given; else one a minute off a terminal (a cron
    log, a pipe) and none on one, where the bar shows the same; none with ``--quiet``, as in rclone."""
    if given is not None:
        return parse_duration(given)
    if quiet or (stream or sys.stderr).isatty():
        return 0.0
    return OFF_TTY_STATS_S


class Progress:
    """What a sync shows while it runs.

    On a terminal (unless disabled): a bar with count, rate and ETA, and beside them the credits
    charged, failures, megabytes and the balance left; on a resume its total is the whole
    selection, with what was already here counted as done. Every ``stats`` seconds, a status line
    with the same counts (off a terminal this is what shows a cron log that a long run is alive).
    When the key's rate limit makes the run longer than an hour, a line says so before the bar.
    """

    def __init__(self, enabled: bool, *, stats: float = 0.0, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self._stats = stats
        self._bar: tqdm | None = None
        self._outlook: Outlook | None = None
        self._items = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._closing = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.enabled or stats > 0:
            self._ticker = threading.Thread(target=self._tick, name="margen-progress", daemon=True)
            self._ticker.start()

    def set_total(self, outlook: Outlook) -> None:
        """The run knows what it has ahead of it: warn if that is long, then draw the bar."""
        self._outlook = outlook
        seconds = outlook.seconds
        if seconds is not None and seconds > LONG_RUN_S:
            say(f"margen-mirror: {outlook.to_fetch:,} items to fetch take {describe_duration(seconds)} at "
                f"{outlook.rate_limit:g} API requests/min (one per item); a key's rate limit is set when the key is "
                "created: if yours allows more, pass it with --rate-limit N", stream=self.stream)
        if self.enabled and self._bar is None:
            initial = outlook.here if outlook.total is not None else 0
            self._bar = tqdm(total=outlook.total, initial=initial, unit="img", desc="mirroring",
                             dynamic_ncols=True, file=self.stream)
            self._bar.set_postfix_str(self._counts(), refresh=False)
            if self._items:
                self._bar.update(self._items)

    def advance(self, items: int, nbytes: int) -> None:
        """Called per placed file: counts only (the ticker redraws the counters beside the bar)."""
        self._items += items
        self._bytes += nbytes
        if self._bar is not None:
            self._bar.update(items)

    def close(self) -> None:
        self._closing.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._bar is not None:
            self._bar.set_postfix_str(self._counts(), refresh=False)
            self._bar.close()
            self._bar = None

    # -- the ticker thread: redraws the bar's counters, prints the status lines -------------------
    def _tick(self) -> None:
        step = min(_TICK_S, self._stats) if self._stats else _TICK_S
        if self._stats and not self.enabled:
            step = self._stats          # no bar to redraw: wake only for the status lines
        next_status = time.monotonic() + self._stats
        while not self._closing.wait(step):
            bar = self._bar
            if bar is not None:
                bar.set_postfix_str(self._counts())
            if self._stats > 0 and time.monotonic() >= next_status:
                next_status += self._stats
                line = self.status_line()
                if bar is not None:
                    tqdm.write(line, file=self.stream)
                else:
                    say(line, stream=self.stream)

    def _counts(self) -> str:
        report = self._outlook.report if self._outlook is not None else None
        if report is None:
            return f"{self._bytes / 1e6:.1f} MB"
        balance = "" if report.balance is None else f", balance {report.balance:,}"
        return f"{report.charged:,} charged, {report.failed:,} failed, {self._bytes / 1e6:.1f} MB{balance}"

    def status_line(self) -> str:
        """One line for a log: done of total, new (charged, free), failed, MB, rate, ETA, balance."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        outlook = self._outlook
        report = outlook.report if outlook is not None else None
        rate = self._items / elapsed
        parts = []
        total = outlook.total if outlook is not None else None
        done = min(outlook.here + self._items, total) if outlook is not None and total is not None else 0
        if total is not None:
            parts.append(f"{done:,}/{total:,} done ({100 * done / max(total, 1):.0f}%),")
        new = f"{self._items:,} new"
        if report is not None:
            new += f" ({report.charged:,} charged, {report.free:,} free), {report.failed:,} failed"
        parts.append(f"{new}, {self._bytes / 1e6:.1f} MB, {rate:.1f} img/s,")
        if total is not None and rate > 0:
            parts.append(f"ETA {describe_duration((total - done) / rate)},")
        if report is not None and report.balance is not None:
            parts.append(f"balance {report.balance:,},")
        parts.append(f"{describe_elapsed(elapsed)} elapsed")
        return "margen-mirror progress: " + " ".join(parts)


def describe_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def configure_logging(*, verbose: bool, log_file: str | None) -> None:
    """``-v``: the run's events on stderr; ``--log-file FILE``: the same, appended to FILE.

    Item events (reserved charged/free, fetched, placed, failed with the reason) are at debug
    level, so with neither flag a run never formats a log line. Only margen-mirror's own loggers
    are set up: the libraries' (aiohttp, asyncio) stay silent, so no request header or signed URL
    can reach a log through them."""
    if not verbose and not log_file:
        return
    logger = logging.getLogger("mirror")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    form = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file:
        try:
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot write the log file {log_file}: {exc.strerror}; choose a writable path") from None
    for handler in handlers:
        handler.setFormatter(form)
        logger.addHandler(handler)


def emit(data: Any, *, as_json: bool, lines: list[str] | None = None) -> None:
    """Print a command's result: JSON for machines, or the given human lines."""
    if as_json:
        print(json.dumps(data, indent=2, default=str, sort_keys=True))
    else:
        for line in lines or []:
            print(line)


def say(message: str, *, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stderr)
