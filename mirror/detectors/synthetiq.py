"""SYNTHETIQ VISION: ``Api-Token`` header, post a file, poll ``progress``, read ``values``.

The documented limits (images: 50 MB, 360-4096 x 270-2160 px, JPEG/PNG; videos: 100 MB,
mp4/h264|hevc, webm/vp9, avi/h264|mpeg4) are enforced here, before anything is sent, so a file
the service would refuse costs no submission. The corpus's 256 px faces are below the minimum:
they are rejected unless ``pad`` is set, which centres them on a neutral grey canvas of the
minimum size. Padding changes the bytes, so the verdict is still keyed by the original file's
sha256 and ``raw`` records the padding. Video width, height, duration and fps need a decoder and
are left to the service. Nothing public documents the ``values`` JSON, so the raw body is stored
verbatim and parsed loosely (see ``parse_values``).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
from PIL import Image, UnidentifiedImageError

from mirror.detectors.base import (
    DetectorFailed,
    Media,
    Prepared,
    Rejected,
    SubmissionUnknown,
    Verdict,
    as_float,
    sniff_format,
)
from mirror.detectors.http import DetectorHttp, PolledDetector
from mirror.detectors.options import Pacing, SynthetiqOptions
from mirror.store import write_atomic

__all__ = ["SynthetiqDetector", "parse_values", "IMAGE_LIMITS"]

IMAGE_LIMITS = {"max_bytes": 50 * 2**20, "min_w": 360, "max_w": 4096, "min_h": 270, "max_h": 2160}
_VIDEO_MAX_BYTES = 100 * 2**20
_VIDEO_CODECS: dict[str, dict[bytes, str]] = {
    "mp4": {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"},
    "webm": {b"V_VP9": "vp9"},
    "avi": {b"H264": "h264", b"h264": "h264", b"X264": "h264", b"avc1": "h264", b"FMP4": "mpeg4",
            b"XVID": "mpeg4", b"DIVX": "mpeg4", b"DX50": "mpeg4", b"MP4V": "mpeg4", b"mp4v": "mpeg4"},
}
_MIME = {"jpeg": "image/jpeg", "png": "image/png", "mp4": "video/mp4", "webm": "video/webm", "avi": "video/x-msvideo"}
_FAILED = {"failed", "failure", "error", "errored", "canceled", "cancelled", "aborted", "rejected"}
_PAD_GREY = 128


class SynthetiqDetector(PolledDetector):
    name = "synthetiq"
    remote = True

    def __init__(self, http: DetectorHttp, *, pad: bool = False, processed_movie: bool = False,
                 poll_interval: float = 1.0, deadline: float = 600.0) -> None:
        super().__init__(http, poll_interval=poll_interval, deadline=deadline)
        self.pad = pad
        self.retry_rejected = pad
        self.processed_movie = processed_movie

    @classmethod
    def open(cls, options: SynthetiqOptions, pacing: Pacing) -> SynthetiqDetector:
        """The adapter for ``options``, its requests paced by ``pacing``."""
        http = DetectorHttp.paced(options.url, options.token,
                                  {"Api-Token": options.token.reveal(), "accept": "application/json"}, pacing)
        return cls(http, pad=options.pad, processed_movie=options.processed_movie,
                   poll_interval=options.poll_interval, deadline=options.deadline)

    async def __aenter__(self) -> SynthetiqDetector:
        await self.http.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.__aexit__(*exc)

    # -- client-side limits ----------------------------------------------------------------------
    def prepare(self, media: Media) -> Prepared:
        data = media.path.read_bytes()
        fmt = sniff_format(data[:16])
        if fmt in ("jpeg", "png"):
            return self._prepare_image(media, data, fmt)
        if fmt in _VIDEO_CODECS:
            return self._prepare_video(media, data, fmt)
        raise Rejected("synthetiq accepts JPEG or PNG images and mp4/webm/avi videos; this file is none of them")

    def _prepare_image(self, media: Media, data: bytes, fmt: str) -> Prepared:
        lim = IMAGE_LIMITS
        if len(data) > lim["max_bytes"]:
            raise Rejected(f"synthetiq takes images up to 50 MB; this one is {len(data) / 2**20:.1f} MB")
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width > lim["max_w"] or height > lim["max_h"]:
                    raise Rejected(f"synthetiq takes images up to 4096x2160 px; this one is {width}x{height}")
                if width >= lim["min_w"] and height >= lim["min_h"]:
                    return Prepared(media, data, fmt)
                if not self.pad:
                    raise Rejected(f"synthetiq needs images of at least 360x270 px; this one is {width}x{height} "
                                   "(pass --pad to centre it on a neutral border)")
                return Prepared(media, _pad(img, fmt), fmt,
                                {"padded": {"from": [width, height],
                                            "to": [max(width, lim["min_w"]), max(height, lim["min_h"])]}})
        except (UnidentifiedImageError, OSError) as exc:
            raise Rejected(f"synthetiq: the image cannot be decoded ({exc})") from None

    def _prepare_video(self, media: Media, data: bytes, fmt: str) -> Prepared:
        if len(data) > _VIDEO_MAX_BYTES:
            raise Rejected(f"synthetiq takes videos up to 100 MB; this one is {len(data) / 2**20:.1f} MB")
        codecs = _VIDEO_CODECS[fmt]
        codec = next((name for tag, name in codecs.items() if data.find(tag) >= 0), None)
        if codec is None:
            allowed = "/".join(sorted(set(codecs.values())))
            raise Rejected(f"synthetiq takes {fmt} videos coded as {allowed} only; no such stream found")
        return Prepared(media, data, fmt, {"codec": codec})

    # -- the service -------------------------------------------------------------------------------
    async def submit(self, prepared: Prepared) -> str:
        video = prepared.fmt not in ("jpeg", "png")
        route, field = ("movies", "movie_file") if video else ("images", "image_file")
        ext = {"jpeg": "jpg"}.get(prepared.fmt, prepared.fmt)

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field(field, prepared.data, filename=f"{prepared.media.sha256}.{ext}",
                         content_type=_MIME[prepared.fmt])
            return fd

        params = {"is_processed_movie_file_requested": "true" if self.processed_movie else "false"} if video else None
        body = (await self.http.call("POST", f"/api/v1/{route}", params=params, form=form, submit=True)).json()
        if not isinstance(body, dict) or "hash_" not in body or "pub_fake_detection_process_event_id" not in body:
            raise SubmissionUnknown("synthetiq answered the upload without a result token")
        return json.dumps({"route": route, "hash_": body["hash_"], "event": body["pub_fake_detection_process_event_id"],
                           "processed": bool(video and self.processed_movie), **prepared.notes})

    async def wait(self, job: str, media: Media) -> Verdict:
        handle = json.loads(job)
        route = handle["route"]
        params = {"pub_fake_detection_process_event_id": str(handle["event"]), "hash_": str(handle["hash_"])}
        give_up = self.give_up_at()
        while True:
            body = (await self.http.call("GET", f"/api/v1/{route}/progress", params=params)).json()
            progress = str(body.get("progress") if isinstance(body, dict) else body).strip().lower()
            if progress == "finished":
                break
            if progress in _FAILED:
                raise DetectorFailed(f"synthetiq reported {progress!r} for this file")
            self.overdue(give_up, "synthetiq")
            await asyncio.sleep(self.poll_interval)
        values = await self.http.call("GET", f"/api/v1/{route}/values", params=params)
        text = values.body.decode("utf-8", "replace")
        if handle.get("processed"):
            await self._save_processed(params, media)
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        label, p_fake, faces = parse_values(parsed)
        extra = {k: v for k, v in handle.items() if k not in ("route", "hash_", "event", "processed")}
        raw = json.dumps({"values": parsed, **extra}, ensure_ascii=False) if extra else text
        return Verdict(label=label, p_fake=p_fake, raw=raw, faces=faces)

    async def reconcile(self, media: Media) -> str | None:
        return None         # the service has no listing: a lost upload answer cannot be found again

    async def _save_processed(self, params: dict[str, str], media: Media) -> None:
        """The fake-detected video, saved beside its source by atomic rename."""
        answer = await self.http.call("GET", "/api/v1/movies", params=params, extra_headers={"accept": "video/*"})
        ext = ".webm" if "webm" in answer.content_type or answer.body[:4] == b"\x1a\x45\xdf\xa3" else ".mp4"
        target = media.path.with_name(f"{media.path.stem}.synthetiq-processed{ext}")
        write_atomic(target, answer.body, prefix=".processed-")


def _pad(img: Image.Image, fmt: str) -> bytes:
    """Centre ``img`` on a neutral grey canvas of at least the documented minimum size."""
    width, height = img.size
    size = (max(width, IMAGE_LIMITS["min_w"]), max(height, IMAGE_LIMITS["min_h"]))
    src = img.convert("RGB")
    canvas = Image.new("RGB", size, (_PAD_GREY,) * 3)
    canvas.paste(src, ((size[0] - width) // 2, (size[1] - height) // 2))
    out = io.BytesIO()
    canvas.save(out, format="JPEG" if fmt == "jpeg" else "PNG", **({"quality": 95} if fmt == "jpeg" else {}))
    return out.getvalue()


# -- loose parsing of ``values`` ----------------------------------------------------------------
_FAKE_WORDS = {"fake", "deepfake", "synthetic", "generated", "ai", "spoof", "manipulated", "forged"}
_REAL_WORDS = {"real", "genuine", "authentic", "bonafide", "original", "live", "pristine"}
_LABEL_KEYS = ("label", "result", "verdict", "prediction", "judgement", "judgment", "decision", "class",
               "conclusion", "real_or_fake", "is_fake", "fake", "is_real")
_FAKE_P_KEYS = ("fake_probability", "probability_fake", "p_fake", "fake_prob", "fake_score", "fakeness",
                "fake_confidence")
_REAL_P_KEYS = ("real_probability", "probability_real", "p_real", "real_prob", "real_score", "real_confidence")
_GENERIC_P_KEYS = ("score", "probability", "confidence", "likelihood", "value")
_REGION_KEYS = ("bbox", "box", "bounding_box", "face_region", "region", "rect", "face_box", "x1", "left", "x")


def parse_values(values: Any) -> tuple[str | None, float | None, int | None]:
    """(label, p_fake, faces) from any JSON shape: each object with a verdict or score is a face.

    A verdict outside any face region (a video's summary) wins; otherwise the file is fake when
    any face is. P(fake) is the highest face's; for videos ``faces`` counts face detections. A bare ``score`` or
    ``confidence`` next to a label is read as confidence in that label. Faces are the objects that
    also carry a region; if none do, every verdict-bearing object counts.
    """
    records = [r for r in (_record(d) for d in _dicts(values)) if r is not None]
    if not records:
        return None, None, None
    labels = [r[0] for r in records if r[0] is not None]
    probs = [r[1] for r in records if r[1] is not None]
    with_region = sum(1 for r in records if r[2])
    summary = [r[0] for r in records if not r[2] and r[0] is not None] if with_region else []
    label = summary[0] if summary else ("fake" if "fake" in labels else ("real" if labels else None))
    p_fake = max(probs) if probs else None
    if label is None and p_fake is not None:
        label = "fake" if p_fake >= 0.5 else "real"
    return label, p_fake, with_region or len(records)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _dicts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _dicts(child)


def _record(d: dict[str, Any]) -> tuple[str | None, float | None, bool] | None:
    keys = {str(k).lower(): v for k, v in d.items()}
    label = next((lab for k in _LABEL_KEYS if k in keys and (lab := _label(k, keys[k])) is not None), None)
    p_fake = next((_unit(p) for k in _FAKE_P_KEYS if (p := as_float(keys.get(k))) is not None), None)
    if p_fake is None:
        p_real = next((_unit(p) for k in _REAL_P_KEYS if (p := as_float(keys.get(k))) is not None), None)
        p_fake = None if p_real is None else 1.0 - p_real
    if p_fake is None:
        generic = next((_unit(p) for k in _GENERIC_P_KEYS if (p := as_float(keys.get(k))) is not None), None)
        if generic is not None:
            consistent = label is None or (label == "fake") == (generic >= 0.5)
            p_fake = generic if consistent else 1.0 - generic
    if label is None and p_fake is None:
        return None
    return label, p_fake, any(k in keys for k in _REGION_KEYS)


def _label(key: str, value: Any) -> str | None:
    if isinstance(value, bool):
        return ("real" if value else "fake") if key == "is_real" else ("fake" if value else "real")
    if isinstance(value, str):
        word = value.strip().lower().replace("-", "").replace("_", "")
        if word in _FAKE_WORDS:
            return "fake"
        if word in _REAL_WORDS:
            return "real"
    return None


def _unit(p: float) -> float:
    """Percentages become fractions; anything else is clamped to 0..1."""
    if 1.0 < p <= 100.0:
        p /= 100.0
    return min(1.0, max(0.0, p))
