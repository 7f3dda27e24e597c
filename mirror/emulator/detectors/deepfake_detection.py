"""Deepfake Detection API (Resemble "Detect") emulator: ``/detect``, batches, secure uploads.

Routes are served both at the root and under ``/api/v2`` (the live base path), with
``Authorization: Bearer``: a missing or malformed header is 401, a wrong token 403. Errors are
``{success: false, error, errors: {field: [msg]}, message}``; 402 adds ``error_code`` and cost
``details`` (credits are unlimited unless set through ``/_admin/credits``). ``Prefer: wait`` blocks
until the job ends and answers 422 if the media could not be analysed.

This machine never sends traffic off loopback: ``url`` submissions and ``callback_url`` must name
127.0.0.1/localhost/::1, anything else is refused with 400 before any network access.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from mirror.emulator.detectors import dfd_intake as intake
from mirror.emulator.detectors import dfd_items
from mirror.emulator.detectors.admin import CREDITS_KEY, add_admin_routes
from mirror.emulator.detectors.jobs import JOBS_KEY, Job, JobStore
from mirror.emulator.detectors.uploads import (
    CONFIG_KEY,
    DetectorEmulatorConfig,
    TooLarge,
    fault_middleware,
    is_loopback_host,
    read_form,
)

STATE_KEY: web.AppKey[dict[str, Any]] = web.AppKey("dfd_state", dict)


@web.middleware
async def _envelope(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
    """Bearer auth on API paths, ApiError -> error envelope, and the rejected/auth counters."""
    if request.path.startswith(("/_admin", "/_media")):
        return await handler(request)
    counters = request.app[JOBS_KEY].counters
    try:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise intake.ApiError(401, "Missing or malformed Authorization header; expected 'Bearer <token>'")
        if not secrets.compare_digest(token.strip().encode(), request.app[CONFIG_KEY].api_token.encode()):
            raise intake.ApiError(403, "Invalid API token")
        return await handler(request)
    except intake.ApiError as err:
        if err.status in (401, 403):
            counters.auth_failures += 1
        else:
            counters.rejected += 1
        body = {"success": False, "error": _REASONS.get(err.status, "Error"), "errors": err.errors,
                "message": err.message, **err.extra}
        return web.json_response(body, status=err.status)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
            422: "Unprocessable Entity", 504: "Gateway Timeout"}


def _charge(request: web.Request, files: int) -> None:
    wallet = request.app[CREDITS_KEY]
    if wallet["credits"] is not None:
        if wallet["credits"] < files:
            raise intake.ApiError(402, "Insufficient credits for this detection", error_code="insufficient_credits",
                           details={"required_credits": files, "available_credits": wallet["credits"],
                                    "cost_per_file": 1})
        wallet["credits"] -= files


async def _fetch(request: web.Request, url: str) -> tuple[bytes, str]:
    """GET a loopback media URL with a timeout and a byte cap; failures are the caller's 400."""
    session: aiohttp.ClientSession = request.app[STATE_KEY]["session"]
    try:
        async with session.get(url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=15)) as resp:
            if resp.status != 200:
                raise intake.invalid("url", f"could not be fetched (HTTP {resp.status})")
            body = await resp.content.read(intake.FETCH_LIMIT + 1)
            if len(body) > intake.FETCH_LIMIT:
                raise intake.invalid("url", "media is larger than the emulator's fetch limit")
            return body, resp.headers.get("Content-Type", "")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise intake.invalid("url", f"could not be fetched ({type(err).__name__})") from None


async def secure_upload(request: web.Request) -> web.Response:
    try:
        _, files = await read_form(request, intake.UPLOAD_LIMIT)
    except TooLarge:
        raise intake.invalid("file", f"exceeds {intake.UPLOAD_LIMIT // intake.MB} MB") from None
    except ValueError:
        raise intake.invalid("file", "is required (multipart/form-data)") from None
    found = [f for f in files if f.field == "file"]
    if not found:
        raise intake.invalid("file", "is required")
    intake.check_upload(found[0], "file")
    state = request.app[STATE_KEY]
    upload_id = uuid.uuid4().hex
    state["uploads"][upload_id] = (found[0].data, found[0].filename)
    token = intake.sign_token(state["secret"], upload_id, intake.TOKEN_TTL)
    return web.json_response({"success": True, "token": token})


def _start(request: web.Request, data: bytes, kind: tuple[str, str | None], opts: dict[str, Any],
           extra: dict[str, Any], **source: Any) -> Job:
    config = request.app[CONFIG_KEY]
    media, fmt = kind

    def work() -> dict[str, Any]:
        return dfd_items.analyse(data, media, fmt or "", opts, config.seed)

    return request.app[JOBS_KEY].submit(str(uuid.uuid4()), hashlib.sha256(data).hexdigest(), work,
                                        media_type=media, options=opts, extra_params=extra, base=_base(request),
                                        **source)


async def create_detection(request: web.Request) -> web.Response:
    if request.content_type.startswith("multipart/"):
        try:
            fields, files = await read_form(request, intake.FILE_LIMIT)
        except TooLarge:
            raise intake.ApiError(400, "file exceeds the 150 MB direct-upload limit; use POST /secure_uploads and "
                                "pass media_token instead", {"file": ["must be 150 MB or smaller"]}) from None
        raw: dict[str, Any] = dict(fields)
        upload = next((f for f in files if f.field == "file"), None)
    else:
        try:
            raw = await request.json() if request.can_read_body else {}
        except ValueError:
            raise intake.ApiError(400, "body is not valid JSON") from None
        if not isinstance(raw, dict):
            raise intake.ApiError(400, "body must be a JSON object")
        upload = None
    given = [s for s in intake.SOURCES if (s == "file" and upload is not None) or (s != "file" and raw.get(s))]
    if len(given) != 1:
        raise intake.ApiError(400, "exactly one of url, file or media_token must be provided",
                       {s: ["exactly one of url, file or media_token must be provided"] for s in intake.SOURCES})
    opts, extra = intake.options(raw)
    if upload is not None:
        intake.check_upload(upload, "file")
        data, source = upload.data, {"filename": upload.filename}
        kind = intake.kind_of(data, upload.filename, upload.content_type)
    elif given == ["media_token"]:
        state = request.app[STATE_KEY]
        upload_id = intake.token_subject(state["secret"], raw["media_token"])
        if upload_id not in state["uploads"]:
            raise intake.invalid("media_token", "is invalid or expired")
        data, name = state["uploads"][upload_id]
        source, kind = {"filename": name}, intake.kind_of(data, name)
    else:
        url = intake.loopback_url("url", raw["url"])
        data, ctype = await _fetch(request, url)
        source, kind = {"url": url}, intake.kind_of(data, urlsplit(url).path, ctype)
    if not kind[0]:
        raise intake.invalid(given[0], "is not a supported audio, image or video format")
    _charge(request, 1)
    job = _start(request, data, kind, opts, extra, **source)
    if "wait" not in request.headers.get("Prefer", "").lower():
        return web.json_response({"success": True, "item": dfd_items.render(job, _base(request))})
    try:
        await asyncio.wait_for(job.done.wait(), intake.WAIT_LIMIT)
    except TimeoutError:
        raise intake.ApiError(504, "detection did not finish in time; poll GET /detect/{uuid}") from None
    item = dfd_items.render(job, _base(request))
    if job.error:
        raise intake.ApiError(422, f"media could not be analysed: {job.error}", {given[0]: [job.error]}, item=item)
    request.app[JOBS_KEY].counters.results_served += 1
    return web.json_response({"success": True, "item": item})


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _job(request: web.Request) -> Job:
    job = request.app[JOBS_KEY].get(request.match_info["uuid"])
    if job is None:
        raise intake.ApiError(404, "Detection not found", {"uuid": ["not found"]})
    return job


async def get_detection(request: web.Request) -> web.Response:
    job = _job(request)
    counters = request.app[JOBS_KEY].counters
    counters.polls += 1
    if job.finished and not job.error:
        counters.results_served += 1
    return web.json_response({"success": True, "item": dfd_items.render(job, _base(request))})


def _int_query(request: web.Request, name: str, default: int | None, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise intake.invalid(name, "is required")
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        raise intake.invalid(name, f"must be an integer >= {low}" + (f" and <= {high}" if high is not None else ""))
    return int(raw)


async def list_detections(request: web.Request) -> web.Response:
    page = _int_query(request, "page", None, 1, None)
    size = _int_query(request, "page_size", 10, 10, 1000)
    jobs = request.app[JOBS_KEY].live()
    chunk = jobs[(page - 1) * size:page * size]
    base = _base(request)
    return web.json_response({"success": True, "page": page, "num_pages": math.ceil(len(jobs) / size),
                              "page_size": size, "total_count": len(jobs),
                              "items": [dfd_items.render(job, base) for job in chunk]})


async def delete_detection(request: web.Request) -> web.Response:
    job = _job(request)
    request.app[JOBS_KEY].delete(job.id)
    return web.json_response({"success": True, "message": "Detection deleted"})


def _batch_item(request: web.Request, batch: dict[str, Any]) -> dict[str, Any]:
    store = request.app[JOBS_KEY]
    jobs = [store.jobs.get(u) for u in batch["detect_uuids"]]
    failed = sum(1 for j in jobs if j is not None and j.finished and j.error)
    done = sum(1 for j in jobs if j is None or j.finished)
    return {"uuid": batch["uuid"], "status": "completed" if done == len(jobs) else "processing",
            "total_files": len(jobs), "completed_count": done - failed, "failed_count": failed,
            "created_at": batch["created_at"], "detect_uuids": batch["detect_uuids"]}


async def create_batch(request: web.Request) -> web.Response:
    if "wait" in request.headers.get("Prefer", "").lower():
        raise intake.ApiError(400, "Prefer: wait is not supported for batch detections", {"Prefer": ["not supported"]})
    try:
        fields, files = await read_form(request, intake.BATCH_LIMIT, total_limit=intake.BATCH_LIMIT)
    except TooLarge:
        raise intake.invalid("files[]", "exceed the 500 MB batch limit") from None
    except ValueError:
        raise intake.invalid("files[]", "must be sent as multipart/form-data") from None
    listed = [f for f in files if f.field == "files[]"]
    archives = [f for f in files if f.field == "file"]
    if bool(listed) == bool(archives) or len(archives) > 1:
        raise intake.ApiError(400, "provide either files[] or a single file=<archive>.zip",
                       {"files[]": ["provide either files[] or file"], "file": ["provide either files[] or file"]})
    members = listed or intake.zip_members(archives[0])
    if not members or len(members) > intake.BATCH_FILES:
        raise intake.invalid("files[]", f"must hold between 1 and {intake.BATCH_FILES} media files")
    opts, extra = intake.options(dict(fields))
    callback = opts.pop("callback_url", None)
    kinds = []
    for member in members:
        intake.check_upload(member, "files[]")
        kinds.append(intake.kind_of(member.data, member.filename, member.content_type))
        if not kinds[-1][0]:
            raise intake.invalid("files[]", f"{member.filename} is not a supported media format")
    _charge(request, len(members))
    jobs = [_start(request, m.data, k, opts, extra, filename=m.filename) for m, k in zip(members, kinds, strict=True)]
    batch = {"uuid": str(uuid.uuid4()), "created_at": dfd_items.iso(time.time()),
             "detect_uuids": [j.id for j in jobs], "callback_url": callback}
    request.app[STATE_KEY]["batches"][batch["uuid"]] = batch
    if callback:
        request.app[JOBS_KEY].spawn(_batch_callback(request.app, batch, jobs, _base(request)))
    return web.json_response({"success": True, "item": _batch_item(request, batch)}, status=202)


async def get_batch(request: web.Request) -> web.Response:
    batch = request.app[STATE_KEY]["batches"].get(request.match_info["uuid"])
    if batch is None:
        raise intake.ApiError(404, "Batch not found", {"uuid": ["not found"]})
    request.app[JOBS_KEY].counters.polls += 1
    return web.json_response({"success": True, "item": _batch_item(request, batch)})


async def heatmap(request: web.Request) -> web.Response:
    """The ``ifl.heatmap`` / ``image`` visualisation: unguessable URL, no auth (like a signed link)."""
    job = request.app[JOBS_KEY].get(request.match_info["uuid"])
    png = job.result.get("heatmap") if job is not None and job.finished and job.result else None
    if png is None or job is None or job.meta["options"]["zero_retention_mode"]:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=png, content_type="image/png")


async def _post(app: web.Application, url: str, payload: dict[str, Any]) -> None:
    counters = app[JOBS_KEY].counters
    if not is_loopback_host(urlsplit(url).hostname):  # validated at submission; checked again before sending
        counters.callbacks_failed += 1
        return
    try:
        async with app[STATE_KEY]["session"].post(url, json=payload, timeout=aiohttp.ClientTimeout(total=10)):
            counters.callbacks_sent += 1
    except (aiohttp.ClientError, TimeoutError):
        counters.callbacks_failed += 1


async def _batch_callback(app: web.Application, batch: dict[str, Any], jobs: list[Job], base: str) -> None:
    await asyncio.gather(*(job.done.wait() for job in jobs))
    failed = sum(1 for j in jobs if j.error)
    await _post(app, batch["callback_url"], {"success": True, "item": {
        "uuid": batch["uuid"], "status": "completed", "total_files": len(jobs), "completed_count": len(jobs) - failed,
        "failed_count": failed, "created_at": batch["created_at"], "detect_uuids": batch["detect_uuids"]}})


def build_app(config: DetectorEmulatorConfig) -> web.Application:
    app = web.Application(middlewares=[fault_middleware(config), _envelope], client_max_size=4 * intake.MB)
    app[CONFIG_KEY] = config
    app[STATE_KEY] = {"secret": secrets.token_bytes(32), "uploads": {}, "batches": {}, "session": None}

    async def on_done(job: Job) -> None:
        callback = job.meta["options"].get("callback_url")
        if callback:
            await _post(app, callback, {"success": True, "item": dfd_items.render(job, job.meta["base"])})

    app[JOBS_KEY] = JobStore(config.processing_seconds, on_done)
    for prefix in ("", "/api/v2"):
        app.router.add_post(prefix + "/detect/batch", create_batch)
        app.router.add_get(prefix + "/detect/batch/{uuid}", get_batch)
        app.router.add_post(prefix + "/detect", create_detection)
        app.router.add_get(prefix + "/detect", list_detections)
        app.router.add_get(prefix + "/detect/{uuid}", get_detection)
        app.router.add_delete(prefix + "/detect/{uuid}", delete_detection)
        app.router.add_post(prefix + "/secure_uploads", secure_upload)
    app.router.add_get("/_media/{uuid}/heatmap.png", heatmap)
    add_admin_routes(app)

    async def startup(app: web.Application) -> None:
        app[STATE_KEY]["session"] = aiohttp.ClientSession()

    async def cleanup(app: web.Application) -> None:
        await app[JOBS_KEY].close()
        await app[STATE_KEY]["session"].close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
