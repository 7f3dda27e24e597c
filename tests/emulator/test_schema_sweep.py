"""A sweep over many requests: each reply must match the schema the spec declares for its
operation and status (undeclared error statuses, e.g. 500 or the download route's 400 for a
reused Idempotency-Key, must still be a valid Error body)."""

from __future__ import annotations

from contract import assert_matches_schema
from emulator_http import FACES, PASSPORT, Api


def _schema_for(spec: dict, template: str, status: int) -> str:
    responses = spec["paths"][f"/api/v1/data/{template}"]["get"]["responses"]
    declared = responses.get(str(status))
    if declared is None:
        assert status >= 400, f"undeclared success status {status} on {template}"
        return "Error"
    if "$ref" in declared:
        declared = spec["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    return declared["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]


def test_every_reply_matches_its_declared_schema(emulator, openapi_spec):
    admin = emulator.admin
    live = Api(emulator.url, admin.create_key("live", balance=3, account="acct_s", rate_limit=1000))
    both = Api(emulator.url, admin.create_key("live", balance=3, benchmarks=[FACES, PASSPORT]))
    test = Api(emulator.url, "mgn_test_demo")
    nobody = Api(emulator.url, "mgn_live_unknown")
    limited = Api(emulator.url, admin.create_key("live", rate_limit=1))
    items = live.all_items()
    sample = {i["id"] for i in test.all_items()}
    outside = next(i["id"] for i in items if i["id"] not in sample)
    cursor = live.ok("items", cursor="", limit=50)["next_cursor"]

    calls = [
        (live, "benchmarks", {}), (both, "benchmarks", {}), (test, "benchmarks", {}), (nobody, "benchmarks", {}),
        (live, "catalog", {}), (both, "catalog", {"benchmark": PASSPORT}), (both, "catalog", {}),
        (live, "catalog", {"benchmark": "x"}), (test, "catalog", {}),
        (live, "items", {}), (live, "items", {"cursor": ""}), (live, "items", {"cursor": cursor}),
        (live, "items", {"cursor": "nope"}), (live, "items", {"lineage": "true", "limit": 1}),
        (live, "items", {"exclude_owned": "true"}), (live, "items", {"include": "metadata", "limit": 3}),
        (live, "items", {"limit": 9999}), (live, "items", {"skin_tone": "blue"}),
        (both, "items", {"benchmark": PASSPORT, "document_type": "passport"}), (both, "items", {}),
        (live, "items", {"benchmark": PASSPORT}), (test, "items", {"kind": "real,fake"}),
        (live, "usage", {}), (test, "usage", {}), (nobody, "usage", {}),
        (live, f"download/{items[0]['id']}", {}), (live, f"download/{items[0]['id']}", {"include": "metadata"}),
        (test, f"download/{next(iter(sample))}", {}), (test, f"download/{outside}", {}),
        (live, "download/not-an-id", {}),
        (limited, "usage", {}), (limited, "usage", {}),
    ]
    for i in items[1:4]:
        calls.append((live, f"download/{i['id']}", {}))  # the third one is a 402
    seen = set()
    for api, path, params in calls:
        reply = api.get(path, **params)
        template = "download/{itemId}" if path.startswith("download/") else path
        schema = _schema_for(openapi_spec, template, reply.status)
        assert_matches_schema(reply.body, schema)
        seen.add(reply.status)
    reused = live.download(items[1]["id"], idem="k")
    conflict = live.download(items[0]["id"], idem="k")
    assert reused.status == 200 and conflict.status == 400
    assert_matches_schema(conflict.body, _schema_for(openapi_spec, "download/{itemId}", 400))
    emulator.admin.set_faults(api_500=1.0)
    broken = live.get("usage")
    assert broken.status == 500
    assert_matches_schema(broken.body, _schema_for(openapi_spec, "usage", 500))
    assert seen == {200, 400, 401, 402, 403, 404, 429}
