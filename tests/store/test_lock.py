"""DestLock: one run per DEST, a clear message when held, and no stale lock after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.errors import EXIT_LOCKED, DestinationError, LockHeldError
from mirror.store import DestLock, Layout

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from mirror.store import DestLock, Layout
lock = DestLock(Layout(Path(sys.argv[2])))
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_is_exclusive_and_reusable(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path)
    with DestLock(layout) as lock:
        assert lock.held
        info = json.loads(layout.lock_path.read_text())
        assert info["pid"] == os.getpid() and info["started"]
        with pytest.raises(LockHeldError, match=f"pid {os.getpid()}") as held:
            DestLock(layout).acquire()  # a second lock in the same process is refused too
        assert held.value.exit_code == EXIT_LOCKED
        assert "\n" not in str(held.value)
    assert not lock.held
    assert layout.lock_path.read_text() == ""  # a finished run is not named as the holder
    with DestLock(layout):
        pass
    assert layout.lock_path.exists()  # never deleted: see lock.py


def test_lock_creates_state_folder(tmp_path: Path) -> None:
    with DestLock(Layout(tmp_path / "fresh")):
        assert (tmp_path / "fresh" / ".state" / "lock").is_file()


def test_lock_on_a_file_dest_is_a_destination_error(tmp_path: Path) -> None:
    (tmp_path / "dest").write_text("a file")
    with pytest.raises(DestinationError):
        DestLock(Layout(tmp_path / "dest")).acquire()


def test_lock_held_by_another_process_frees_itself_on_sigkill(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(REPO), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as held:
            DestLock(layout).acquire()
        message = str(held.value)
        assert f"pid {holder.pid}" in message and "started 20" in message
        assert "wait for it or stop it; the lock frees itself when that process exits" in message
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
        with DestLock(layout) as lock:  # the kernel dropped the dead process's lock
            assert json.loads(layout.lock_path.read_text())["pid"] == os.getpid()
            assert lock.held
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
