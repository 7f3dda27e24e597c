"""Restarts, persistence, determinism, the admin API's shape, and the CLI verb."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from emulator_http import Api, fetch

from mirror.emulator import EmulatorConfig, start_emulator_thread

REPO = Path(__file__).resolve().parents[2]


def test_restart_keeps_ledger_secret_and_appended_items(emulator):
    key = emulator.admin.create_key("live", balance=10, account="acct_p")
    api = Api(emulator.url, key)
    first = api.ok("items", limit=1)["data"][0]["id"]
    dl = api.download(first, idem="x").body
    cursor = api.ok("items", cursor="", limit=200)["next_cursor"]
    emulator.admin.append_items(25)
    ids_before = [i["id"] for i in api.all_items()]
    url = emulator.url
    emulator.restart()
    assert emulator.url == url
    assert [i["id"] for i in api.all_items()] == ids_before and len(ids_before) == 325
    assert fetch(dl["url"]).status == 200  # the signing secret survived
    assert api.download(first, idem="x").raw == api.download(first, idem="x").raw
    assert api.download(first).body["already_owned"] is True
    assert api.ok("items", cursor=cursor, limit=200)["next_cursor"] is None  # cursors survive too
    ledger = emulator.admin.ledger("acct_p")
    assert ledger["balance"] == 9 and ledger["charge_count"] == 1
    assert Api(emulator.url, "mgn_live_demo").ok("usage")["balance"] == 1_000_000


def test_same_seed_same_corpus_different_seed_different_ids(emulator_factory):
    a, b, c = emulator_factory(seed=3), emulator_factory(seed=3), emulator_factory(seed=4)
    ids = [[i["id"] for i in Api(e.url, "mgn_live_demo").all_items()] for e in (a, b, c)]
    assert ids[0] == ids[1] and not set(ids[0]) & set(ids[2])
    item = ids[0][5]
    assert a.admin.image_bytes(item) == b.admin.image_bytes(item)


def test_temp_data_dir_is_removed_on_stop():
    emu = start_emulator_thread(EmulatorConfig(items=50))
    data_dir = emu.data_dir
    assert (data_dir / "ledger.sqlite3").exists()
    emu.stop()
    assert not data_dir.exists()


def test_admin_counters_and_ledger_shapes(emulator):
    api = Api(emulator.url, emulator.admin.create_key("live", balance=2, account="acct_c"))
    api.ok("usage")
    api.download(api.ok("items", limit=1)["data"][0]["id"])
    counters = emulator.admin.counters()
    assert counters["api_requests"] == 3 and counters["api_requests_by_route"]["download"] == 1
    assert counters["api_requests_by_account"] == {"acct_c": 3}
    assert counters["downloads"] == 1 and counters["charges"] == 1
    emulator.admin.reset_counters()
    assert emulator.admin.counters()["api_requests"] == 0
    ledger = emulator.admin.ledger("acct_c")
    assert set(ledger) >= {"account", "balance", "owned", "charges", "charge_count"}
    assert set(ledger["charges"][0]) >= {"item_id", "tier", "at"}
    assert emulator.admin.set_balance("acct_c", 50) == 50 and emulator.admin.add_credits("acct_c", 5) == 55


def _emulator_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """The ``emulator`` CLI in a process of its own, on a free port."""
    code = "from mirror.emulator import main; raise SystemExit(main())"
    return subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--data-dir", str(tmp_path / "d"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_cli_prints_ready_quickly_and_stops_on_sigterm(tmp_path):
    start = time.monotonic()
    proc = _emulator_process(tmp_path, "--items", "10000", "--admin")
    try:
        line = proc.stdout.readline().strip()
        elapsed = time.monotonic() - start
        assert line.startswith("READY http://127.0.0.1:"), line + proc.stderr.read()
        assert elapsed < 2.0, elapsed
        url = line.split()[1]
        api = Api(url, "mgn_live_demo")
        assert api.ok("catalog")["total"] == 10_000
        assert Api(url, "mgn_test_demo").ok("usage")["tier"] == "test"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_a_burst_of_connections_is_queued_not_dropped(tmp_path):
    """A client opening 300 connections at once (``--concurrency 296``) must not lose SYNs to a
    short listen backlog: each would cost it a 1 s retransmit. The emulator is frozen (SIGSTOP), so
    only the kernel's queue can complete the handshakes."""
    somaxconn = Path("/proc/sys/net/core/somaxconn")
    if not somaxconn.exists() or int(somaxconn.read_text()) < 300:
        pytest.skip("this kernel caps every listen backlog below 300 (net.core.somaxconn)")
    proc = _emulator_process(tmp_path, "--items", "100")
    socks: list[socket.socket] = []
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line + proc.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        proc.send_signal(signal.SIGSTOP)
        for _ in range(300):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            socks.append(sock)
        pending, deadline = set(socks), time.monotonic() + 0.8
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], 0.1)
            pending -= {s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
        assert not pending, f"{len(pending)} of 300 connections were not accepted into the queue"
    finally:
        for sock in socks:
            sock.close()
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_image_memory_budget_is_set_from_the_command_line(capsys):
    from mirror.emulator.server import _parse

    assert _parse(["--port", "0"]).image_cache_bytes == EmulatorConfig.image_cache_bytes
    assert _parse(["--port", "0", "--image-memory-mb", "4096"]).image_cache_bytes == 4096 * 2**20
    with pytest.raises(SystemExit) as refused:
        _parse(["--port", "0", "--image-memory-mb", "-1"])
    assert refused.value.code == 2
    assert "--image-memory-mb >= 0" in capsys.readouterr().err
