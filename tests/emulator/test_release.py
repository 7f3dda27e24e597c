"""The bulk release endpoint: whole shard sets, charged once, Parquet rows with the image bytes."""

from __future__ import annotations

import io

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
