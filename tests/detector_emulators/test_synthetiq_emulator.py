"""SYNTHETIQ VISION emulator: every documented endpoint, its limits and its (guessed) error shapes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from mirror.emulator.detectors import DetectorEmulatorConfig, start_detector_thread


def _form(field: str, data: bytes, name: str = "x.png", ctype: str = "image/png") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename=name, content_type=ctype)
    return form


class Client:
    def __init__(self, session: aiohttp.ClientSession, emu: Any) -> None:
        self.s, self.url, self.h = session, emu.url, {"Api-Token": emu.token, "accept": "application/json"}

    async def post(self, path: str, form: aiohttp.FormData, **params: str) -> tuple[int, Any]:
        async with self.s.post(self.url + path, data=form, headers=self.h, params=params) as r:
            return r.status, await r.json()

    async def get(self, path: str, token: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        params = {k: str(v) for k, v in token.items()}
        async with self.s.get(self.url + path, params=params, headers=headers or self.h) as r:
            return r.status, await (r.json() if r.content_type == "application/json" else r.read())

    async def finish(self, kind: str, token: dict[str, Any]) -> list[str]:
        seen = []
        for _ in range(100):
            status, body = await self.get(f"/api/v1/{kind}/progress", token)
            assert status == 200
            seen.append(body["progress"])
            if body["progress"] in ("finished", "failed"):
                return seen
            await asyncio.sleep(0.03)
        raise AssertionError(f"never finished: {seen}")


@pytest.fixture
async def client(synthetiq_emulator):
    async with aiohttp.ClientSession() as session:
        yield Client(session, synthetiq_emulator)


async def test_image_flow_and_counters(client, synthetiq_emulator, media):
    fake = media["padded"](media["face"](1, "fake"))
    status, token = await client.post("/api/v1/images", _form("image_file", fake))
    assert status == 200 and set(token) == {"hash_", "pub_fake_detection_process_event_id"}
    assert (await client.get("/api/v1/images/values", token))[0] == 409  # not finished yet
    seen = await client.finish("images", token)
    assert seen[0] == "waiting" and "processing" in seen and seen[-1] == "finished"
    status, values = await client.get("/api/v1/images/values", token)
    assert status == 200 and values["media_type"] == "image" and (values["width"], values["height"]) == (360, 270)
    (face,) = values["fake_detection_values"]
    assert face["result"] == "fake" and face["score"] > 0.9
    assert set(face["face_region"]) == {"x", "y", "width", "height"}
    counters = synthetiq_emulator.admin.counters()
    assert counters["submissions"] == 1 and counters["results_served"] == 1 and counters["polls"] == len(seen)
    assert list(counters["submissions_by_sha256"].values()) == [1]
    synthetiq_emulator.admin.reset_counters()
    assert synthetiq_emulator.admin.counters()["submissions"] == 0


async def test_real_image_is_real_and_jpeg_is_accepted(client, media):
    status, token = await client.post("/api/v1/images", _form("image_file", media["padded"](
        media["face"](2, "real"), fmt="JPEG"), "a.jpg", "image/jpeg"))
    assert status == 200
    await client.finish("images", token)
    values = (await client.get("/api/v1/images/values", token))[1]
    assert values["fake_detection_values"][0]["result"] == "real"


async def test_flat_image_has_no_face(client, media):
    _, token = await client.post("/api/v1/images", _form("image_file", media["blank"]((400, 300))))
    await client.finish("images", token)
    values = (await client.get("/api/v1/images/values", token))[1]
    assert values["fake_detection_values"] == [] and values["message"]


@pytest.mark.parametrize(("size", "status"), [((256, 256), 400), ((359, 300), 400), ((400, 269), 400),
                                              ((4097, 300), 400), ((400, 2161), 400), ((4096, 2160), 200)])
async def test_image_dimension_limits(client, media, size, status):
    assert (await client.post("/api/v1/images", _form("image_file", media["blank"](size))))[0] == status


async def test_image_format_size_and_field_errors(client, media):
    gif = media["blank"]((400, 300), "GIF")
    status, body = await client.post("/api/v1/images", _form("image_file", gif, "a.gif", "image/gif"))
    assert status == 415 and "JPEG" in body["detail"]
    assert (await client.post("/api/v1/images", _form("image_file", b"\xff\xd8\xff\xe0garbage")))[0] == 400
    assert (await client.post("/api/v1/images", _form("image_file", b"")))[0] == 400
    status, body = await client.post("/api/v1/images", _form("wrong_field", gif))
    assert status == 422 and body["detail"][0]["loc"] == ["body", "image_file"]
    big = b"\xff\xd8\xff" + bytes(50 * 1024 * 1024)
    status, body = await client.post("/api/v1/images", _form("image_file", big, "big.jpg", "image/jpeg"))
    assert status == 413 and "50 MB" in body["detail"]


async def test_auth(client, synthetiq_emulator, media):
    form = _form("image_file", media["blank"]((400, 300)))
    async with client.s.post(client.url + "/api/v1/images", data=form) as r:
        assert r.status == 403 and (await r.json())["detail"] == "Not authenticated"
    status, _ = await client.get("/api/v1/images/progress", {"pub_fake_detection_process_event_id": 1, "hash_": "x"},
                                 headers={"Api-Token": "wrong"})
    assert status == 401
    assert synthetiq_emulator.admin.counters()["auth_failures"] == 2


async def test_token_lookup_errors(client, media):
    _, token = await client.post("/api/v1/images", _form("image_file", media["blank"]((400, 300))))
    assert (await client.get("/api/v1/images/progress", {**token, "hash_": "0" * 64}))[0] == 404
    assert (await client.get("/api/v1/images/progress", {**token, "pub_fake_detection_process_event_id": 7}))[0] == 404
    assert (await client.get("/api/v1/movies/progress", token))[0] == 404  # an image token on the movie routes
    status, body = await client.get("/api/v1/images/progress", {"hash_": token["hash_"]})
    assert status == 422 and body["detail"][0]["loc"] == ["query", "pub_fake_detection_process_event_id"]
    bad_id = {**token, "pub_fake_detection_process_event_id": "x"}
    assert (await client.get("/api/v1/images/progress", bad_id))[0] == 422


@pytest.mark.parametrize("container", ["mp4", "webm", "avi"])
async def test_movie_flow_with_processed_movie(client, media, container):
    movie = media[container]()
    status, token = await client.post("/api/v1/movies", _form("movie_file", movie, f"m.{container}", "video/mp4"),
                                      is_processed_movie_file_requested="true")
    assert status == 200
    assert (await client.get("/api/v1/movies", token, headers={**client.h, "accept": "video/mp4"}))[0] == 409
    await client.finish("movies", token)
    values = (await client.get("/api/v1/movies/values", token))[1]
    frames = values["fake_detection_values"]
    assert values["media_type"] == "movie" and frames and all("frame_index" in f for f in frames)
    assert all(len(face["bbox"]) == 4 and isinstance(face["is_fake"], bool) for f in frames for face in f["faces"])
    async with client.s.get(client.url + "/api/v1/movies", params={k: str(v) for k, v in token.items()},
                            headers=client.h) as r:
        assert r.status == 200 and await r.read() == movie
        assert "attachment" in r.headers["Content-Disposition"]


async def test_processed_movie_not_requested_and_bad_flag(client, media):
    status, token = await client.post("/api/v1/movies", _form("movie_file", media["mp4"](), "m.mp4", "video/mp4"),
                                      is_processed_movie_file_requested="false")
    await client.finish("movies", token)
    assert (await client.get("/api/v1/movies", token))[0] == 404
    status, body = await client.post("/api/v1/movies", _form("movie_file", media["mp4"](), "m.mp4", "video/mp4"),
                                     is_processed_movie_file_requested="maybe")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "is_processed_movie_file_requested"]


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"width": 320}, 400), ({"height": 2200}, 400), ({"fps": 10.0}, 400), ({"fps": 75.0}, 400),
    ({"seconds": 3700.0, "fps": 14.0}, 400), ({"width": 4096, "height": 2160, "fps": 60.0}, 200)])
async def test_movie_limits(client, media, kwargs, status):
    form = _form("movie_file", media["mp4"](**kwargs), "m.mp4", "video/mp4")
    assert (await client.post("/api/v1/movies", form))[0] == status


async def test_movie_format_errors(client, media):
    image = media["blank"]((400, 300))
    assert (await client.post("/api/v1/movies", _form("movie_file", image)))[0] == 415
    assert (await client.post("/api/v1/images", _form("image_file", media["mp4"](), "m.mp4", "video/mp4")))[0] == 415
    broken = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    assert (await client.post("/api/v1/movies", _form("movie_file", broken, "m.mp4", "video/mp4")))[0] == 400


async def test_docs_pages(client):
    for path in ("/docs", "/redoc"):
        async with client.s.get(client.url + path) as r:
            assert r.status == 200 and "api/v1/images" in await r.text()


def test_processed_movies_land_in_data_dir(tmp_path, media):
    import urllib.request

    with start_detector_thread(DetectorEmulatorConfig(service="synthetiq", data_dir=tmp_path, token="t",
                                                      processing_seconds=0.0)) as emu:
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"movie_file\"; filename=\"m.mp4\"\r\n"
                "Content-Type: video/mp4\r\n\r\n").encode() + media["mp4"]() + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(emu.url + "/api/v1/movies?is_processed_movie_file_requested=true", data=body,
                                     headers={"Api-Token": "t",
                                              "Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 200
    assert [p.name for p in (tmp_path / "processed").iterdir()] == ["1001.mp4"]
