"""Deepfake Detection request intake: option validation, media typing, upload checks, media tokens.

Split from the routes so each stays readable. Every rule here is from the public docs (see
``deepfake_detection``): allowed extensions and content types, ``frame_length`` 1-4, exactly one
media source, batch archives whose non-media entries are skipped, one-hour secure-upload tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import math
import time
import zipfile
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from mirror.emulator.detectors.media import media_type, sniff
from mirror.emulator.detectors.uploads import Upload, is_loopback_host

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
class ApiError(Exception):
    """An error answer in the API's envelope."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.extra = status, message, errors or {}, extra


def invalid(field: str, msg: str) -> ApiError:
    return ApiError(400, f"{field} {msg}", {field: [msg]})


def parse_bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise invalid(field, "must be a boolean")


def parse_number(field: str, value: Any, integer: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise invalid(field, "must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(field, "must be a number")
    if integer and value != int(value):
        raise invalid(field, "must be an integer")
    return value


def options(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validated options and the unknown fields (echoed as ``extra_params``)."""
    opts: dict[str, Any] = {"visualize": True, "zero_retention_mode": False, "use_ood_detector": False,
                            "intelligence": False, "audio_source_tracing": False, "use_reverse_search": False,
                            "frame_length": 2}
    extra: dict[str, Any] = {}
    for field, value in raw.items():
        if field in SOURCES or value is None:
            continue
        if field in BOOL_OPTIONS:
            opts[field] = parse_bool(field, value)
        elif field == "frame_length":
            length = parse_number(field, value, integer=True)
            if not 1 <= length <= 4:
                raise invalid(field, "must be between 1 and 4")
            opts[field] = int(length)
        elif field in NUMBER_OPTIONS:
            number = parse_number(field, value)
            if number < 0 or (field.startswith("max_") and number == 0):
                raise invalid(field, "must be greater than 0" if field.startswith("max_") else "must be >= 0")
            opts[field] = number
        elif field == "model_types":
            if value not in ("image", "talking_head"):
                raise invalid(field, "must be one of: image, talking_head")
            opts[field] = value
        elif field == "callback_url":
            opts[field] = loopback_url(field, value)
        else:
            extra[field] = value
    if opts.get("audio_source_tracing_enabled"):
        opts["audio_source_tracing"] = True
    if "start_region" in opts and "end_region" in opts and opts["end_region"] <= opts["start_region"]:
        raise invalid("end_region", "must be greater than start_region")
    return opts, extra


def loopback_url(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(field, "must be a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(field, "must be an http(s) URL")
    if not is_loopback_host(parts.hostname):
        raise invalid(field, "must point to 127.0.0.1 or localhost: this emulator never contacts other hosts")
    return value


def kind_of(data: bytes, name: str, content_type: str = "") -> tuple[str, str | None]:
    """(media_type, sniffed format) from the bytes, else the declared type, else the extension."""
    fmt = sniff(data)
    major = content_type.split("/")[0]
    declared = major if major in ("image", "video", "audio") else None
    return media_type(fmt) or declared or EXTENSIONS.get(PurePosixPath(name).suffix.lower(), ""), fmt


def check_upload(upload: Upload, field: str) -> None:
    if PurePosixPath(upload.filename).suffix.lower() not in EXTENSIONS:
        raise invalid(field, f"has an unsupported extension; allowed: {', '.join(sorted(EXTENSIONS))}")
    major = upload.content_type.split("/")[0]
    if major not in ("image", "video", "audio") and upload.content_type != "application/octet-stream":
        raise invalid(field, f"has an unsupported content type {upload.content_type!r}")
    if not upload.data:
        raise invalid(field, "is empty")


def sign_token(secret: bytes, subject: str, ttl: int) -> str:
    """A JWT (HS256) naming an uploaded file, like the live service's one-hour secure-upload token."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {"sub": subject, "exp": int(time.time()) + ttl}
    head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def token_subject(secret: bytes, token: Any) -> str:
    """The upload a valid, unexpired token names; a 400 on ``media_token`` otherwise."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise invalid("media_token", "is invalid or expired")
    head, _, sig = token.rpartition(".")
    want = base64.urlsafe_b64encode(hmac.new(secret, head.encode(), hashlib.sha256).digest()).rstrip(b"=")
    try:
        claims = json.loads(base64.urlsafe_b64decode(head.split(".")[1] + "=="))
    except ValueError:
        claims = {}
    expired = not isinstance(claims, dict) or claims.get("exp", 0) < time.time()
    if not hmac.compare_digest(want, sig.encode()) or expired:
        raise invalid("media_token", "is invalid or expired")
    return str(claims.get("sub"))


def zip_members(upload: Upload) -> list[Upload]:
    """Media entries of a .zip (non-media entries are skipped, as documented)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.data))
    except zipfile.BadZipFile:
        raise invalid("file", "must be a .zip archive of media files") from None
    members = []
    for info in archive.infolist():
        name = PurePosixPath(info.filename).name
        if not info.is_dir() and PurePosixPath(name).suffix.lower() in EXTENSIONS and not name.startswith("."):
            members.append(Upload("files[]", name, "application/octet-stream", archive.read(info)))
    return members
