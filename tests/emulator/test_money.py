"""Credits and ownership, proven against the ledger: one charge per unique item per account."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from contract import assert_matches_schema
from emulator_http import Api


def _live(emulator, balance: int, account: str = "acct_t", **kw) -> Api:
    return Api(emulator.url, emulator.admin.create_key("live", balance=balance, account=account, **kw))


def test_one_charge_per_unique_item_and_free_redownload(emulator):
    api = _live(emulator, 10)
    ids = [i["id"] for i in api.ok("items", limit=3)["data"]]
    first = [api.download(i).body for i in ids]
    assert [d["charged"] for d in first] == [True] * 3 and first[-1]["balance"] == 7
    again = api.download(ids[0]).body
    assert again["charged"] is False and again["already_owned"] is True and again["balance"] == 7
    assert_matches_schema(again, "Download")
    ledger = emulator.admin.ledger("acct_t")
    assert ledger["balance"] == 7 and ledger["charge_count"] == 3 and sorted(ledger["owned"]) == sorted(ids)
    assert api.ok("usage")["balance"] == 7


def test_concurrent_duplicate_downloads_charge_once(emulator):
    api = _live(emulator, 50)
    ids = [i["id"] for i in api.ok("items", limit=5)["data"]]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda n: api.download(ids[n % 5]), range(40)))
    assert all(r.status == 200 for r in replies)
    assert sum(r.body["charged"] for r in replies) == 5
    ledger = emulator.admin.ledger("acct_t")
    assert ledger["charge_count"] == 5 and ledger["balance"] == 45


def test_ownership_survives_key_rotation(emulator):
    old = _live(emulator, 5)
    item = old.ok("items", limit=1)["data"][0]["id"]
    assert old.download(item).body["charged"] is True
    emulator.admin.revoke_key(old.key)
    new = Api(emulator.url, emulator.admin.create_key("live", account="acct_t"))
    body = new.download(item).body
    assert body["charged"] is False and body["already_owned"] is True and body["balance"] == 4
    other = _live(emulator, 5, account="acct_other")
    assert other.download(item).body["charged"] is True  # ownership is per account


def test_idempotency_key_replays_the_original_bytes(emulator):
    api = _live(emulator, 5)
    a, b = [i["id"] for i in api.ok("items", limit=2)["data"]]
    first = api.download(a, idem="run1:a")
    replay = api.download(a, idem="run1:a")
    assert first.raw == replay.raw and replay.body["charged"] is True
    conflict = api.download(b, idem="run1:a")
    assert conflict.status == 400 and conflict.body["code"] == "invalid_param"
    assert conflict.body["param"] == "Idempotency-Key"
    assert emulator.admin.ledger("acct_t")["charge_count"] == 1


def test_zero_balance_is_402_with_required_and_no_charge(emulator):
    api = _live(emulator, 1)
    a, b = [i["id"] for i in api.ok("items", limit=2)["data"]]
    assert api.download(a).status == 200
    reply = api.download(b, idem="k")
    assert reply.status == 402 and reply.body["code"] == "insufficient_credits" and reply.body["required"] == 1
    assert_matches_schema(reply.body, "Error")
    assert api.download(a).body["charged"] is False  # owned items stay free at balance 0
    ledger = emulator.admin.ledger("acct_t")
    assert ledger["charge_count"] == 1 and ledger["balance"] == 0 and b not in ledger["owned"]
    emulator.admin.add_credits("acct_t", 1)
    assert api.download(b, idem="k").body["charged"] is True  # a 402 is not recorded under the key


def test_test_tier_sample_free_forbidden_tier_and_not_found(emulator):
    test = Api(emulator.url, emulator.admin.create_key("test", account="acct_t"))
    live = _live(emulator, 0, account="acct_t2")
    sample = test.all_items()
    every = live.all_items()
    sample_ids = {i["id"] for i in sample}
    assert 0 < len(sample) < len(every) and sample_ids < {i["id"] for i in every}
    lineages = {i["source_real_id"] for i in sample}
    assert sample_ids == {i["id"] for i in every if i["source_real_id"] in lineages}  # whole lineages
    dl = test.download(sample[0]["id"])
    assert dl.status == 200 and dl.body["balance"] is None and dl.body["charged"] is False
    assert_matches_schema(dl.body, "Download")
    outside = next(i["id"] for i in every if i["id"] not in sample_ids)
    forbidden = test.download(outside)
    assert forbidden.status == 403 and forbidden.body["code"] == "forbidden_tier"
    missing = test.download("00000000-0000-0000-0000-000000000000")
    assert missing.status == 404 and missing.body["code"] == "not_found"
    assert test.ok("usage") == {"object": "usage", "tier": "test", "owner": "acct_t", "balance": 0}
    assert emulator.admin.ledger("acct_t")["charge_count"] == 0


def test_items_of_a_hidden_benchmark_are_not_found(emulator):
    both = Api(emulator.url, emulator.admin.create_key("live", benchmarks=["synthetic-face-v1", "passport-pad-v1"]))
    passport_item = both.ok("items", benchmark="passport-pad-v1", limit=1)["data"][0]["id"]
    reply = _live(emulator, 5).download(passport_item)
    assert reply.status == 404 and reply.body["code"] == "not_found"
