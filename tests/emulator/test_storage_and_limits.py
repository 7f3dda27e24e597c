"""Signed storage URLs and the per-key rate limit."""

from __future__ import annotations

import http.client
import io
import time
import urllib.parse

from emulator_http import Api, fetch
from PIL import Image


def _download(emulator, **key_kw) -> dict:
    api = Api(emulator.url, emulator.admin.create_key("live", balance=5, **key_kw))
    return api.ok(f"download/{api.ok('items', limit=1)['data'][0]['id']}")


def test_signed_url_serves_the_exact_jpeg(emulator):
    dl = _download(emulator)
    reply = fetch(dl["url"])
    assert reply.status == 200 and reply.headers["Content-Type"] == "image/jpeg"
    assert int(reply.headers["Content-Length"]) == len(reply.raw)
    assert reply.raw == emulator.admin.image_bytes(dl["item"]["id"])
    assert Image.open(io.BytesIO(reply.raw)).format == "JPEG"
    assert emulator.admin.counters()["storage_ok"] == 1


def test_tampered_and_expired_urls_are_403(emulator_factory):
    emu = emulator_factory(url_ttl=1)
    dl = _download(emu)
    assert dl["expires_in"] == 1
    sig = dl["url"].rsplit("sig=", 1)[1]
    assert fetch(dl["url"].replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])).status == 403
    assert fetch(dl["url"].replace("exp=", "exp=9")).status == 403
    time.sleep(2.1)
    assert fetch(dl["url"]).status == 403
    assert emu.admin.counters()["storage_forbidden"] == 3


def test_auth_header_on_storage_is_refused_and_counted(emulator):
    dl = _download(emulator)
    assert fetch(dl["url"], headers={"Authorization": "Bearer mgn_live_demo"}).status == 400
    assert fetch(dl["url"], headers={"x-api-key": "mgn_live_demo"}).status == 400
    counters = emulator.admin.counters()
    assert counters["auth_header_refusals"] == 2 and counters["storage_ok"] == 0


def test_rate_limit_sixth_request_is_429_without_headers(emulator):
    api = Api(emulator.url, emulator.admin.create_key("live", rate_limit=5))
    assert [api.get("usage").status for _ in range(5)] == [200] * 5
    reply = api.get("usage")
    assert reply.status == 429 and reply.body["code"] == "rate_limited"
    assert "Retry-After" not in reply.headers
    assert not any(h.lower().startswith("x-ratelimit") for h in reply.headers)
    assert api.get("benchmarks").status == 429  # every API route shares the budget
    assert Api(emulator.url, "mgn_live_demo").get("usage").status == 200  # per key
    assert emulator.admin.counters()["rate_limited"] == 2


def test_rejected_requests_do_not_consume_budget(emulator):
    api = Api(emulator.url, emulator.admin.create_key("live", rate_limit=2))
    limiter = emulator.state.limiter
    t0 = time.monotonic()
    assert limiter.allow("k", 2, t0) and limiter.allow("k", 2, t0 + 1)
    assert not limiter.allow("k", 2, t0 + 30) and not limiter.allow("k", 2, t0 + 59)
    assert limiter.allow("k", 2, t0 + 60.5)  # the rolling window freed one slot, 429s took none
    assert [api.get("usage").status for _ in range(3)] == [200, 200, 429]


def test_default_rate_limit_is_60(emulator):
    api = Api(emulator.url, emulator.admin.create_key("live"))
    statuses = [api.get("usage").status for _ in range(61)]
    assert statuses[:60] == [200] * 60 and statuses[60] == 429


def test_connections_are_counted_once_each_and_admin_calls_not_at_all(emulator):
    key = emulator.admin.create_key("live")
    api = Api(emulator.url, key)
    emulator.admin.reset_counters()
    for _ in range(3):                       # urllib: a new connection per request
        assert api.get("usage").status == 200
    assert emulator.admin.counters()["connections"] == 3
    kept = http.client.HTTPConnection(urllib.parse.urlsplit(emulator.url).netloc, timeout=10)
    try:
        for _ in range(3):                   # one keep-alive connection, three requests
            kept.request("GET", "/api/v1/data/usage", headers={"Authorization": f"Bearer {key}"})
            reply = kept.getresponse()
            assert reply.status == 200 and reply.read()
    finally:
        kept.close()
    assert emulator.admin.counters()["connections"] == 4
    emulator.admin.reset_counters()
    assert emulator.admin.counters()["connections"] == 0
