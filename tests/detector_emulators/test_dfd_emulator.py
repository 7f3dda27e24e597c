"""Deepfake Detection (Resemble Detect) emulator: intake, async/sync flows, listing, batches, callbacks."""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mirror.emulator.detectors import DetectorEmulatorConfig, start_detector_thread


def _file(data: bytes, name: str = "a.jpg", ctype: str = "image/jpeg", field: str = "file",
          **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename=name, content_type=ctype)
    for key, value in fields.items():
        form.add_field(key, value)
    return form


class Client:
    def __init__(self, session: aiohttp.ClientSession, emu: Any, prefix: str = "") -> None:
        self.s, self.base, self.h = session, emu.url + prefix, {"Authorization": f"Bearer {emu.token}"}

    async def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
        async with self.s.request(method, self.base + path, headers={**self.h, **(headers or {})}, **kw) as r:
            return r.status, await r.json()

    async def completed(self, uuid: str) -> dict[str, Any]:
        for _ in range(100):
            status, body = await self.call("GET", f"/detect/{uuid}")
            assert status == 200 and body["success"] is True
            if body["item"]["status"] != "processing":
                return body["item"]
            await asyncio.sleep(0.03)
        raise AssertionError("detection never finished")


@pytest.fixture
async def client(dfd_emulator):
    async with aiohttp.ClientSession() as session:
        yield Client(session, dfd_emulator)


@pytest.fixture
async def listener():
    """A loopback HTTP server: serves /media/{name} from ``files`` and records POSTs to /hook."""
    files: dict[str, bytes] = {}
    hooks: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.Response(body=files[name]) if name in files else web.Response(status=404)

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        arrived.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/media/{name}", serve)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield {"url": f"http://127.0.0.1:{port}", "files": files, "hooks": hooks, "arrived": arrived}
    await runner.cleanup()


async def test_file_upload_async_flow(client, dfd_emulator, media):
    status, body = await client.call("POST", "/detect", data=_file(media["face"](1, "fake")))
    assert status == 200 and body["success"] is True and body["item"]["status"] == "processing"
    item = await client.completed(body["item"]["uuid"])
    assert item["status"] == "completed" and item["media_type"] == "image" and item["filename"] == "a.jpg"
    metrics = item["image_metrics"]
    assert metrics["label"] == "fake" and metrics["score"] > 0.8 and metrics["children"][0]["type"] == "face"
    assert metrics["ifl"]["heatmap"] == metrics["image"]
    async with client.s.get(metrics["image"]) as r:
        assert r.status == 200 and r.content_type == "image/png"
    counters = dfd_emulator.admin.counters()
    assert counters["submissions"] == 1 and counters["polls"] >= 1 and counters["results_served"] == 1


async def test_prefer_wait_and_api_v2_prefix(dfd_emulator, media):
    async with aiohttp.ClientSession() as session:
        client = Client(session, dfd_emulator, "/api/v2")
        status, body = await client.call("POST", "/detect", headers={"Prefer": "wait"},
                                         data=_file(media["face"](2, "real"), visualize="false"))
    assert status == 200 and body["item"]["status"] == "completed"
    assert body["item"]["image_metrics"]["label"] == "real" and "ifl" not in body["item"]["image_metrics"]


async def test_undecodable_image_fails(client):
    status, body = await client.call("POST", "/detect", headers={"Prefer": "wait"},
                                     data=_file(b"\xff\xd8\xff\xe0 not really a jpeg"))
    assert status == 422 and body["success"] is False and body["item"]["status"] == "failed"
    _, body = await client.call("POST", "/detect", data=_file(b"\xff\xd8\xff\xe0 not really a jpeg"))
    item = await client.completed(body["item"]["uuid"])
    assert item["status"] == "failed" and item["error_message"]


async def test_url_submission_from_loopback(client, listener, media):
    listener["files"]["a.jpg"] = media["face"](3, "fake")
    status, body = await client.call("POST", "/detect", headers={"Prefer": "wait"},
                                     json={"url": listener["url"] + "/media/a.jpg", "frame_length": 3})
    assert status == 200 and body["item"]["url"].endswith("/media/a.jpg")
    assert body["item"]["image_metrics"]["label"] == "fake"
    status, body = await client.call("POST", "/detect", json={"url": listener["url"] + "/media/missing.jpg"})
    assert status == 400 and "url" in body["errors"]


@pytest.mark.parametrize("url", ["https://example.com/a.jpg", "http://10.0.0.1/a.jpg", "ftp://127.0.0.1/a.jpg",
                                 "http://127.0.0.1.example.com/a.jpg"])
async def test_non_loopback_url_is_refused(client, url):
    status, body = await client.call("POST", "/detect", json={"url": url})
    assert status == 400 and body["success"] is False and body["error"] == "Bad Request"
    assert set(body) == {"success", "error", "errors", "message"} and list(body["errors"]) == ["url"]


async def test_media_token_flow(client, dfd_emulator, media):
    status, body = await client.call("POST", "/secure_uploads", data=_file(media["face"](4, "fake")))
    assert status == 200 and body["success"] is True and body["token"].count(".") == 2
    status, made = await client.call("POST", "/detect", headers={"Prefer": "wait"}, json={"media_token": body["token"]})
    assert status == 200 and made["item"]["status"] == "completed"
    status, bad = await client.call("POST", "/detect", json={"media_token": body["token"][:-2] + "xx"})
    assert status == 400 and "media_token" in bad["errors"]


@pytest.mark.parametrize("payload", [{}, {"url": "http://127.0.0.1/a.jpg", "media_token": "a.b.c"}])
async def test_exactly_one_source(client, payload):
    status, body = await client.call("POST", "/detect", json=payload)
    assert status == 400 and set(body["errors"]) == {"url", "file", "media_token"}


@pytest.mark.parametrize(("field", "value"), [
    ("frame_length", 0), ("frame_length", 5), ("frame_length", 2.5), ("visualize", "maybe"),
    ("zero_retention_mode", 1.5), ("use_ood_detector", "yes please"), ("callback_url", "https://example.com/hook"),
    ("model_types", "cartoon"), ("max_video_fps", 0), ("start_region", -1)])
async def test_option_validation(client, field, value):
    status, body = await client.call("POST", "/detect", json={"url": "http://127.0.0.1:9/a.jpg", field: value})
    assert status == 400 and field in body["errors"]


async def test_region_order_and_upload_rules(client, media):
    body = {"url": "http://127.0.0.1:9/a.jpg", "start_region": 5, "end_region": 2}
    assert (await client.call("POST", "/detect", json=body))[1]["errors"].keys() == {"end_region"}
    for form in (_file(media["face"](5, "real"), "a.bmp"), _file(b""), _file(b"x", ctype="text/plain")):
        status, body = await client.call("POST", "/detect", data=form)
        assert status == 400 and "file" in body["errors"]
    big = b"\xff\xd8\xff" + bytes(150 * 1024 * 1024)
    status, body = await client.call("POST", "/detect", data=_file(big))
    assert status == 400 and "secure_uploads" in body["message"]


async def test_auth(client, dfd_emulator):
    async with client.s.get(client.base + "/detect?page=1") as r:
        assert r.status == 401 and (await r.json())["success"] is False
    async with client.s.get(client.base + "/detect?page=1", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 403
    assert dfd_emulator.admin.counters()["auth_failures"] == 2


async def test_get_delete_and_404(client, media):
    assert (await client.call("GET", "/detect/no-such-uuid"))[0] == 404
    _, body = await client.call("POST", "/detect", data=_file(media["face"](6, "real")))
    uuid = body["item"]["uuid"]
    status, gone = await client.call("DELETE", f"/detect/{uuid}")
    assert status == 200 and gone["success"] is True
    status, body = await client.call("GET", f"/detect/{uuid}")
    assert status == 404 and body["errors"] == {"uuid": ["not found"]}
    assert (await client.call("DELETE", f"/detect/{uuid}"))[0] == 404


async def test_listing_pages_cover_every_detection_once(client, media):
    image = media["face"](7, "real")
    made = set()
    for i in range(23):
        _, body = await client.call("POST", "/detect", data=_file(image[:-2] + bytes([i, 0xD9])))
        made.add(body["item"]["uuid"])
    seen: list[str] = []
    page, num_pages = 1, None
    while num_pages is None or page <= num_pages:
        status, body = await client.call("GET", "/detect", params={"page": page})
        assert status == 200 and body["page_size"] == 10 and body["total_count"] == 23
        num_pages = body["num_pages"]
        seen += [item["uuid"] for item in body["items"]]
        page += 1
    assert num_pages == 3 and len(seen) == 23 and set(seen) == made
    assert (await client.call("GET", "/detect", params={"page": 4}))[1]["items"] == []
    for params in ({}, {"page": 0}, {"page": 1, "page_size": 9}, {"page": 1, "page_size": 1001}, {"page": "x"}):
        assert (await client.call("GET", "/detect", params=params))[0] == 400


async def test_payment_required(client, dfd_emulator, media):
    dfd_emulator.admin.set_credits(1)
    assert (await client.call("POST", "/detect", data=_file(media["face"](8, "real"))))[0] == 200
    status, body = await client.call("POST", "/detect", data=_file(media["face"](8, "real")))
    assert status == 402 and body["error_code"] == "insufficient_credits"
    assert body["details"]["available_credits"] == 0 and body["details"]["required_credits"] == 1
    assert dfd_emulator.admin.counters()["submissions"] == 1


async def test_callback_is_delivered_to_a_local_listener(client, dfd_emulator, listener, media):
    form = _file(media["face"](9, "fake"), callback_url=listener["url"] + "/hook")
    _, body = await client.call("POST", "/detect", data=form)
    await asyncio.wait_for(listener["arrived"].wait(), 10)
    (payload,) = listener["hooks"]
    assert payload["success"] is True and payload["item"]["uuid"] == body["item"]["uuid"]
    assert payload["item"]["status"] == "completed" and payload["item"]["image_metrics"]["label"] == "fake"
    assert dfd_emulator.admin.counters()["callbacks_sent"] == 1


async def test_batch_files_and_zip(client, dfd_emulator, media):
    form = aiohttp.FormData()
    for i in range(3):
        form.add_field("files[]", media["face"](10 + i, "real"), filename=f"{i}.jpg", content_type="image/jpeg")
    status, body = await client.call("POST", "/detect/batch", data=form)
    assert status == 202 and body["item"]["total_files"] == 3 and len(body["item"]["detect_uuids"]) == 3
    for uuid in body["item"]["detect_uuids"]:
        assert (await client.completed(uuid))["status"] == "completed"
    status, batch = await client.call("GET", f"/detect/batch/{body['item']['uuid']}")
    assert batch["item"]["status"] == "completed" and batch["item"]["completed_count"] == 3
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.jpg", media["face"](13, "fake"))
        zf.writestr("notes.txt", "skipped")
    zipped = _file(archive.getvalue(), "b.zip", "application/zip")
    status, body = await client.call("POST", "/detect/batch", data=zipped)
    assert status == 202 and body["item"]["total_files"] == 1
    assert dfd_emulator.admin.counters()["submissions"] == 4


async def test_batch_errors(client, dfd_emulator, media):
    form = aiohttp.FormData()
    form.add_field("files[]", media["face"](14, "real"), filename="a.jpg", content_type="image/jpeg")
    assert (await client.call("POST", "/detect/batch", data=form, headers={"Prefer": "wait"}))[0] == 400
    assert (await client.call("POST", "/detect/batch", data=_file(b"not a zip", "b.zip", "application/zip")))[0] == 400
    many = aiohttp.FormData()
    for i in range(51):
        many.add_field("files[]", b"\xff\xd8\xff" + bytes([i]), filename=f"{i}.jpg", content_type="image/jpeg")
    assert (await client.call("POST", "/detect/batch", data=many))[0] == 400
    assert (await client.call("GET", "/detect/batch/unknown"))[0] == 404
    dfd_emulator.admin.set_credits(0)
    form = aiohttp.FormData()
    form.add_field("files[]", media["face"](14, "real"), filename="a.jpg", content_type="image/jpeg")
    assert (await client.call("POST", "/detect/batch", data=form))[0] == 402


async def test_video_and_audio_shapes(client, media):
    form = _file(media["mp4"](seconds=6.0), "v.mp4", "video/mp4", frame_length="2")
    status, body = await client.call("POST", "/detect", headers={"Prefer": "wait"}, data=form)
    video = body["item"]["video_metrics"]
    assert status == 200 and body["item"]["media_type"] == "video" and video["label"] in ("fake", "real")
    (result,) = video["children"]
    assert [s["timestamp"] for s in result["children"]] == [0.0, 2.0, 4.0]
    assert all(s["children"][0]["certainty (%)"].endswith("%") for s in result["children"])
    status, body = await client.call("POST", "/detect", headers={"Prefer": "wait"},
                                     data=_file(media["wav"](4.0), "a.wav", "audio/wav"))
    metrics = body["item"]["metrics"]
    assert body["item"]["media_type"] == "audio" and len(metrics["score"]) == 2
    assert all(isinstance(s, str) for s in metrics["score"]) and float(metrics["aggregated_score"]) >= 0


async def test_zero_retention_redacts(client, media):
    form = _file(media["face"](15, "fake"), zero_retention_mode="true")
    _, body = await client.call("POST", "/detect", headers={"Prefer": "wait"}, data=form)
    item = body["item"]
    assert item["media_redacted"] and item["media_deleted"] and item["file_deleted_at"]
    assert item["filename"] == "[redacted]" and item["image_metrics"]["image"] == ""


async def test_unknown_fields_are_echoed_as_extra_params(client, media):
    _, body = await client.call("POST", "/detect", data=_file(media["face"](16, "real"), pipeline="general"))
    assert body["item"]["extra_params"] == {"pipeline": "general"}


def test_fail_rate_hits_api_not_admin():
    with start_detector_thread(DetectorEmulatorConfig(service="deepfake-detection", fail_rate=1.0)) as emu:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(emu.url + "/detect?page=1", headers={"Authorization": f"Bearer {emu.token}"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 500
        assert emu.admin.counters()["injected_failures"] == 1
