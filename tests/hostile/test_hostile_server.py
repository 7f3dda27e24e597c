"""Hostile server data: the real engine against a server that lies, every case a clear outcome.

Each test checks three things beyond its own case: nothing was written outside DEST, the key
never reached the storage route or the other host, and the key is in no message the run produced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hostile_server import BENCH, KEY, HostileServer, big_jpeg, item, jpeg

import mirror
from mirror.config import ApiKey, Limits, Retries, Timeouts
from mirror.engine.sync import run_sync
from mirror.errors import MirrorError, RedirectRefused, TransportError
from mirror.jobs import Selection, SyncJob

RETRIES = Retries(attempts=2, backoff=0.01, max_backoff=0.05, rate_limit_patience=5)
TIMEOUTS = Timeouts(api=5, storage=5, connect=2)
HOSTILE_IDS = ["../../escape", "/etc/passwd", "a/b", "..%2F..%2Fx", "a%2Fb", "nul\x00id", "x" * 300,
               "ünïcødé-😀", "..", ".", "-rf", " lead space", "CON", "~root", "a\\b"]


async def sync(server: HostileServer, dest: Path, *, cap: int = 50 * 2**20):
    job = SyncJob(selection=Selection(benchmark=BENCH), dest=dest,
                  limits=Limits(rate_limit=100_000, concurrency=4, max_image_bytes=cap))
    return await run_sync(job, api_key=ApiKey(KEY), base_url=server.url, timeouts=TIMEOUTS, retries=RETRIES)


def outside(tmp_path: Path, dest: Path) -> list[Path]:
    """Every file under tmp_path that is not inside DEST (the test's only writable place)."""
    found = []
    for d, _, files in os.walk(tmp_path):
        for f in files:
            p = Path(d) / f
            if not p.resolve().is_relative_to(dest.resolve()):
                found.append(p)
    return found


def assert_safe(server: HostileServer, tmp_path: Path, dest: Path, *texts: str) -> None:
    assert outside(tmp_path, dest) == []
    assert not any(s.authorized for s in server.storage_seen), "the key was sent to storage"
    assert not any(s.authorized for s in server.elsewhere_seen), "the key followed a redirect"
    assert all(KEY not in t for t in texts)
    for d, _, files in os.walk(dest):
        for f in files:
            assert KEY.encode() not in (Path(d) / f).read_bytes()


def manifest_ids(dest: Path) -> list[str]:
    return [r["id"] for r in mirror.open_manifest(dest).to_table(columns=["id"]).to_pylist()]


async def test_hostile_ids_stay_inside_dest_and_are_mirrored_once(hostile, tmp_path):
    hostile.behaviour.pages = [[item(i, source="../../up") for i in HOSTILE_IDS[:8]],
                               [item(i, source=None) for i in HOSTILE_IDS[8:]]]
    dest = tmp_path / "box" / "dest"
    report = await sync(hostile, dest)
    assert report.status == "complete", report.failures
    ids = manifest_ids(dest)
    assert sorted(ids) == sorted(HOSTILE_IDS)
    rows = mirror.open_manifest(dest).to_table().to_pylist()
    assert len({r["path"] for r in rows}) == len(HOSTILE_IDS), "two ids collided on one file"
    for r in rows:
        assert (dest / r["path"]).resolve().is_relative_to((dest / "images").resolve())
    assert_safe(hostile, tmp_path, dest, report.summary_line())


async def test_duplicate_ids_across_pages_are_fetched_and_listed_once(hostile, tmp_path):
    hostile.behaviour.pages = [[item("a"), item("b"), item("c")], [item("c"), item("d"), item("a")], [item("b")]]
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    assert report.status == "complete"
    assert sorted(manifest_ids(dest)) == ["a", "b", "c", "d"]
    assert hostile.downloads == {"a": 1, "b": 1, "c": 1, "d": 1}, "a duplicate was reserved twice"
    assert_safe(hostile, tmp_path, dest)


async def test_items_without_a_string_id_are_skipped_with_a_reason(hostile, tmp_path):
    broken = [{**item("x"), "id": 42}, {**item("y"), "id": None}, {k: v for k, v in item("z").items() if k != "id"}]
    hostile.behaviour.pages = [[item("a"), *broken, item("b")]]
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    assert report.status == "partial" and report.exit_code == 5
    assert sorted(manifest_ids(dest)) == ["a", "b"]
    assert [f.reason for f in report.failures] == [
        "skipped 3 item(s) the server sent without an id that is a string of valid Unicode"]
    assert_safe(hostile, tmp_path, dest)


async def test_text_that_is_not_valid_unicode_neither_crashes_the_run_nor_loses_a_paid_image(hostile, tmp_path):
    """JSON may carry lone surrogates ("\\ud800"), which UTF-8 cannot hold: an id like that is skipped
    before anything is spent; in a label or the benchmark name it becomes U+FFFD in the row."""
    labels = {**item("labels"), "generator": "gen\ud800", "benchmark": f"{BENCH}\udcff", "note": "\udfff"}
    hostile.behaviour.pages = [[item("a"), {**item("x"), "id": "bad\udcffid"}, labels, item("b")]]
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    rows = {r["id"]: r for r in mirror.open_manifest(dest).to_table().to_pylist()}
    assert sorted(rows) == ["a", "b", "labels"]
    assert rows["labels"]["generator"] == "gen\ufffd" and rows["labels"]["benchmark"] == f"{BENCH}\ufffd"
    assert json.loads(rows["labels"]["extra"]) == {"note": "\ufffd"}
    assert (dest / rows["labels"]["path"]).read_bytes() == jpeg(len("labels"))      # what storage served
    assert [f.reason for f in report.failures] == [
        "skipped 1 item(s) the server sent without an id that is a string of valid Unicode"]
    assert [seen.path for seen in hostile.api_seen if "/download/" in seen.path and "bad" in seen.path] == []
    assert_safe(hostile, tmp_path, dest)


@pytest.mark.parametrize("lie", ["same-cursor", "no-cursor", "empty-page"])
async def test_has_more_that_lies_stops_the_walk_with_a_clear_partial(hostile, tmp_path, lie):
    hostile.behaviour.pages = [[item("a"), item("b")], [item("c")]]
    hostile.behaviour.lie_has_more = lie
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    assert report.status == "partial" and report.exit_code == 5
    assert sorted(manifest_ids(dest)) == ["a", "b", "c"], "what was listed is still mirrored"
    reasons = [f.reason for f in report.failures]
    assert any("has_more" in r or "empty page" in r for r in reasons), reasons
    assert len([s for s in hostile.api_seen if s.path.endswith("/items")]) < 20, "the walk looped"
    assert_safe(hostile, tmp_path, dest, *reasons)


async def test_body_that_is_not_a_jpeg_is_a_failed_row_with_a_reason(hostile, tmp_path):
    hostile.behaviour.pages = [[item("good"), item("html"), item("half")]]
    hostile.behaviour.bodies = {"html": b"<html>not an image</html>", "half": jpeg(3)[:-40]}
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    assert report.status == "partial" and report.exit_code == 5
    assert manifest_ids(dest) == ["good"]
    failed = {f.item_id: f.reason for f in report.failures}
    assert set(failed) == {"html", "half"} and all("JPEG" in r for r in failed.values()), failed
    assert len(list((dest / "images").rglob("*.jpg"))) == 1
    assert_safe(hostile, tmp_path, dest, *failed.values())


async def test_body_larger_than_the_cap_is_refused_with_or_without_content_length(hostile, tmp_path):
    big = big_jpeg(40_000)
    hostile.behaviour.pages = [[item("small"), item("big-declared"), item("big-chunked")]]
    hostile.behaviour.bodies = {"big-declared": big, "big-chunked": big}
    hostile.behaviour.chunked = {"big-chunked"}
    dest = tmp_path / "dest"
    report = await sync(hostile, dest, cap=20_000)
    assert manifest_ids(dest) == ["small"]
    failed = {f.item_id: f.reason for f in report.failures}
    assert set(failed) == {"big-declared", "big-chunked"} and all("cap" in r for r in failed.values()), failed
    assert not list((dest / ".state" / "tmp").iterdir()), "a partial body stayed behind"
    assert_safe(hostile, tmp_path, dest)


@pytest.mark.parametrize("route", ["catalog", "items", "download"])
async def test_malformed_json_is_a_clear_error_and_spends_nothing_more(hostile, tmp_path, route):
    hostile.behaviour.pages = [[item("a"), item("b")]]
    hostile.behaviour.malformed = route
    dest = tmp_path / "dest"
    try:
        report = await sync(hostile, dest)
    except MirrorError as exc:
        assert isinstance(exc, TransportError) and "malformed" in str(exc).lower(), exc
        assert "\n" not in str(exc)
        text = str(exc)
    else:        # a malformed /download answer fails its items, a malformed page the walk: not the run
        assert route in ("download", "items") and report.status == "partial"
        assert all("malformed" in f.reason for f in report.failures)
        text = report.summary_line()
    assert_safe(hostile, tmp_path, dest, text)


async def test_api_redirect_to_another_host_is_refused_and_the_key_stays_home(hostile, tmp_path):
    hostile.behaviour.pages = [[item("a")]]
    hostile.behaviour.redirect_api = True
    dest = tmp_path / "dest"
    with pytest.raises(RedirectRefused) as info:
        await sync(hostile, dest)
    assert "redirect" in str(info.value) and info.value.exit_code == 2
    assert hostile.elsewhere_seen == [], "the client followed the redirect"
    assert_safe(hostile, tmp_path, dest, str(info.value))


async def test_storage_that_compresses_when_asked_is_not_asked(hostile, tmp_path):
    """Bodies are stored byte for byte as sent, so the fetcher asks for no Content-Encoding: a CDN
    that gzips whatever a client accepts must hand over the JPEG itself."""
    hostile.behaviour.pages = [[item("a"), item("b")]]
    hostile.behaviour.gzip_if_asked = True
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    assert report.status == "complete" and report.failed == 0 and sorted(manifest_ids(dest)) == ["a", "b"]
    for row in mirror.open_manifest(dest).to_table().to_pylist():
        assert (dest / row["path"]).read_bytes() == jpeg(len(row["id"]))
    assert_safe(hostile, tmp_path, dest)


async def test_storage_redirect_is_not_followed(hostile, tmp_path):
    hostile.behaviour.pages = [[item("a"), item("moved")]]
    hostile.behaviour.redirect_storage = {"moved"}
    dest = tmp_path / "dest"
    report = await sync(hostile, dest)
    assert report.status == "partial" and manifest_ids(dest) == ["a"]
    assert [f.item_id for f in report.failures] == ["moved"] and "redirect" in report.failures[0].reason
    assert hostile.elsewhere_seen == []
    assert_safe(hostile, tmp_path, dest)
