"""The Deepfake Detection API (Resemble "Detect"): Bearer token, ``POST /detect``, poll or callback.

A file goes up as multipart ``file`` named ``<sha256>.<ext>``, or, with ``url_mode``, as a fresh
Margen signed URL that the service fetches itself. Naming uploads by their hash is what makes a
lost submit answer recoverable: ``reconcile`` pages through ``List Detects`` and adopts the
detection whose ``filename`` is ours instead of uploading again. Request options (``visualize``,
``zero_retention_mode``, ``use_ood_detector``, ``frame_length``...) pass through unchanged;
``score`` is read as P(fake) ("higher = more likely synthetic") and numbers sent as text are parsed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

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
from mirror.detectors.callback import CallbackListener
from mirror.detectors.http import DetectorHttp, PolledDetector
from mirror.detectors.options import DeepfakeDetectionOptions, Pacing
from mirror.errors import TransportError, UsageError

__all__ = ["DeepfakeDetectionDetector", "parse_item", "list_detects"]

_MAX_BYTES = 150 * 2**20
_MIME = {"jpeg": "image/jpeg", "png": "image/png", "mp4": "video/mp4", "webm": "video/webm", "avi": "video/x-msvideo"}


class DeepfakeDetectionDetector(PolledDetector):
    name = "deepfake-detection"
    remote = True
    retry_rejected = False

    def __init__(self, http: DetectorHttp, *, request: dict[str, Any], url_mode: bool = False,
                 callback: CallbackListener | None = None, poll_interval: float = 1.0,
                 deadline: float = 600.0) -> None:
        super().__init__(http, poll_interval=poll_interval, deadline=deadline)
        self.request = request
        self.url_mode = url_mode
        self.callback = callback

    @classmethod
    def open(cls, options: DeepfakeDetectionOptions, pacing: Pacing) -> DeepfakeDetectionDetector:
        """The adapter for ``options``, its requests paced by ``pacing``."""
        http = DetectorHttp.paced(options.url, options.token,
                                  {"Authorization": f"Bearer {options.token.reveal()}"}, pacing)
        callback = None
        if options.callback:
            callback = CallbackListener(port=options.callback_port, public_base=options.callback_public_url)
        return cls(http, request=options.request(), url_mode=options.url_mode, callback=callback,
                   poll_interval=options.poll_interval, deadline=options.deadline)

    async def __aenter__(self) -> DeepfakeDetectionDetector:
        await self.http.__aenter__()
        if self.callback is not None:
            await self.callback.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.callback is not None:
            await self.callback.__aexit__(*exc)
        await self.http.__aexit__(*exc)

    def prepare(self, media: Media) -> Prepared:
        size = media.path.stat().st_size
        if size > _MAX_BYTES:
            raise Rejected(f"deepfake-detection takes files up to 150 MB; this one is {size / 2**20:.1f} MB")
        if self.url_mode:
            if media.signed_url is None:
                raise UsageError("url mode needs MARGEN_API_KEY to sign fresh URLs for the mirrored items")
            return Prepared(media, b"", "url")
        data = media.path.read_bytes()
        fmt = sniff_format(data[:16])
        if fmt is None:
            raise Rejected("deepfake-detection: not a JPEG, PNG, mp4, webm or avi file")
        return Prepared(media, data, fmt)

    async def submit(self, prepared: Prepared) -> str:
        options = dict(self.request)
        if self.callback is not None:
            options["callback_url"] = self.callback.url
        if prepared.fmt == "url":
            assert prepared.media.signed_url is not None
            answer = await self.http.call("POST", "/detect", json_body={"url": await prepared.media.signed_url(),
                                                                        **options}, submit=True)
        else:
            ext = {"jpeg": "jpg"}.get(prepared.fmt, prepared.fmt)

            def form() -> aiohttp.FormData:
                fd = aiohttp.FormData()
                for key, value in options.items():
                    fd.add_field(key, json.dumps(value) if isinstance(value, bool) else str(value))
                fd.add_field("file", prepared.data, filename=f"{prepared.media.sha256}.{ext}",
                             content_type=_MIME[prepared.fmt])
                return fd

            answer = await self.http.call("POST", "/detect", form=form, submit=True)
        try:
            uuid = _item(answer.json()).get("uuid")
        except TransportError:
            uuid = None
        if not isinstance(uuid, str):
            raise SubmissionUnknown("deepfake-detection accepted the file but returned no uuid")
        return uuid

    async def wait(self, job: str, media: Media) -> Verdict:
        give_up = self.give_up_at()
        while True:
            item: dict[str, Any] | None = None
            if self.callback is not None:
                item = await self.callback.wait_for(job, within=max(self.poll_interval * 5, 2.0))
            if item is None:
                item = _item((await self.http.call("GET", f"/detect/{job}")).json())
            status = str(item.get("status", "")).lower()
            if status == "completed":
                return parse_item(item)
            if status == "failed":
                raise DetectorFailed(f"deepfake-detection failed: {str(item.get('error_message') or '')[:200]}")
            self.overdue(give_up, "deepfake-detection")
            if self.callback is None:
                await asyncio.sleep(self.poll_interval)

    async def reconcile(self, media: Media) -> str | None:
        """The uuid of an upload named ``<sha256>.*`` already in the account, if there is one."""
        if self.url_mode:
            return None
        async for item in list_detects(self.http):
            name = item.get("filename")
            if isinstance(name, str) and name.rsplit(".", 1)[0] == media.sha256 and isinstance(item.get("uuid"), str):
                return str(item["uuid"])
        return None


async def list_detects(http: DetectorHttp, page_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
    """Every detection of the account, page by page (``page`` >= 1, ``page_size`` 10-1000)."""
    page = 1
    while True:
        body = (await http.call("GET", "/detect", params={"page": str(page), "page_size": str(page_size)})).json()
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise TransportError("deepfake-detection: List Detects answered without an items list")
        for item in body["items"]:
            if isinstance(item, dict):
                yield item
        pages = as_float(body.get("num_pages"))
        if not body["items"] or (pages is not None and page >= pages):
            return
        page += 1


def parse_item(item: dict[str, Any]) -> Verdict:
    """Label, P(fake) and faces from ``image_metrics`` or ``video_metrics``; the whole item is ``raw``."""
    metrics = item.get("image_metrics") or item.get("video_metrics") or item.get("metrics") or {}
    if not isinstance(metrics, dict):
        metrics = {}
    label = metrics.get("label")
    label = label.strip().lower() if isinstance(label, str) and label.strip() else None
    score = as_float(metrics.get("score") if not isinstance(metrics.get("score"), list) else
                     metrics.get("aggregated_score"))
    p_fake = None if score is None else min(1.0, max(0.0, score / 100.0 if 1.0 < score <= 100.0 else score))
    children = metrics.get("children")
    faces = None
    if isinstance(children, list):
        faces = sum(1 for c in children if isinstance(c, dict) and "face" in str(c.get("type", "")).lower()) or None
    return Verdict(label=label, p_fake=p_fake, raw=json.dumps(item, ensure_ascii=False), faces=faces)


def _item(body: Any) -> dict[str, Any]:
    item = body.get("item") if isinstance(body, dict) else None
    if not isinstance(item, dict):
        raise TransportError("deepfake-detection answered without an item object")
    return item
