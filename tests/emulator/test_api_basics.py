"""Routes, auth, benchmarks, catalog, filters and errors, each body checked against the spec."""

from __future__ import annotations

import pytest
from contract import assert_matches_schema
from emulator_http import FACES, PASSPORT, Api, request

LIVE, TEST = "mgn_live_demo", "mgn_test_demo"


@pytest.mark.parametrize("prefix", ["/api/v1/data", "/api/data"])
def test_every_route_answers_schema_valid_bodies_on_both_prefixes(emulator, prefix):
    api = Api(emulator.url, LIVE, prefix)
    assert_matches_schema(api.ok("benchmarks"), "BenchmarkList")
    assert_matches_schema(api.ok("catalog", benchmark=FACES), "Catalog")
    page = api.ok("items", benchmark=FACES, limit=5)
    assert_matches_schema(page, "ItemList")
    assert_matches_schema(api.ok("usage"), "Usage")
    dl = api.ok(f"download/{page['data'][0]['id']}")
    assert_matches_schema(dl, "Download")


def test_auth_missing_unknown_revoked_and_x_api_key(emulator):
    for key in (None, "mgn_live_nope"):
        reply = Api(emulator.url, key).get("usage")
        assert reply.status == 401 and reply.body["code"] == "unauthorized"
        assert_matches_schema(reply.body, "Error")
    key = emulator.admin.create_key("live", balance=3)
    assert Api(emulator.url, key).get("usage").status == 200
    assert request(f"{emulator.url}/api/v1/data/usage", headers={"x-api-key": key}).status == 200
    assert request(f"{emulator.url}/api/v1/data/usage", headers={"Authorization": f"Basic {key}"}).status == 401
    emulator.admin.revoke_key(key)
    assert Api(emulator.url, key).get("usage").body["code"] == "unauthorized"


def test_benchmark_visibility_ambiguous_and_unknown(emulator):
    demo = Api(emulator.url, LIVE)
    assert [b["id"] for b in demo.ok("benchmarks")["data"]] == [FACES]
    assert demo.ok("catalog")["benchmark"]["id"] == FACES  # one visible: benchmark optional
    hidden = demo.get("items", benchmark=PASSPORT)
    assert hidden.status == 404 and hidden.body["code"] == "unknown_benchmark"
    assert [b["id"] for b in hidden.body["available"]] == [FACES]

    both = Api(emulator.url, emulator.admin.create_key("live", benchmarks=[FACES, PASSPORT], balance=5))
    for path in ("catalog", "items"):
        reply = both.get(path)
        assert reply.status == 400 and reply.body["code"] == "ambiguous_benchmark"
        assert {b["id"] for b in reply.body["available"]} == {FACES, PASSPORT}
        assert_matches_schema(reply.body, "Error")
    unknown = both.get("catalog", benchmark="nope-v9")
    assert unknown.status == 404 and unknown.body["code"] == "unknown_benchmark"
    assert_matches_schema(both.ok("benchmarks"), "BenchmarkList")


def test_catalog_publishes_labels_filters_and_tier_totals(emulator):
    cat = Api(emulator.url, LIVE).ok("catalog", benchmark=FACES)
    dims = {d["key"]: d for d in cat["dimensions"]}
    assert dims["perturbation"]["alias"] == "condition" and len(dims["perturbation"]["values"]) == 17
    assert all(v["label"] != v["value"] for v in dims["layer"]["values"])
    assert dims["source_real_id"]["lineage"] is True and "values" not in dims["base_id"]
    assert cat["filters"]["kind"] == ["real", "fake"] and cat["filters"]["condition"] == cat["filters"]["perturbation"]
    assert cat["total"] == 300 and cat["tier"] == "live"
    test_cat = Api(emulator.url, TEST).ok("catalog")
    assert test_cat["tier"] == "test" and 0 < test_cat["total"] < 300


def test_attribute_dimension_of_the_second_benchmark(emulator):
    api = Api(emulator.url, emulator.admin.create_key("live", benchmarks=[FACES, PASSPORT]))
    cat = api.ok("catalog", benchmark=PASSPORT)
    assert_matches_schema(cat, "Catalog")
    doc = next(d for d in cat["dimensions"] if d["key"] == "document_type")
    assert doc["source"] == "attribute"
    every = api.all_items(benchmark=PASSPORT)
    assert len(every) == cat["total"] == 120
    passports = api.all_items(benchmark=PASSPORT, document_type="passport")
    assert passports and all(i["attributes"]["document_type"] == "passport" for i in passports)
    assert len(passports) == sum(i["attributes"]["document_type"] == "passport" for i in every)
    bad = api.get("items", benchmark=PASSPORT, document_type="visa")
    assert bad.status == 400 and bad.body["param"] == "document_type" and "id_card" in bad.body["allowed"]


def test_filters_or_within_and_across_alias_and_echo(emulator):
    api = Api(emulator.url, LIVE)
    every = api.all_items()
    assert len(every) == 300
    page = api.ok("items", kind="real,fake", condition="jpeg_q70,jpeg_q80", layer="layer1")
    want = [i for i in every if i["perturbation"] in ("jpeg_q70", "jpeg_q80")]
    assert page["total"] == len(want) and [i["id"] for i in page["data"]] == [i["id"] for i in want]
    assert page["applied_filters"]["perturbation"] == ["jpeg_q70", "jpeg_q80"]
    assert page["applied_filters"]["kind"] == ["real", "fake"] and page["applied_filters"]["gender"] is None
    fakes = api.all_items(kind="fake", scene="indoor,selfie")
    assert fakes == [i for i in every if i["kind"] == "fake" and i["scene"] in ("indoor", "selfie")]
    reals = api.all_items(kind="real")
    assert all(i["generator"] is None and i["scene"] is None for i in reals)
    assert api.ok("items", kind="real", scene="indoor")["total"] == 0  # empty by construction
    base = every[30]["base_id"]
    variants = api.all_items(base_id=base)
    assert len(variants) == 21 and {i["base_id"] for i in variants} == {base}
    one = api.ok("items", base_id=base, perturbation="jpeg_q70")["data"]
    assert len(one) == 1 and one[0]["perturbation"] == "jpeg_q70"
    lineage = api.all_items(source_real_id=every[0]["source_real_id"])
    assert lineage == [i for i in every if i["source_real_id"] == every[0]["source_real_id"]]
    assert api.ok("items", source_real_id="real_999999")["total"] == 0
    assert api.ok("items", base_id="img_nonsense")["total"] == 0
    assert api.ok("items", unknown_param="whatever")["total"] == 300  # unknown names are ignored


def test_corpus_is_organized_in_lineages(emulator):
    every = Api(emulator.url, LIVE).all_items()
    by_lineage: dict[str, list[dict]] = {}
    for item in every:
        by_lineage.setdefault(item["source_real_id"], []).append(item)
    complete = list(by_lineage.values())[:-1]  # the last lineage may be cut at N items
    for rows in complete:
        bases = {}
        for r in rows:
            bases.setdefault(r["base_id"], []).append(r)
        reals = [b for b in bases.values() if b[0]["kind"] == "real"]
        assert len(reals) == 1 and 2 <= len(bases) <= 4
        assert all(len(b) == 21 for b in bases.values())
        gens = [b[0]["generator"] for b in bases.values() if b[0]["kind"] == "fake"]
        assert len(set(gens)) == len(gens)
        assert len({r["identity_id"] for r in rows}) == 1
        for variants in bases.values():
            assert sum(v["layer"] == "layer2_recropped" for v in variants) == 4
            assert len({v["perturbation"] for v in variants}) == 17
    identities = [rows[0]["identity_id"] for rows in by_lineage.values()]
    assert None in identities
    assert len({i for i in identities if i}) < len([i for i in identities if i])  # identities recur


@pytest.mark.parametrize("params, param", [
    ({"skin_tone": "purple"}, "skin_tone"), ({"condition": "jpeg_q71"}, "condition"),
    ({"kind": "real,"}, "kind"), ({"limit": "0"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"offset": "-1"}, "offset"), ({"lineage": "yes"}, "lineage"), ({"include": "everything"}, "include"),
    ({"perturbation": "clean", "condition": "clean"}, "condition"),
])
def test_invalid_params_name_the_param(emulator, params, param):
    reply = Api(emulator.url, LIVE).get("items", **params)
    assert reply.status == 400 and reply.body["code"] == "invalid_param" and reply.body["param"] == param
    assert_matches_schema(reply.body, "Error")


def test_invalid_value_lists_allowed(emulator):
    body = Api(emulator.url, LIVE).get("items", gender="x").body
    assert body["allowed"] == ["female", "male"]


def test_limit_default_and_clamp(emulator):
    api = Api(emulator.url, LIVE)
    page = api.ok("items")
    assert page["limit"] == 100 and len(page["data"]) == 100 and page["limit_clamped"] is False
    clamped = api.ok("items", limit=501)
    assert clamped["limit"] == 500 and clamped["limit_clamped"] is True and len(clamped["data"]) == 300


def test_include_metadata_is_flat(emulator):
    api = Api(emulator.url, LIVE)
    page = api.ok("items", include="metadata", limit=3)
    assert_matches_schema(page, "ItemList")
    for item in page["data"]:
        meta = item["metadata"]
        assert {"skin_tone", "ita", "gender", "gender_confidence", "age", "occlusion", "difficulty",
                "width", "height"} <= set(meta)
        assert all(not isinstance(v, (dict, list)) for v in meta.values())
    assert "metadata" not in api.ok("items", limit=1)["data"][0]


def test_unknown_api_path_is_a_json_404(emulator):
    reply = Api(emulator.url, LIVE).get("nothing-here")
    assert reply.status == 404 and reply.body["code"] == "not_found"


def test_admin_is_off_by_default(emulator_factory):
    emu = emulator_factory(admin=False)
    assert request(f"{emu.url}/_admin/counters").status == 404
