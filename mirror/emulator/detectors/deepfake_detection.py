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
import base64
import hashlib
import hmac
import json
import math
import secrets
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from mirror.emulator.detectors import dfd_items
from mirror.emulator.detectors.admin import CREDITS_KEY, add_admin_routes
from mirror.emulator.detectors.jobs import JOBS_KEY, Job, JobStore
from mirror.emulator.detectors.media import media_type, sniff
from mirror.emulator.detectors.uploads import (
    CONFIG_KEY,
    DetectorEmulatorConfig,
    TooLarge,
    Upload,
    fault_middleware,
    is_loopback_host,
    read_form,
    read_form as _read_form,
)

MB = 1024 * 1024
FILE_LIMIT, BATCH_LIMIT, UPLOAD_LIMIT, FETCH_LIMIT = 150 * MB, 500 * MB, 500 * MB, 500 * MB
BATCH_FILES, WAIT_LIMIT, TOKEN_TTL = 50, 300.0, 3600
EXTENSIONS = {".wav": "audio", ".mp3": "audio", ".m4a": "audio", ".ogg": "audio", ".aac": "audio", ".flac": "audio",
              ".amr": "audio", ".3gp": "audio", ".3gpp": "audio", ".mp4": "video", ".mov": "video", ".avi": "video",
              ".mkv": "video", ".webm": "video", ".wmv": "video", ".jpg": "image", ".jpeg": "image",
              ".png": "image", ".gif": "image", ".webp": "image"}
BOOL_OPTIONS = ("visualize", "zero_retention_mode", "use_ood_detector", "intelligence", "audio_source_tracing",
                "use_reverse_search", "search_identity", "audio_source_tracing_enabled")
NUMBER_OPTIONS = ("start_region", "end_region", "max_video_fps", "max_video_secs")
SOURCES = ("url", "file", "media_token")
STATE_KEY: web.AppKey[dict[str, Any]] = web.AppKey("dfd_state", dict)


class ApiError(Exception):
    """An error answer in the API's envelope."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.extra = status, message, errors or {}, extra


def _invalid(field: str, msg: str) -> ApiError:
    return ApiError(400, f"{field} {msg}", {field: [msg]})


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
            raise ApiError(401, "Missing or malformed Authorization header; expected 'Bearer <token>'")
        if not secrets.compare_digest(token.strip().encode(), request.app[CONFIG_KEY].api_token.encode()):
            raise ApiError(403, "Invalid API token")
        return await handler(request)
    except ApiError as err:
        if err.status in (401, 403):
            counters.auth_failures += 1
        else:
            counters.rejected += 1
        body = {"success": False, "error": _REASONS.get(err.status, "Error"), "errors": err.errors,
                "message": err.message, **err.extra}
        return web.json_response(body, status=err.status)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
            422: "Unprocessable Entity", 504: "Gateway Timeout"}


def _bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise _invalid(field, "must be a boolean")


def _number(field: str, value: Any, integer: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _invalid(field, "must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(field, "must be a number")
    if integer and value != int(value):
        raise _invalid(field, "must be an integer")
    return value


def _options(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validated options and the unknown fields (echoed as ``extra_params``)."""
    opts: dict[str, Any] = {"visualize": True, "zero_retention_mode": False, "use_ood_detector": False,
                            "intelligence": False, "audio_source_tracing": False, "use_reverse_search": False,
                            "frame_length": 2}
    extra: dict[str, Any] = {}
    for field, value in raw.items():
        if field in SOURCES or value is None:
            continue
        if field in BOOL_OPTIONS:
            opts[field] = _bool(field, value)
        elif field == "frame_length":
            length = _number(field, value, integer=True)
            if not 1 <= length <= 4:
                raise _invalid(field, "must be between 1 and 4")
            opts[field] = int(length)
        elif field in NUMBER_OPTIONS:
            number = _number(field, value)
            if number < 0 or (field.startswith("max_") and number == 0):
                raise _invalid(field, "must be greater than 0" if field.startswith("max_") else "must be >= 0")
            opts[field] = number
        elif field == "model_types":
            if value not in ("image", "talking_head"):
                raise _invalid(field, "must be one of: image, talking_head")
            opts[field] = value
        elif field == "callback_url":
            opts[field] = _loopback_url(field, value)
        else:
            extra[field] = value
    if opts.get("audio_source_tracing_enabled"):
        opts["audio_source_tracing"] = True
    if "start_region" in opts and "end_region" in opts and opts["end_region"] <= opts["start_region"]:
        raise _invalid("end_region", "must be greater than start_region")
    return opts, extra


def _loopback_url(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(field, "must be a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(field, "must be an http(s) URL")
    if not is_loopback_host(parts.hostname):
        raise _invalid(field, "must point to 127.0.0.1 or localhost: this emulator never contacts other hosts")
    return value


def _kind_of(data: bytes, name: str, content_type: str = "") -> tuple[str, str | None]:
    """(media_type, sniffed format) from the bytes, else the declared type, else the extension."""
    kind = sniff(data)
    found = media_type(kind) or content_type.split("/")[0] if content_type.split("/")[0] in (
        "image", "video", "audio") else media_type(kind)
    return found or EXTENSIONS.get(PurePosixPath(name).suffix.lower(), ""), kind


def _check_upload(upload: Upload, field: str) -> None:
    if PurePosixPath(upload.filename).suffix.lower() not in EXTENSIONS:
        raise _invalid(field, f"has an unsupported extension; allowed: {', '.join(sorted(EXTENSIONS))}")
    major = upload.content_type.split("/")[0]
    if major not in ("image", "video", "audio") and upload.content_type != "application/octet-stream":
        raise _invalid(field, f"has an unsupported content type {upload.content_type!r}")
    if not upload.data:
        raise _invalid(field, "is empty")


def _charge(request: web.Request, files: int) -> None:
    wallet = request.app[CREDITS_KEY]
    if wallet["credits"] is not None:
        if wallet["credits"] < files:
            raise ApiError(402, "Insufficient credits for this detection", error_code="insufficient_credits",
                           details={"required_credits": files, "available_credits": wallet["credits"],
                                    "cost_per_file": 1})
        wallet["credits"] -= files


async def _fetch(request: web.Request, url: str) -> tuple[bytes, str]:
    """GET a loopback media URL with a timeout and a byte cap; failures are the caller's 400."""
    session: aiohttp.ClientSession = request.app[STATE_KEY]["session"]
    try:
        async with session.get(url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=15)) as resp:
            if resp.status != 200:
                raise _invalid("url", f"could not be fetched (HTTP {resp.status})")
            body = await resp.content.read(FETCH_LIMIT + 1)
            if len(body) > FETCH_LIMIT:
                raise _invalid("url", "media is larger than the emulator's fetch limit")
            return body, resp.headers.get("Content-Type", "")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise _invalid("url", f"could not be fetched ({type(err).__name__})") from None


def _jwt(secret: bytes, payload: dict[str, Any]) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload, separators=(",", ":")).encode())
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def _redeem(request: web.Request, token: Any) -> tuple[bytes, str]:
    state = request.app[STATE_KEY]
    if not isinstance(token, str) or token.count(".") != 2:
        raise _invalid("media_token", "is invalid or expired")
    head, _, sig = token.rpartition(".")
    want = base64.urlsafe_b64encode(hmac.new(state["secret"], head.encode(), hashlib.sha256).digest()).rstrip(b"=")
    try:
        payload = json.loads(base64.urlsafe_b64decode(head.split(".")[1] + "=="))
    except ValueError:
        payload = {}
    upload = state["uploads"].get(payload.get("sub"))
    if not hmac.compare_digest(want, sig.encode()) or upload is None or payload.get("exp", 0) < time.time():
        raise _invalid("media_token", "is invalid or expired")
    return upload


async def secure_upload(request: web.Request) -> web.Response:
    try:
        _, files = await read_form(request, UPLOAD_LIMIT)
    except TooLarge:
        raise _invalid("file", f"exceeds {UPLOAD_LIMIT // MB} MB") from None
    except ValueError:
        raise _invalid("file", "is required (multipart/form-data)") from None
    found = [f for f in files if f.field == "file"]
    if not found:
        raise _invalid("file", "is required")
    _check_upload(found[0], "file")
    state = request.app[STATE_KEY]
    upload_id = uuid.uuid4().hex
    state["uploads"][upload_id] = (found[0].data, found[0].filename)
    token = _jwt(state["secret"], {"sub": upload_id, "exp": int(time.time()) + TOKEN_TTL})
    return web.json_response({"success": True, "token": token})


def _start(request: web.Request, data: bytes, kind: tuple[str, str | None], opts: dict[str, Any],
           extra: dict[str, Any], **source: Any) -> Job:
    config = request.app[CONFIG_KEY]
    media, fmt = kind

    def work() -> dict[str, Any]:
        return dfd_items.analyse(data, media, fmt or "", opts, config.seed)

    return request.app[JOBS_KEY].submit(str(uuid.uuid4()), hashlib.sha256(data).hexdigest(), work,
                                        media_type=media, options=opts, extra_params=extra, **source)


async def create_detection(request: web.Request) -> web.Response:
    if request.content_type.startswith("multipart/"):
        try:
            fields, files = await _read_form(request, FILE_LIMIT)
        except TooLarge:
            raise ApiError(400, "file exceeds the 150 MB direct-upload limit; use POST /secure_uploads and "
                                "pass media_token instead", {"file": ["must be 150 MB or smaller"]}) from None
        raw: dict[str, Any] = dict(fields)
        upload = next((f for f in files if f.field == "file"), None)
    else:
        try:
            raw = await request.json() if request.can_read_body else {}
        except ValueError:
            raise ApiError(400, "body is not valid JSON") from None
        if not isinstance(raw, dict):
            raise ApiError(400, "body must be a JSON object")
        upload = None
    given = [s for s in SOURCES if (s == "file" and upload is not None) or (s != "file" and raw.get(s))]
    if len(given) != 1:
        raise ApiError(400, "exactly one of url, file or media_token must be provided",
                       {s: ["exactly one of url, file or media_token must be provided"] for s in SOURCES})
    opts, extra = _options(raw)
    if upload is not None:
        _check_upload(upload, "file")
        data, source = upload.data, {"filename": upload.filename}
        kind = _kind_of(data, upload.filename, upload.content_type)
    elif given == ["media_token"]:
        data, name = _redeem(request, raw["media_token"])
        source, kind = {"filename": name}, _kind_of(data, name)
    else:
        url = _loopback_url("url", raw["url"])
        data, ctype = await _fetch(request, url)
        source, kind = {"url": url}, _kind_of(data, urlsplit(url).path, ctype)
    if not kind[0]:
        raise _invalid(given[0], "is not a supported audio, image or video format")
    _charge(request, 1)
    job = _start(request, data, kind, opts, extra, **source)
    if "wait" not in request.headers.get("Prefer", "").lower():
        return web.json_response({"success": True, "item": dfd_items.render(job, _base(request))})
    try:
        await asyncio.wait_for(job.done.wait(), WAIT_LIMIT)
    except TimeoutError:
        raise ApiError(504, "detection did not finish in time; poll GET /detect/{uuid}") from None
    item = dfd_items.render(job, _base(request))
    if job.error:
        raise ApiError(422, f"media could not be analysed: {job.error}", {given[0]: [job.error]}, item=item)
    request.app[JOBS_KEY].counters.results_served += 1
    return web.json_response({"success": True, "item": item})
