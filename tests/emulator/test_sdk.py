"""The official SDK (margen 0.1.12) as an independent client: no validation errors, every mode."""

from __future__ import annotations

from pathlib import Path

from emulator_http import FACES
from margen import Margen
from margen.ergonomics import download_selection, iter_distinct_identities, iter_items, iter_lineages
from PIL import Image


def _client(emulator, balance: int = 1000, tier: str = "live") -> Margen:
    key = emulator.admin.create_key(tier, balance=balance, account="acct_sdk", rate_limit=1000)
    return Margen(bearer_auth=key, server_url=emulator.url)


def test_sdk_typed_operations(emulator):
    client = _client(emulator)
    assert [b.id for b in client.list_benchmarks().data] == [FACES]
    catalog = client.get_catalog(benchmark=FACES)
    assert catalog.total == 300 and {d.key for d in catalog.dimensions} >= {"skin_tone", "perturbation"}
    page = client.list_items(benchmark=FACES, kind="fake", perturbation="jpeg_q70,jpeg_q80", limit=7).result
    assert len(page.data) == 7 and page.total and page.mode == "offset"
    assert all(i.perturbation in ("jpeg_q70", "jpeg_q80") for i in page.data)
    meta = client.list_items(benchmark=FACES, include="metadata", limit=2).result.data[0].metadata
    assert meta["skin_tone"] and "ita" in meta
    dl = client.download_item(item_id=page.data[0].id, idempotency_key="sdk-1")
    assert dl.charged is True and dl.balance == 999 and dl.url.startswith(emulator.url)
    again = client.download_item(item_id=page.data[0].id, idempotency_key="sdk-1")
    assert again.url == dl.url  # replayed byte for byte
    usage = client.get_usage()
    assert usage.tier == "live" and usage.balance == 999


def test_sdk_cursor_auto_pager_stops_on_null_next_cursor(emulator):
    client = _client(emulator)
    ids, pages = [], 0
    resp = client.list_items(benchmark=FACES, cursor="", limit=64)
    while resp is not None:
        pages += 1
        ids += [i.id for i in resp.result.data]
        assert resp.result.mode == "cursor" and resp.result.total is None
        resp = resp.next()
    expected = [i.id for i in iter_items(client, benchmark=FACES)]
    assert ids == expected and len(ids) == 300 and pages == 5


def test_sdk_lineage_and_distinct_identity_iterators(emulator):
    client = _client(emulator)
    every = list(iter_items(client, benchmark=FACES, page_size=100))
    lineage_rows = list(iter_lineages(client, benchmark=FACES, page_size=2))
    assert [i.id for i in lineage_rows] == [i.id for i in every]
    page = client.list_items(benchmark=FACES, lineage="true", limit=1).result
    assert page.total is None and page.lineages == 1 and page.total_lineages > 1
    reps = list(iter_distinct_identities(client, benchmark=FACES, page_size=1))
    assert len({r.identity_id for r in reps}) == len(reps) == len({i.identity_id for i in every if i.identity_id})
    distinct = client.list_items(benchmark=FACES, distinct_identities="true").result
    assert distinct.mode == "distinct_identities"


def test_sdk_download_selection_saves_jpegs_and_exclude_owned_resumes(emulator, tmp_path: Path):
    client = _client(emulator, balance=1000)
    picks = list(iter_items(client, benchmark=FACES, kind="real", perturbation="clean,fb_pipeline"))
    saved = download_selection(client, picks[:4], str(tmp_path / "a"), progress=False)
    assert len(saved) == 4
    for path in saved:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.size[0] > 0
    rest = list(iter_items(client, benchmark=FACES, kind="real", perturbation="clean,fb_pipeline",
                           exclude_owned=True))
    assert [i.id for i in rest] == [i.id for i in picks[4:]]
    download_selection(client, picks, str(tmp_path / "b"), progress=False)  # a second run: only new ones cost
    ledger = emulator.admin.ledger("acct_sdk")
    assert ledger["charge_count"] == len(picks) and ledger["balance"] == 1000 - len(picks)


def test_sdk_test_tier_and_402(emulator, tmp_path: Path):
    test = _client(emulator, tier="test")
    sample = list(iter_items(test, benchmark=FACES, perturbation="clean"))
    saved = download_selection(test, sample[:2], str(tmp_path / "t"), progress=False)
    assert len(saved) == 2
    assert test.get_usage().tier == "test"
    poor = Margen(bearer_auth=emulator.admin.create_key("live", balance=1, account="acct_poor"),
                  server_url=emulator.url)
    saved = download_selection(poor, sample[:3], str(tmp_path / "p"), progress=False)
    assert len(saved) == 1  # stops on 402
