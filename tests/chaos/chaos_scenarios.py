"""The chaos engine shared by ``scripts/chaos.py`` (full suite) and ``tests/chaos`` (CI subset).

One implementation of everything that matters: a subprocess emulator that can be crashed and
restarted on its port, the CLI run the way a user runs it (key in the environment, ``--quiet``),
SIGKILLs at seeded random moments, and ``check_mirror``, the invariant checks printed after each
scenario. Scenarios return an ``Outcome``: one row of the final scenarios x invariants table.

Run as a script it is the CLI with test deadlines (``python chaos_scenarios.py cli --api-timeout S
-- sync ...``): the real ``margen-mirror`` entry point, with the total deadlines shortened so a
"slow enough to hit the deadline" fault costs seconds, not the production 30/60 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = "synthetic-face-v1"
HERE = Path(__file__).resolve()
INVARIANTS = ("on disk once", "manifest once", "sha256", "no temp/partial", "manifest ⊆ disk",
              "charges == items", "exit + summary", "no key leak")
USER_INVARIANTS = ("one-line error", "exit code", "zero credits", "no key leak")

# Fault mix of issue 4; slow faults sleep past the CLI's (shortened) total deadline.
FULL_FAULTS: dict[str, float] = {"api_500": 0.10, "storage_drop": 0.05, "storage_truncate": 0.05,
                                 "api_slow": 0.01, "storage_slow": 0.01, "slow_seconds": 4.0,
                                 "api_429": 0.02, "url_ttl": 2}
KILL_FAULTS: dict[str, float] = {"api_500": 0.10, "storage_drop": 0.05, "storage_truncate": 0.05,
                                 "api_429": 0.02, "latency_ms": 3}
TEST_TIMEOUTS = {"api": 1.5, "storage": 1.5, "connect": 1.0}


# -- the emulator as a separate process (crashable, restartable on the same port) ------------------
class SubprocessEmulator:
    """``margen-mirror emulator`` in a child process; ``crash_restart`` SIGKILLs it and starts it again
    on the same port and data dir, so the SQLite ledger persists as it would on a real server."""

    def __init__(self, data_dir: Path, *, items: int, seed: int) -> None:
        self.data_dir, self.items, self.seed = data_dir, items, seed
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.faults: dict[str, float] = {}
        self.auth_header_refusals = 0      # summed across restarts (counters live in memory)

    def start(self) -> SubprocessEmulator:
        from mirror.emulator.admin import AdminClient
        cmd = [sys.executable, "-m", "mirror", "emulator", "--port", str(self.port), "--items", str(self.items),
               "--seed", str(self.seed), "--admin", "--data-dir", str(self.data_dir)]
        for _ in range(50):       # the old socket may linger for a moment after a SIGKILL
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if line.startswith("READY "):
                self.url = line.split()[1]
                self.port = int(self.url.rsplit(":", 1)[1])
                self.admin = AdminClient(self.url)
                if self.faults:
                    self.admin.set_faults(**self.faults)
                return self
            self.proc.wait()
            time.sleep(0.2)
        raise RuntimeError("the emulator did not start")

    def set_faults(self, **faults: float) -> None:
        self.faults.update(faults)
        self.admin.set_faults(**faults)

    def refusals(self) -> int:
        return self.auth_header_refusals + self.admin.counters()["auth_header_refusals"]

    def crash_restart(self, down_s: float = 1.0) -> None:
        with contextlib.suppress(Exception):
            self.auth_header_refusals += self.admin.counters()["auth_header_refusals"]
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- running the CLI ------------------------------------------------------------------------------
@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def cli_cmd(*args: str, timeouts: dict[str, float] | None = None) -> list[str]:
    """The CLI command line; with ``timeouts`` the run uses those total deadlines (in seconds)."""
    if timeouts is None:
        return [sys.executable, "-m", "mirror", *args]
    t = timeouts
    return [sys.executable, str(HERE), "cli", str(t["api"]), str(t["storage"]), str(t["connect"]), "--", *args]


def cli_env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_")}
    if key is not None:
        env["MARGEN_API_KEY"] = key
    return env


def run_cli(*args: str, key: str | None, timeouts: dict[str, float] | None = None, timeout: float = 300) -> CliRun:
    proc = subprocess.run(cli_cmd(*args, timeouts=timeouts), env=cli_env(key), capture_output=True, text=True,
                          timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def sync_args(url: str, dest: Path, *extra: str) -> list[str]:
    return ["sync", "--benchmark", BENCH, "--dest", str(dest), "--base-url", url, "--rate-limit", "100000",
            "--concurrency", "6", "--quiet", *extra]


def run_until_complete(url: str, key: str, dest: Path, *, timeouts: dict[str, float] | None = TEST_TIMEOUTS,
                       max_runs: int = 12, log: list[CliRun] | None = None) -> CliRun:
    """Run the sync again, as the exit code says, until it reports complete (exit 0)."""
    last = CliRun(-1, "", "")
    for _ in range(max_runs):
        last = run_cli(*sync_args(url, dest), key=key, timeouts=timeouts)
        if log is not None:
            log.append(last)
        if last.code == 0:
            break
        if last.code not in (5, 130):     # only "partial, run again" is worth a retry
            break
    return last


def sigkill_runs(url: str, key: str, dest: Path, *, kills: int, seed: int, log: list[CliRun],
                 timeouts: dict[str, float] | None = TEST_TIMEOUTS, max_wait: float = 1.2) -> int:
    """Start the sync and SIGKILL it at seeded random moments, ``kills`` times (or until it finishes)."""
    rng = random.Random(seed)
    done = 0
    while done < kills:
        proc = subprocess.Popen(cli_cmd(*sync_args(url, dest), timeouts=timeouts), env=cli_env(key),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.25, max_wait))   # python start-up takes ~0.3 s of that
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            done += 1
        out, err = proc.communicate()
        log.append(CliRun(proc.returncode, out, err))
        if proc.returncode == 0:
            break                                 # it finished first: the rest of the kills are moot
    return done


# -- invariant checks -----------------------------------------------------------------------------
def expected_items(url: str, key: str) -> list[dict[str, Any]]:
    """Every item of the benchmark, listed by offset paging: an independent view of the selection."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = urllib.parse.urlencode({"benchmark": BENCH, "limit": 500, "offset": offset})
        req = urllib.request.Request(f"{url}/api/v1/data/items?{query}", headers={"Authorization": f"Bearer {key}"})
        for attempt in range(20):     # the emulator may be injecting 500s
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    page = json.loads(resp.read())
                break
            except Exception:
                if attempt == 19:
                    raise
                time.sleep(0.1)
        out += page["data"]
        if not page["has_more"]:
            return out
        offset += len(page["data"])


def _files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files] if root.exists() else []


def key_leaks(key: str, texts: list[str], dest: Path | None) -> list[str]:
    """Where the key appears: in any captured output, or in any file under DEST (manifest, journal…)."""
    found = [f"output #{i}" for i, t in enumerate(texts) if key in t]
    needle = key.encode()
    for path in _files_under(dest) if dest else []:
        with contextlib.suppress(OSError):
            if needle in path.read_bytes():
                found.append(str(path))
    return found


Check = tuple[bool, str]


def check_mirror(dest: Path, *, expected: set[str], served_sha: Callable[[str], str], charge_count: int,
                 final: CliRun, runs: list[CliRun], key: str, refusals: int) -> dict[str, Check]:
    """The invariants of issue 4 for one finished scenario; each is (held, short evidence)."""
    import pyarrow.parquet as pq
    man_files = sorted((dest / "manifest").glob("*.parquet"))
    rows = pq.read_table(man_files).to_pylist() if man_files else []
    ids = [r["id"] for r in rows]
    images = _files_under(dest / "images")
    by_path = {r["path"]: r for r in rows}
    on_disk = {p.relative_to(dest).as_posix() for p in images}
    c: dict[str, Check] = {}
    orphans = on_disk - set(by_path)
    c["on disk once"] = (len(images) == len(expected) and not orphans and set(by_path) <= on_disk,
                         f"{len(images)} files for {len(expected)} items, {len(orphans)} not in manifest")
    c["manifest once"] = (len(ids) == len(set(ids)) and set(ids) == expected,
                          f"{len(ids)} rows, {len(set(ids))} ids, {len(expected - set(ids))} missing")
    bad = []
    for r in rows:
        path = dest / r["path"]
        if not path.is_file():
            continue
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != r["sha256"] or got != served_sha(r["id"]):
            bad.append(r["id"])
    c["sha256"] = (not bad and bool(rows), f"{len(rows) - len(bad)}/{len(rows)} match the served bytes")
    leftovers = [p for p in _files_under(dest) if p.suffix in (".part", ".tmp", ".rewrite")
                 or p.parent == dest / ".state" / "tmp"]
    c["no temp/partial"] = (not leftovers, f"{len(leftovers)} left")
    missing = [p for p in by_path if p not in on_disk]
    c["manifest ⊆ disk"] = (not missing, f"{len(missing)} rows without a file")
    c["charges == items"] = (charge_count == len(expected),
                             f"{charge_count} charges for {len(expected)} items")
    summary = final.lines[-1] if final.lines else ""
    unclear = [r for r in runs if not _says_what_happened(r)]
    c["exit + summary"] = (final.code == 0 and summary.startswith("margen-mirror complete:") and not unclear,
                           f"exit {final.code}: {summary[:48]}; {len(unclear)} unclear exits")
    leaks = key_leaks(key, [r.stdout + r.stderr for r in runs], dest)
    c["no key leak"] = (not leaks and refusals == 0, f"{len(leaks)} leaks, {refusals} auth headers at storage")
    return c


_STATUS_BY_EXIT = {0: ("complete:", "up-to-date:"), 4: ("budget:",), 5: ("partial:",), 130: ("interrupted:",)}


def _says_what_happened(run: CliRun) -> bool:
    """A run that was not killed printed one stderr line, and that line matches its exit code."""
    if run.code < 0:
        return True                        # SIGKILLed: it had no chance to say anything
    if len(run.lines) != 1:
        return False
    line = run.lines[0]
    if line.startswith("margen-mirror: error:"):
        return run.code not in (0, 4)
    return line.startswith(tuple("margen-mirror " + s for s in _STATUS_BY_EXIT.get(run.code, ("?",))))


def served_sha_of(admin: Any) -> Callable[[str], str]:
    return lambda item_id: hashlib.sha256(admin.image_bytes(item_id)).hexdigest()


@dataclass
class Outcome:
    scenario: str
    checks: dict[str, Check]
    notes: str = ""
    columns: tuple[str, ...] = INVARIANTS
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return all(ok for ok, _ in self.checks.values())

    def failures(self) -> list[str]:
        return [f"{self.scenario}: {name}: {why}" for name, (ok, why) in self.checks.items() if not ok]


# -- 429 bursts -----------------------------------------------------------------------------------
@contextlib.contextmanager
def bursts_of_429(admin: Any, *, every_s: float = 1.5, burst_s: float = 0.3, rate: float = 0.8,
                  base: float = 0.02) -> Iterator[None]:
    """A side thread raising api_429 to ``rate`` for ``burst_s`` every ``every_s`` seconds."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            with contextlib.suppress(Exception):
                admin.set_faults(api_429=rate)
                stop.wait(burst_s)
                admin.set_faults(api_429=base)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(Exception):
            admin.set_faults(api_429=base)


# -- scenarios with a full mirror at the end --------------------------------------------------------
def finish_and_check(name: str, emu: SubprocessEmulator, key: str, account: str, dest: Path,
                     log: list[CliRun], notes: str) -> Outcome:
    """Clear the faults, run until complete, then check every invariant."""
    emu.set_faults(**{k: 0 for k in emu.faults if k not in ("slow_seconds", "url_ttl")}, url_ttl=300)
    final = log[-1] if log and log[-1].code == 0 else run_until_complete(emu.url, key, dest, log=log)
    expected = {i["id"] for i in expected_items(emu.url, key)}
    ledger = emu.admin.ledger(account)
    checks = check_mirror(dest, expected=expected, served_sha=served_sha_of(emu.admin),
                          charge_count=ledger["charge_count"], final=final, runs=log, key=key,
                          refusals=emu.refusals())
    return Outcome(name, checks, notes, extra={"runs": len(log), "items": len(expected)})


def scenario_faults(emu: SubprocessEmulator, key: str, account: str, dest: Path) -> Outcome:
    """Every fault of issue 4 at once, plus 429 bursts; the CLI is re-run (as exit 5 asks) until done."""
    emu.set_faults(**FULL_FAULTS)
    log: list[CliRun] = []
    with bursts_of_429(emu.admin):
        for _ in range(4):
            run = run_cli(*sync_args(emu.url, dest), key=key, timeouts=TEST_TIMEOUTS)
            log.append(run)
            if run.code == 0:
                break
    counters = emu.admin.counters()
    injected = counters["faults"]
    codes = ",".join(str(r.code) for r in log)
    notes = (f"{sum(injected.values())} faults injected ({_fmt(injected)}); "
             f"{counters['storage_forbidden']} expired-URL refusals; exits under faults: {codes}")
    out = finish_and_check("faults: 500s, drops, truncation, deadlines, expiry, 429 bursts", emu, key, account,
                           dest, log, notes)
    out.extra["faults"] = injected
    out.extra["faults_total"] = sum(injected.values())
    return out


def scenario_sigkill(emu: SubprocessEmulator, key: str, account: str, dest: Path, *, kills: int,
                     seed: int, max_wait: float = 1.2) -> Outcome:
    emu.set_faults(**KILL_FAULTS)
    log: list[CliRun] = []
    done = sigkill_runs(emu.url, key, dest, kills=kills, seed=seed, log=log, max_wait=max_wait)
    injected = emu.admin.counters()["faults"]
    out = finish_and_check(f"SIGKILL x{done} at random moments, with faults", emu, key, account, dest, log,
                           f"{done} SIGKILLs (seed {seed}); {sum(injected.values())} faults injected meanwhile")
    out.extra["kills"] = done
    if done < kills:
        out.checks["exit + summary"] = (False, f"only {done} of {kills} kills landed: the run was too fast")
    return out


def scenario_emulator_restart(emu: SubprocessEmulator, key: str, account: str, dest: Path, *,
                              restarts: int) -> Outcome:
    """The server crashes (SIGKILL) and comes back on the same port, ledger intact, mid-sync."""
    emu.set_faults(latency_ms=6, api_500=0.05)
    log: list[CliRun] = []
    proc = subprocess.Popen(cli_cmd(*sync_args(emu.url, dest), timeouts=TEST_TIMEOUTS), env=cli_env(key),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = 0
    for _ in range(restarts):
        time.sleep(1.0)
        if proc.poll() is not None:
            break
        emu.crash_restart(down_s=0.8)
        done += 1
    out, err = proc.communicate(timeout=300)
    log.append(CliRun(proc.returncode, out, err))
    notes = f"{done} emulator crashes+restarts mid-run; that run exited {proc.returncode}: {_last(err)[:70]}"
    res = finish_and_check(f"emulator SIGKILLed and restarted x{done} mid-run", emu, key, account, dest, log, notes)
    res.extra["restarts"] = done
    if done < restarts:
        res.checks["exit + summary"] = (False, f"only {done} of {restarts} restarts landed")
    return res


def scenario_key_revoked_mid_run(emu: SubprocessEmulator, key: str, account: str, dest: Path) -> Outcome:
    """The key is revoked while the sync runs: exit 3 with one line, nothing half-written; a new key
    of the same account then finishes the mirror and pays nothing twice."""
    emu.set_faults(latency_ms=6)
    log: list[CliRun] = []
    proc = subprocess.Popen(cli_cmd(*sync_args(emu.url, dest), timeouts=TEST_TIMEOUTS), env=cli_env(key),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while emu.admin.ledger(account)["charge_count"] < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    emu.admin.revoke_key(key)
    out_, err = proc.communicate(timeout=300)
    revoked = CliRun(proc.returncode, out_, err)
    log.append(revoked)
    charged = emu.admin.ledger(account)["charge_count"]
    new_key = emu.admin.create_key("live", rate_limit=100_000, account=account)
    res = finish_and_check("key revoked mid-run, then a new key", emu, new_key, account, dest, log,
                           f"revoked-key run exited {revoked.code}: {_last(err)[:70]}; {charged} charged before it")
    line = _last(err)
    if revoked.code != 3 or "unauthorized" not in line or len(revoked.lines) != 1:
        res.checks["exit + summary"] = (False, f"revoked run: exit {revoked.code}, {len(revoked.lines)} line(s): "
                                               f"{line[:70]}")
    if key_leaks(key, [revoked.stdout, revoked.stderr], dest):
        res.checks["no key leak"] = (False, "the revoked key is in the output or DEST")
    return res


def scenario_file_size_limit(emu: SubprocessEmulator, key: str, account: str, dest: Path, *,
                             limit_bytes: int) -> Outcome:
    """Writes in DEST fail (the kernel's file-size limit, ``ulimit -f``: EFBIG, no root needed, like a
    full disk): the run stops with exit 2 and one line; without the limit, a re-run finishes free."""
    import resource

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    log: list[CliRun] = []
    args = [*sync_args(emu.url, dest), "--concurrency", "2"]
    proc = subprocess.run(cli_cmd(*args, timeouts=TEST_TIMEOUTS), env=cli_env(key), capture_output=True, text=True,
                          timeout=300, preexec_fn=limited)
    first = CliRun(proc.returncode, proc.stdout, proc.stderr)
    log.append(first)
    charged = emu.admin.ledger(account)["charge_count"]
    res = finish_and_check(f"writes refused (ulimit -f {limit_bytes} bytes), then allowed", emu, key, account, dest,
                           log, f"limited run exited {first.code}: {_last(first.stderr)[:80]}; {charged} charged "
                                "before it stopped")
    if first.code != 2 or "ulimit -f" not in _last(first.stderr):
        res.checks["exit + summary"] = (False, f"limited run: exit {first.code}: {_last(first.stderr)[:70]}")
    return res


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _last(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# -- mistaken user input: one-line error, exit code, zero credits ------------------------------------
def user_mistake(name: str, emu: Any, key: str, account: str, args: list[str], *, want_exit: int,
                 want_text: str, timeouts: dict[str, float] | None = None) -> Outcome:
    before = emu.admin.ledger(account)["charge_count"]
    run = run_cli(*args, key=key, timeouts=timeouts, timeout=120)
    after = emu.admin.ledger(account)["charge_count"]
    line = run.lines[-1] if run.lines else ""
    checks = {
        "one-line error": (len(run.lines) == 1 and want_text.lower() in line.lower() and "Traceback" not in run.stderr,
                           line[:90]),
        "exit code": (run.code == want_exit, f"exit {run.code} (want {want_exit})"),
        "zero credits": (after == before, f"{after - before} charged"),
        "no key leak": (not key_leaks(key, [run.stdout, run.stderr], None), "key absent from output"),
    }
    return Outcome(name, checks, line, columns=USER_INVARIANTS)


def _cli_main() -> int:
    """``chaos_scenarios.py cli API STORAGE CONNECT -- ARGS``: the CLI with shortened deadlines."""
    import functools

    from mirror.cli import main
    from mirror.config import Retries, Timeouts
    from mirror.engine import sync
    argv = sys.argv[2:]
    api, storage, connect = (float(v) for v in argv[:3])
    rest = argv[argv.index("--") + 1:]
    timeouts = Timeouts(api=api, storage=storage, connect=connect)
    retries = Retries(attempts=6, backoff=0.05, max_backoff=1.0, rate_limit_patience=120)
    sync.run_sync = functools.partial(sync.run_sync, timeouts=timeouts, retries=retries)
    sync.run_plan = functools.partial(sync.run_plan, timeouts=timeouts)
    return main(rest)


if __name__ == "__main__" and sys.argv[1:2] == ["cli"]:
    sys.exit(_cli_main())


# -- the destination's file system misbehaves (root only: tmpfs and bind mounts) -------------------
def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path(f"/tmp/chaos-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def scenario_disk_full(emu: SubprocessEmulator, key: str, account: str, dest: Path, *, size_kb: int) -> Outcome:
    """DEST is a tmpfs of ``size_kb``: the run must stop cleanly; after it is grown, a re-run finishes free."""
    dest.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(dest))
    log: list[CliRun] = []
    try:
        first = run_cli(*sync_args(emu.url, dest), key=key, timeouts=TEST_TIMEOUTS)
        log.append(first)
        charged_when_full = emu.admin.ledger(account)["charge_count"]
        _mount("-o", "remount,size=64m", str(dest))
        out = finish_and_check(f"disk full (tmpfs {size_kb} KiB), then grown", emu, key, account, dest, log,
                               f"full-disk run exited {first.code}: {_last(first.stderr)[:90]}; "
                               f"{charged_when_full} charged before it stopped")
        if first.code == 0:
            out.checks["exit + summary"] = (False, "the disk never filled: make size_kb smaller")
        return out
    finally:
        _umount(dest)


def scenario_read_only(emu: SubprocessEmulator, key: str, account: str, dest: Path, *,
                       after_images: int = 10) -> Outcome:
    """DEST becomes read-only (a read-only bind mount over it) once the run has placed ``after_images``
    images; then writable again.

    Triggered by progress, not by a clock: with a fixed delay (1 s) a fast machine finished the
    whole run first. At 30 ms per request and 6 workers the rest of the run lasts about a second."""
    dest.mkdir(parents=True, exist_ok=True)
    emu.set_faults(latency_ms=30)
    log: list[CliRun] = []
    proc = subprocess.Popen(cli_cmd(*sync_args(emu.url, dest), timeouts=TEST_TIMEOUTS), env=cli_env(key),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(_files_under(dest / "images")) < after_images and time.monotonic() < deadline:
        time.sleep(0.005)
    mounted = False
    try:
        if proc.poll() is None:
            _mount("--bind", str(dest), str(dest))
            mounted = True
            # The remount fails (EBUSY) while a file the run created on the new mount is open for
            # writing, which it is for a few microseconds per image: try again.
            for attempt in itertools.count():
                try:
                    _mount("-o", "remount,bind,ro", str(dest))
                    break
                except subprocess.CalledProcessError:
                    if attempt >= 50 or proc.poll() is not None:
                        raise
                    time.sleep(0.01)
        out_, err = proc.communicate(timeout=300)
        log.append(CliRun(proc.returncode, out_, err))
    finally:
        if mounted:
            _umount(dest)
    out = finish_and_check("DEST made read-only mid-run, then writable", emu, key, account, dest, log,
                           f"read-only run exited {proc.returncode}: {_last(err)[:90]}")
    if not mounted or proc.returncode == 0:
        out.checks["exit + summary"] = (False, "the run ended before DEST became read-only")
    return out
