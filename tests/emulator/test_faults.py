"""Fault injection: each fault is observable from a client and counted by the emulator."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse

import pytest
from contract import assert_matches_schema
from emulator_http import Api, fetch, request


def _setup(emulator, balance: int = 20) -> tuple[Api, list[str]]:
    api = Api(emulator.url, emulator.admin.create_key("live", balance=balance, account="acct_f", rate_limit=1000))
    return api, [i["id"] for i in api.ok("items", limit=5)["data"]]


def _raw_get(url: str, timeout: float = 10) -> tuple[int, int, bytes, BaseException | None]:
    """(status, declared length, bytes received, error) without urllib's retry/exception mapping."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request("GET", f"{parts.path}?{parts.query}")
    resp = conn.getresponse()
    declared = int(resp.getheader("Content-Length", "-1"))
    try:
        return resp.status, declared, resp.read(), None
    except (http.client.IncompleteRead, ConnectionError) as err:
        partial = err.partial if isinstance(err, http.client.IncompleteRead) else b""
        return resp.status, declared, partial, err
    finally:
        conn.close()


def test_api_500_on_every_route_is_counted(emulator):
    api, _ = _setup(emulator)
    emulator.admin.set_faults(api_500=1.0)
    for path in ("benchmarks", "catalog", "items", "usage"):
        reply = api.get(path)
        assert reply.status == 500 and reply.body["code"] == "server_error"
        assert_matches_schema(reply.body, "Error")
    assert emulator.admin.counters()["faults"]["api_500"] == 4


def test_500_before_debit_charges_nothing(emulator):
    api, ids = _setup(emulator)
    emulator.admin.set_faults(download_500_before_debit=1.0)
    assert api.download(ids[0], idem="a").status == 500
    assert emulator.admin.ledger("acct_f")["charge_count"] == 0
    emulator.admin.set_faults(download_500_before_debit=0.0)
    assert api.download(ids[0], idem="a").body["charged"] is True
    assert emulator.admin.counters()["faults"] == {"download_500_before_debit": 1}


def test_500_after_debit_is_a_lost_response_and_the_retry_is_free(emulator):
    api, ids = _setup(emulator)
    emulator.admin.set_faults(download_500_after_debit=1.0)
    lost = api.download(ids[0], idem="run:1")
    assert lost.status == 500 and lost.body["code"] == "server_error"
    ledger = emulator.admin.ledger("acct_f")
    assert ledger["charge_count"] == 1 and ledger["balance"] == 19 and ids[0] in ledger["owned"]
    emulator.admin.set_faults(download_500_after_debit=0.0)
    retry = api.download(ids[0], idem="run:1")
    assert retry.status == 200 and retry.body["charged"] is True  # the original result, replayed
    fresh = api.download(ids[0], idem="run:2")
    assert fresh.body["charged"] is False and fresh.body["already_owned"] is True
    assert emulator.admin.ledger("acct_f")["charge_count"] == 1
    assert emulator.admin.counters()["faults"]["download_500_after_debit"] == 1


def test_fail_rate_splits_download_failures_around_the_debit(emulator_factory):
    emu = emulator_factory(fail_rate=1.0)
    api = Api(emu.url, emu.admin.create_key("live", balance=100, account="acct_f", rate_limit=1000))
    assert api.get("usage").status == 500
    emu.admin.set_faults(api_500=0.0)
    ids = [i["id"] for i in api.ok("items", limit=40)["data"]]
    emu.admin.set_faults(api_500=1.0)
    assert all(api.download(i).status == 500 for i in ids)
    faults = emu.admin.counters()["faults"]
    before, after = faults.get("download_500_before_debit", 0), faults.get("download_500_after_debit", 0)
    assert before + after == 40 and before > 5 and after > 5
    assert emu.admin.ledger("acct_f")["charge_count"] == after


def test_spurious_429_and_slow_handler(emulator):
    api, _ = _setup(emulator)
    emulator.admin.set_faults(api_429=1.0)
    reply = api.get("usage")
    assert reply.status == 429 and reply.body["code"] == "rate_limited" and "Retry-After" not in reply.headers
    emulator.admin.set_faults(api_429=0.0, api_slow=1.0, slow_seconds=1.0)
    with pytest.raises((TimeoutError, socket.timeout, OSError)):
        request(f"{emulator.url}/api/v1/data/usage", key=api.key, timeout=0.3)
    counters = emulator.admin.counters()
    assert counters["faults"] == {"api_429": 1, "api_slow": 1} and counters["rate_limited"] == 0


def test_latency_applies_to_api_and_storage(emulator):
    api, ids = _setup(emulator)
    url = api.ok(f"download/{ids[0]}")["url"]
    emulator.admin.set_faults(latency_ms=150)
    for call in (lambda: api.get("usage"), lambda: fetch(url)):
        start = time.monotonic()
        assert call().status == 200
        assert time.monotonic() - start >= 0.15
    assert emulator.admin.counters()["faults"] == {"latency_ms": 2}


def test_storage_drop_truncate_and_slow(emulator):
    api, ids = _setup(emulator)
    url = api.ok(f"download/{ids[0]}")["url"]
    full = emulator.admin.image_bytes(ids[0])
    emulator.admin.set_faults(storage_drop=1.0)
    status, declared, got, err = _raw_get(url)
    assert status == 200 and declared == len(full) and err is not None and len(got) < len(full)
    emulator.admin.set_faults(storage_drop=0.0, storage_truncate=1.0)
    status, declared, got, err = _raw_get(url)
    assert declared > len(full) and err is not None and got == full
    emulator.admin.set_faults(storage_truncate=0.0, storage_slow=1.0, slow_seconds=0.5)
    start = time.monotonic()
    status, declared, got, err = _raw_get(url)
    assert err is None and got == full and time.monotonic() - start >= 0.4
    counters = emulator.admin.counters()
    assert counters["faults"] == {"storage_drop": 1, "storage_truncate": 1, "storage_slow": 1}
    assert counters["storage_ok"] == 1  # only the slow one was served whole


def test_url_ttl_can_change_at_run_time(emulator):
    api, ids = _setup(emulator)
    assert emulator.admin.set_faults(url_ttl=1)["url_ttl"] == 1
    dl = api.ok(f"download/{ids[0]}")
    assert dl["expires_in"] == 1
    time.sleep(2.1)
    assert fetch(dl["url"]).status == 403


def test_same_seed_same_fault_sequence(emulator_factory):
    def sequence() -> list[int]:
        emu = emulator_factory(seed=11)
        api = Api(emu.url, emu.admin.create_key("live", rate_limit=1000))
        emu.admin.set_faults(api_500=0.5)
        return [api.get("usage").status for _ in range(30)]

    first = sequence()
    assert first == sequence() and {200, 500} == set(first)


def test_bad_fault_settings_are_rejected(emulator):
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.set_faults(api_500=2.0)
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.set_faults(no_such_fault=0.1)
