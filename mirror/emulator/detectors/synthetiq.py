"""SYNTHETIQ VISION API emulator: images and movies, ``Api-Token`` auth, FastAPI-shaped errors.

Documented (synthetiq-vision-api.txt): the seven ``/api/v1`` paths, the ``Api-Token`` header,
multipart fields ``image_file`` / ``movie_file``, ``is_processed_movie_file_requested``, the token
``{hash_, pub_fake_detection_process_event_id}``, progress ``finished``, the limits and formats,
and ``/docs`` + ``/redoc`` (the server is a FastAPI app). Guessed, because nothing public says:

- progress runs ``waiting`` -> ``processing`` -> ``finished``, or ``failed`` if the analysis fails;
- errors are FastAPI's ``{"detail": ...}``: 403 "Not authenticated" without the header, 401 for a
  wrong token, 422 (``detail`` list) for a missing field or bad query value, 413 over the size
  limit, 415 for an unsupported format, 400 for bad dimensions/fps/duration or an unreadable file,
  404 for an unknown or mismatched result token, 409 for values/movie before ``finished``;
- the ``values`` body (face regions, verdicts, scores), deliberately a little irregular: images
  give ``face_region`` as an object and ``score``, movies give ``bbox`` lists and ``fake_score``.

Images are scored from their pixels by ``PeakDetector``. Movies are never decoded (no decoder in
the dependencies): their per-frame verdicts are derived from the container bytes' hash, and the
"processed movie" is the posted container returned unchanged (no boxes drawn).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from mirror.emulator.detectors.admin import add_admin_routes
from mirror.emulator.detectors.jobs import JOBS_KEY, Job, JobStore
from mirror.emulator.detectors.media import BadContainer, VideoInfo, probe_video, sniff
from mirror.emulator.detectors.spectral import PeakDetector, Verdict
from mirror.emulator.detectors.uploads import CONFIG_KEY, DetectorEmulatorConfig, TooLarge, fault_middleware, read_form

MB = 1024 * 1024
IMAGE_LIMIT, MOVIE_LIMIT = 50 * MB, 100 * MB
WIDTH, HEIGHT, FPS, MAX_SECONDS = (360, 4096), (270, 2160), (14.0, 60.0), 3600.0
MOVIE_KINDS = {"mp4": "video/mp4", "webm": "video/webm", "avi": "video/x-msvideo"}
MODEL_VERSION = "synthetiq-vision-emulator/1.0"
_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
SECRET_KEY: web.AppKey[bytes] = web.AppKey("synthetiq_secret", bytes)
MOVIES_KEY: web.AppKey[dict[str, Any]] = web.AppKey("synthetiq_movies", dict)
EVENT_IDS_KEY: web.AppKey[Iterator[int]] = web.AppKey("synthetiq_event_ids")


class ApiError(Exception):
    """An error answer in FastAPI's shape."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status, self.detail = status, detail


def _missing(loc: list[str], msg: str = "Field required", kind: str = "missing") -> ApiError:
    return ApiError(422, [{"type": kind, "loc": loc, "msg": msg, "input": None}])


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    """Auth for the API paths, then ApiError -> JSON, and the rejected/auth counters by status."""
    counters = request.app[JOBS_KEY].counters
    if not request.path.startswith("/api/"):
        return await handler(request)
    token = request.headers.get("Api-Token")
    try:
        if token is None:
            raise ApiError(403, "Not authenticated")
        if not secrets.compare_digest(token.encode(), request.app[CONFIG_KEY].api_token.encode()):
            raise ApiError(401, "Invalid API token")
        return await handler(request)
    except ApiError as err:
        if err.status in (401, 403):
            counters.auth_failures += 1
        else:
            counters.rejected += 1
        return web.json_response({"detail": err.detail}, status=err.status)


def _token(job: Job) -> dict[str, Any]:
    return {"hash_": job.meta["hash_"], "pub_fake_detection_process_event_id": job.meta["event_id"]}


def _new_job(request: web.Request, data: bytes, kind: str, work: Callable[[], Any], **meta: Any) -> Job:
    store = request.app[JOBS_KEY]
    event_id = next(request.app[EVENT_IDS_KEY])
    hash_ = hashlib.sha256(request.app[SECRET_KEY] + str(event_id).encode()).hexdigest()
    return store.submit(str(event_id), hashlib.sha256(data).hexdigest(), work,
                        kind=kind, event_id=event_id, hash_=hash_, **meta)


async def _upload(request: web.Request, field: str, limit: int) -> bytes:
    try:
        _, files = await read_form(request, limit)
    except TooLarge:
        raise ApiError(413, f"File too large: the limit is {limit // MB} MB") from None
    except ValueError:
        raise _missing(["body", field]) from None
    found = [f for f in files if f.field == field]
    if not found:
        raise _missing(["body", field])
    if not found[0].data:
        raise ApiError(400, "Empty file")
    return found[0].data


def _check_size(width: int | None, height: int | None, what: str) -> None:
    if width is None or height is None:
        raise ApiError(400, f"Could not read the {what} dimensions")
    if not (WIDTH[0] <= width <= WIDTH[1] and HEIGHT[0] <= height <= HEIGHT[1]):
        raise ApiError(400, f"{what.capitalize()} size {width}x{height} px is outside the supported range "
                            f"(width {WIDTH[0]}-{WIDTH[1]} px, height {HEIGHT[0]}-{HEIGHT[1]} px)")


def _image_values(verdict: Verdict) -> dict[str, Any]:
    faces = []
    if verdict.face_box is not None:
        x, y, w, h = verdict.face_box
        faces.append({"face_id": 0, "face_region": {"x": x, "y": y, "width": w, "height": h},
                      "result": "fake" if verdict.p_fake >= 0.5 else "real", "score": round(verdict.p_fake, 4)})
    body: dict[str, Any] = {"media_type": "image", "width": verdict.width, "height": verdict.height,
                            "fake_detection_values": faces, "model_version": MODEL_VERSION}
    if not faces:
        body["message"] = "No face detected"
    return body


async def post_image(request: web.Request) -> web.Response:
    data = await _upload(request, "image_file", IMAGE_LIMIT)
    kind = sniff(data)
    if kind not in ("jpeg", "png"):
        raise ApiError(415, "Unsupported image format: JPEG (.jpg, .jpeg) and PNG (.png) are supported")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ApiError(400, "Invalid image file") from None
    _check_size(width, height, "image")
    detector = PeakDetector(salt=f"synthetiq/{request.app[CONFIG_KEY].seed}")
    job = _new_job(request, data, "image", lambda: _image_values(detector.analyse(data)))
    return web.json_response(_token(job))


def _movie_values(data: bytes, info: VideoInfo) -> dict[str, Any]:
    """Per-frame verdicts from the container bytes (no decoder): one sample per second, up to 60."""
    digest = hashlib.sha256(b"synthetiq-movie\x1f" + data).digest()
    base = (digest[0] / 255.0 - 0.5) * 8.0  # the whole movie's logit
    fps, duration = info.fps or 30.0, info.duration or 1.0
    w, h = info.width or WIDTH[0], info.height or HEIGHT[0]
    box = [round(0.3 * w), round(0.15 * h), round(0.7 * w), round(0.77 * h)]
    frames = []
    for i in range(min(max(int(duration), 1), 60)):
        wobble = (digest[1 + i % 31] / 255.0 - 0.5) * 2.0
        p = 1.0 / (1.0 + math.exp(-(base + wobble)))
        faces = [] if digest[(i * 7) % 32] < 20 else [
            {"bbox": box, "is_fake": p >= 0.5, "fake_score": round(p, 4)}]
        frames.append({"frame_index": round(i * fps), "faces": faces})
    flagged = [f for f in frames if f["faces"] and f["faces"][0]["is_fake"]]
    with_face = [f for f in frames if f["faces"]]
    return {"media_type": "movie", "width": w, "height": h, "fps": round(fps, 3), "frame_count": round(duration * fps),
            "fake_detection_values": frames, "model_version": MODEL_VERSION,
            "summary": {"result": "fake" if len(flagged) * 2 > len(with_face) else "real",
                        "fake_frame_ratio": round(len(flagged) / len(with_face), 4) if with_face else None}}


def _bool_query(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw.lower() not in _BOOLS:
        raise ApiError(422, [{"type": "bool_parsing", "loc": ["query", name],
                              "msg": "Input should be a valid boolean, unable to interpret input", "input": raw}])
    return _BOOLS[raw.lower()]


async def post_movie(request: web.Request) -> web.Response:
    wants_movie = _bool_query(request, "is_processed_movie_file_requested")
    data = await _upload(request, "movie_file", MOVIE_LIMIT)
    kind = sniff(data)
    if kind not in MOVIE_KINDS:
        raise ApiError(415, "Unsupported movie format: mp4 (h264, hevc), webm (vp9) and avi (h264, mpeg4) "
                            "are supported")
    try:
        info = probe_video(data, kind)
    except BadContainer:
        raise ApiError(400, "Invalid movie file") from None
    _check_size(info.width, info.height, "movie")
    if info.fps is not None and not FPS[0] <= info.fps <= FPS[1]:
        raise ApiError(400, f"Movie frame rate {info.fps:.2f} fps is outside the supported range "
                            f"({FPS[0]:.0f}-{FPS[1]:.0f} fps)")
    if info.duration is not None and info.duration > MAX_SECONDS:
        raise ApiError(400, f"Movie duration {info.duration:.0f} s exceeds the limit of {MAX_SECONDS:.0f} s")
    job = _new_job(request, data, "movie", lambda: _movie_values(data, info), wants_movie=wants_movie,
                   container=kind)
    if wants_movie:
        _keep_movie(request.app, job, data)
    return web.json_response(_token(job))


def _keep_movie(app: web.Application, job: Job, data: bytes) -> None:
    """The processed movie: on disk under data_dir when there is one, else in memory."""
    data_dir = app[CONFIG_KEY].data_dir
    if data_dir is None:
        app[MOVIES_KEY][job.id] = data
        return
    path = Path(data_dir) / "processed" / f"{job.id}.{job.meta['container']}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    app[MOVIES_KEY][job.id] = path


def _find(request: web.Request, kind: str) -> Job:
    """The job named by the query's token pair; 422 if a part is missing, 404 if it matches nothing."""
    raw_id, hash_ = request.query.get("pub_fake_detection_process_event_id"), request.query.get("hash_")
    if raw_id is None:
        raise _missing(["query", "pub_fake_detection_process_event_id"])
    if hash_ is None:
        raise _missing(["query", "hash_"])
    if not raw_id.lstrip("-").isdigit():
        raise ApiError(422, [{"type": "int_parsing", "loc": ["query", "pub_fake_detection_process_event_id"],
                              "msg": "Input should be a valid integer, unable to parse string as an integer",
                              "input": raw_id}])
    job = request.app[JOBS_KEY].get(str(int(raw_id)))
    if job is None or job.meta["kind"] != kind or not secrets.compare_digest(job.meta["hash_"], hash_):
        raise ApiError(404, "Fake detection result not found")
    return job


def _progress(job: Job, processing_seconds: float) -> str:
    """``waiting`` for the first third of the processing time, then ``processing``, then the outcome."""
    if job.finished:
        return "failed" if job.error else "finished"
    return "waiting" if time.time() - job.submitted < processing_seconds / 3 else "processing"


def _require_finished(job: Job) -> None:
    if not job.finished:
        raise ApiError(409, "Fake detection is not finished yet; poll the progress endpoint")
    if job.error:
        raise ApiError(409, f"Fake detection failed: {job.error}")


def _routes(kind: str) -> tuple[Callable[[web.Request], Awaitable[web.Response]], ...]:
    async def progress(request: web.Request) -> web.Response:
        job = _find(request, kind)
        request.app[JOBS_KEY].counters.polls += 1
        return web.json_response({"progress": _progress(job, request.app[CONFIG_KEY].processing_seconds)})

    async def values(request: web.Request) -> web.Response:
        job = _find(request, kind)
        _require_finished(job)
        request.app[JOBS_KEY].counters.results_served += 1
        return web.json_response({"pub_fake_detection_process_event_id": job.meta["event_id"],
                                  "hash_": job.meta["hash_"], **job.result})

    return progress, values


async def get_processed_movie(request: web.Request) -> web.StreamResponse:
    job = _find(request, "movie")
    if not job.meta["wants_movie"]:
        raise ApiError(404, "Processed movie file was not requested for this movie")
    _require_finished(job)
    stored = request.app[MOVIES_KEY][job.id]
    if isinstance(stored, Path):
        stored = await asyncio.get_running_loop().run_in_executor(None, stored.read_bytes)
    ext = job.meta["container"]
    request.app[JOBS_KEY].counters.results_served += 1
    return web.Response(body=stored, content_type=MOVIE_KINDS[ext],
                        headers={"Content-Disposition": f'attachment; filename="processed_{job.id}.{ext}"'})


_DOCS = """<!doctype html><html><head><title>SYNTHETIQ VISION API - {ui}</title></head><body>
<h1>SYNTHETIQ VISION API (local emulator) - {ui}</h1><ul>
<li>POST /api/v1/images (multipart image_file)</li><li>GET /api/v1/images/progress</li>
<li>GET /api/v1/images/values</li><li>POST /api/v1/movies?is_processed_movie_file_requested=</li>
<li>GET /api/v1/movies/progress</li><li>GET /api/v1/movies/values</li><li>GET /api/v1/movies</li></ul>
<p>Header <code>Api-Token</code> on every /api request.</p></body></html>"""


def _docs(ui: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS.format(ui=ui), content_type="text/html")

    return page


def build_app(config: DetectorEmulatorConfig) -> web.Application:
    app = web.Application(middlewares=[fault_middleware(config), _errors], client_max_size=1 * MB)
    app[CONFIG_KEY] = config
    app[JOBS_KEY] = JobStore(config.processing_seconds)
    app[SECRET_KEY] = secrets.token_bytes(32)
    app[MOVIES_KEY] = {}
    app[EVENT_IDS_KEY] = itertools.count(1001)
    image_progress, image_values = _routes("image")
    movie_progress, movie_values = _routes("movie")
    app.router.add_post("/api/v1/images", post_image)
    app.router.add_get("/api/v1/images/progress", image_progress)
    app.router.add_get("/api/v1/images/values", image_values)
    app.router.add_post("/api/v1/movies", post_movie)
    app.router.add_get("/api/v1/movies/progress", movie_progress)
    app.router.add_get("/api/v1/movies/values", movie_values)
    app.router.add_get("/api/v1/movies", get_processed_movie)
    app.router.add_get("/docs", _docs("Swagger UI"))
    app.router.add_get("/redoc", _docs("ReDoc"))
    add_admin_routes(app)

    async def close(app: web.Application) -> None:
        await app[JOBS_KEY].close()

    app.on_cleanup.append(close)
    return app
