"""The bulk release endpoint: whole shard sets, charged once, Parquet rows with the image bytes."""

from __future__ import annotations

import http.client
import io
import time
import urllib.parse

import pyarrow.parquet as pq
from emulator_http import FACES, PASSPORT, Api, fetch
from margen import Margen
from margen.ergonomics import get_release


def _live(emulator, balance: int, **kw) -> Api:
    return Api(emulator.url, emulator.admin.create_key("live", balance=balance, account="acct_r", **kw))


def test_release_pull_charges_once_and_serves_parquet(emulator):
    api = _live(emulator, 1000)
    selection = {"kind": "fake", "condition": "clean,jpeg_q70"}
    rel = api.ok("release", benchmark=FACES, **selection)
    expected = api.all_items(kind="fake", perturbation="clean,jpeg_q70")
    assert rel["coverage"] == "full" and rel["credits_required"] == len(expected) == rel["item_count"]
    assert rel["balance"] == 1000 - len(expected)
    rows = []
    for shard in rel["shards"]:
        for part in shard["parts"]:
            reply = fetch(part["url"])
            assert reply.status == 200
            table = pq.read_table(io.BytesIO(reply.raw))
            rows += table.to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(i["id"] for i in expected)
    first = rows[0]
    assert first["image"] == emulator.admin.image_bytes(first["id"])
    again = api.ok("release", benchmark=FACES, **selection)
    assert again["credits_required"] == 0 and again["balance"] == rel["balance"]  # a re-pull is free
    ledger = emulator.admin.ledger("acct_r")
    assert ledger["charge_count"] == len(expected)
    one = api.download(expected[0]["id"]).body
    assert one["already_owned"] is True and one["charged"] is False


def test_release_filters_only_remove_whole_sets(emulator):
    api = _live(emulator, 10_000)
    everything = api.ok("release", benchmark=FACES, release=f"{FACES}.0")
    by_set = {s["set"]: s["items"] for s in everything["shards"]}
    assert sum(by_set.values()) == 300
    gen = api.ok("release", benchmark=FACES, generator="stylegan2")
    sources = {s["set"].split("__")[0] for s in gen["shards"]}
    assert sources == {"real", "stylegan2"}  # generator= keeps the real sets
    for s in gen["shards"]:
        assert by_set[s["set"]] == s["items"]  # a set is never split by a filter
    only = api.ok("release", benchmark=FACES, generator="stylegan2", kind="fake")
    assert {s["set"].split("__")[0] for s in only["shards"]} == {"stylegan2"}
    assert only["credits_required"] == 0  # already bought with the unfiltered pull


def test_release_nothing_matches_and_unknown_release(emulator):
    api = _live(emulator, 10)
    none = api.ok("release", benchmark=FACES, generator="flux2_klein_4b", kind="fake")
    assert none["shards"] == [] and none["credits_required"] == 0
    present = sorted({i["generator"] for i in api.all_items(kind="fake")})
    assert none["available_filter_values"]["generator"] == present
    assert none["available_filter_values"]["kind"] == ["fake", "real"]
    bad = api.get("release", benchmark=FACES, release="synthetic-face-v9")
    assert bad.status == 400 and bad.body["param"] == "release"


def test_release_402_when_credits_do_not_cover_it(emulator):
    api = _live(emulator, 3)
    reply = api.get("release", benchmark=FACES, condition="clean")
    assert reply.status == 402 and reply.body["code"] == "insufficient_credits" and reply.body["required"] > 3
    assert emulator.admin.ledger("acct_r")["charge_count"] == 0


def test_release_versions_follow_appends_and_test_keys_get_partial(emulator):
    emulator.admin.append_items(30)
    api = _live(emulator, 10_000)
    rel = api.ok("release", benchmark=FACES, condition="clean")
    assert rel["release"] == f"{FACES}.1" and rel["available_releases"] == [f"{FACES}.0", f"{FACES}.1"]
    test = Api(emulator.url, "mgn_test_demo").ok("release", benchmark=FACES)
    assert test["coverage"] == "partial" and test["shards"] == [] and test["credits_required"] == 0


def test_sdk_get_release_on_the_passport_benchmark(emulator):
    key = emulator.admin.create_key("live", balance=500, benchmarks=[FACES, PASSPORT])
    client = Margen(bearer_auth=key, server_url=emulator.url)
    doc = get_release(client, benchmark=PASSPORT, kind="fake")
    assert doc["coverage"] == "full" and doc["shards"]
    table = pq.read_table(io.BytesIO(fetch(doc["shards"][0]["parts"][0]["url"]).raw))
    assert set(table.column("kind").to_pylist()) == {"fake"}
    assert table.column("attributes").to_pylist()[0].startswith('{"document_type"')


# -- faults, appended releases, the test tier and the ledger's record of pulls ----------------------

def _raw_get(url: str, timeout: float = 10) -> tuple[int, int, bytes, BaseException | None]:
    """(status, declared length, bytes received, error) without urllib's exception mapping."""
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


def test_a_500_before_the_purchase_buys_nothing_and_one_after_it_is_a_lost_answer(emulator):
    api = _live(emulator, 1000)
    emulator.admin.set_faults(release_500_before_purchase=1.0)
    reply = api.get("release", benchmark=FACES, condition="clean")
    assert reply.status == 500 and reply.body["code"] == "server_error"
    ledger = emulator.admin.ledger("acct_r")
    assert ledger["charge_count"] == 0 and ledger["release_pulls"] == [] and ledger["balance"] == 1000

    emulator.admin.set_faults(release_500_before_purchase=0.0, release_500_after_purchase=1.0)
    lost = api.get("release", benchmark=FACES, condition="clean")
    assert lost.status == 500 and lost.body["code"] == "server_error"
    ledger = emulator.admin.ledger("acct_r")
    bought = ledger["charge_count"]
    assert bought > 0 and ledger["balance"] == 1000 - bought and {c["via"] for c in ledger["charges"]} == {"release"}
    assert [(p["release"], p["filters"], p["items"], p["credits"]) for p in ledger["release_pulls"]] == \
        [(f"{FACES}.0", {"condition": ["clean"]}, bought, bought)]

    emulator.admin.set_faults(release_500_after_purchase=0.0)
    retry = api.ok("release", benchmark=FACES, condition="clean")      # the re-pull is free
    assert retry["credits_required"] == 0 and retry["item_count"] == bought and retry["balance"] == 1000 - bought
    pulls = emulator.admin.ledger("acct_r")["release_pulls"]
    assert [p["credits"] for p in pulls] == [bought, 0] and emulator.admin.ledger("acct_r")["charge_count"] == bought
    assert emulator.admin.counters()["faults"] == {"release_500_before_purchase": 1, "release_500_after_purchase": 1}


def test_api_500_on_release_is_split_around_the_purchase(emulator_factory):
    emu = emulator_factory(fail_rate=1.0)
    api = Api(emu.url, emu.admin.create_key("live", balance=100_000, account="acct_r", rate_limit=1000))
    assert all(api.get("release", benchmark=FACES, condition=c).status == 500
               for c in ("clean", "jpeg_q70", "jpeg_q50", "blur_1", "blur_2", "noise_5", "fb_pipeline",
                         "ig_pipeline", "tt_pipeline", "x_pipeline"))
    faults = emu.admin.counters()["faults"]
    before, after = faults.get("release_500_before_purchase", 0), faults.get("release_500_after_purchase", 0)
    assert before + after == 10 and before and after
    assert len(emu.admin.ledger("acct_r")["release_pulls"]) == after


def test_part_faults_hit_parts_only_and_are_counted(emulator):
    api = _live(emulator, 1000)
    rel = api.ok("release", benchmark=FACES, condition="clean", kind="real")
    url = rel["shards"][0]["parts"][0]["url"]
    whole = fetch(url).raw
    item = api.all_items(kind="real", perturbation="clean")[0]
    image_url = api.download(item["id"]).body["url"]        # owned by the pull: free

    emulator.admin.set_faults(part_500=1.0, part_drop=1.0, part_truncate=1.0)
    assert fetch(image_url).status == 200                    # images never see the part faults
    assert fetch(url).status == 500
    emulator.admin.set_faults(part_500=0.0)
    status, declared, got, err = _raw_get(url)
    assert status == 200 and declared == len(whole) and err is not None and len(got) < len(whole)
    emulator.admin.set_faults(part_drop=0.0)
    status, declared, got, err = _raw_get(url)
    assert declared > len(whole) and err is not None and got == whole
    emulator.admin.set_faults(part_truncate=0.0, storage_drop=1.0)       # the storage faults hit parts too
    assert _raw_get(url)[3] is not None
    assert emulator.admin.counters()["faults"] == {"part_500": 1, "part_drop": 1, "part_truncate": 1,
                                                   "storage_drop": 1}


def test_part_urls_expire_and_a_new_pull_renews_them_for_free(emulator):
    api = _live(emulator, 1000)
    emulator.admin.set_faults(url_ttl=1)
    rel = api.ok("release", benchmark=FACES, condition="clean", kind="fake")
    assert rel["expires_in"] == 1
    url = rel["shards"][0]["parts"][0]["url"]
    time.sleep(2.1)
    assert fetch(url).status == 403
    emulator.admin.set_faults(url_ttl=300)
    again = api.ok("release", benchmark=FACES, condition="clean", kind="fake")
    assert again["credits_required"] == 0 and again["balance"] == rel["balance"]
    assert [s["set"] for s in again["shards"]] == [s["set"] for s in rel["shards"]]
    fresh = again["shards"][0]["parts"][0]["url"]
    assert fresh != url and fetch(fresh).status == 200
    assert emulator.admin.counters()["storage_forbidden"] == 1


def test_appended_releases_charge_only_what_is_new_and_survive_a_restart(emulator):
    api = _live(emulator, 100_000)
    first = api.ok("release", benchmark=FACES, kind="fake")
    emulator.admin.append_items(60)
    newest = api.ok("release", benchmark=FACES, kind="fake")
    assert newest["release"] == f"{FACES}.1" and first["release"] == f"{FACES}.0"
    fakes_now = len(api.all_items(kind="fake"))
    assert newest["item_count"] == fakes_now and newest["credits_required"] == fakes_now - first["item_count"]
    older = api.ok("release", benchmark=FACES, release=f"{FACES}.0", kind="fake")
    assert older["item_count"] == first["item_count"] and older["credits_required"] == 0   # a snapshot
    emulator.restart()
    after = api.ok("release", benchmark=FACES, kind="fake")
    assert after["available_releases"] == [f"{FACES}.0", f"{FACES}.1"] and after["credits_required"] == 0
    pulls = emulator.admin.ledger("acct_r")["release_pulls"]
    assert [(p["release"], p["credits"]) for p in pulls] == [
        (f"{FACES}.0", first["item_count"]), (f"{FACES}.1", newest["credits_required"]), (f"{FACES}.0", 0),
        (f"{FACES}.1", 0)]
    assert emulator.admin.ledger("acct_r")["charge_count"] == fakes_now


def test_test_keys_get_partial_coverage_whatever_the_filters_and_never_a_shard(emulator):
    test = Api(emulator.url, emulator.admin.create_key("test", account="acct_t"))
    some = test.ok("release", benchmark=FACES, kind="fake", condition="clean")
    assert some["coverage"] == "partial" and some["shards"] == [] and some["credits_required"] == 0
    none = test.ok("release", benchmark=FACES, kind="fake", generator="no-such-generator")
    assert none["coverage"] == "partial" and none["shards"] == [] and "available_filter_values" in none
    assert emulator.admin.ledger("acct_t")["release_pulls"] == []
