"""Deepfake Detection payloads: the analysis run per job and the ``item`` objects built from it.

Shapes follow deepfake-detection-api.txt (``BaseDetectionResult`` plus ``image_metrics``,
``video_metrics`` and audio ``metrics``). Images are scored from their pixels by ``BandDetector``;
video and audio are never decoded (no decoder in the dependencies), so their verdicts are derived
from the bytes' hash, plausibly structured (segments of ``frame_length`` seconds) but not evidence.
Labels are lowercase at the top level and capitalised in video ``conclusion`` fields, as both forms
are seen from the live service; audio scores are strings, as the schema says.
"""

from __future__ import annotations

import hashlib
import io
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from mirror.emulator.detectors.jobs import Job
from mirror.emulator.detectors.media import audio_seconds, probe_video
from mirror.emulator.detectors.spectral import BandDetector, decode_luma


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, like the live API's timestamps."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def _certainty(score: float) -> tuple[float, str]:
    c = round(abs(score - 0.5) * 2.0, 4)
    return c, f"{c * 100:.1f}%"


def _heatmap(data: bytes) -> bytes:
    """A PNG of local high-frequency energy: where a periodic trace (or sharp texture) lives."""
    luma = decode_luma(data)
    grey = Image.fromarray(np.clip(luma, 0, 255).astype(np.uint8))
    detail = np.abs(luma - np.asarray(grey.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32))
    coarse = Image.fromarray(np.clip(detail * 16.0, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6))
    energy = np.asarray(coarse, dtype=np.float32)
    scaled = 255.0 * energy / max(float(energy.max()), 1e-6)
    buf = io.BytesIO()
    Image.fromarray(scaled.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _hashed_scores(data: bytes, salt: str, count: int) -> list[float]:
    """Per-segment P(fake) for media that are not decoded: a per-file level plus per-segment wobble."""
    digest = hashlib.sha256(salt.encode() + b"\x1f" + data).digest()
    level = (digest[0] / 255.0 - 0.5) * 7.0
    return [1.0 / (1.0 + math.exp(-(level + (digest[1 + i % 31] / 255.0 - 0.5) * 2.5))) for i in range(count)]


def analyse(data: bytes, media_type: str, kind: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run in a worker thread: everything the finished item needs, computed once."""
    if media_type == "image":
        verdict = BandDetector(salt=f"deepfake-detection/{seed}").analyse(data)
        return {"p_fake": verdict.p_fake, "face_box": verdict.face_box, "seconds": 0.0,
                "heatmap": _heatmap(data) if options["visualize"] else None}
    seconds = probe_video(data, kind).duration if media_type == "video" else audio_seconds(data, kind)
    seconds = seconds or len(data) / 250_000
    start = options.get("start_region") or 0.0
    end = min(options.get("end_region") or seconds, seconds)
    if media_type == "video" and options.get("max_video_secs"):
        end = min(end, start + options["max_video_secs"])
    windows = max(1, min(math.ceil(max(end - start, 0.0) / options["frame_length"]), 600))
    return {"seconds": seconds, "start": start, "frame_length": options["frame_length"],
            "video": _hashed_scores(data, f"video/{seed}", windows) if media_type == "video" else None,
            "audio": _hashed_scores(data, f"audio/{seed}", windows), "heatmap": None}


def _audio_metrics(result: dict[str, Any]) -> dict[str, Any]:
    scores = result["audio"]
    aggregated = sum(scores) / len(scores)
    consistency = 1.0 - float(np.std(scores)) * 2.0
    return {"label": "fake" if aggregated >= 0.5 else "real", "score": [f"{s:.4f}" for s in scores],
            "consistency": f"{max(consistency, 0.0):.4f}", "aggregated_score": f"{aggregated:.4f}"}


def _video_metrics(result: dict[str, Any], visualize: bool) -> dict[str, Any]:
    segments = []
    for i, score in enumerate(result["video"]):
        c, pct = _certainty(score)
        face_c, face_pct = _certainty(min(max(score + 0.03, 0.0), 1.0))
        conclusion = "Fake" if score >= 0.5 else "Real"
        segments.append({"type": "Segment", "conclusion": conclusion, "score": round(score, 4), "certainty": c,
                         "certainty (%)": pct, "timestamp": round(result["start"] + i * result["frame_length"], 3),
                         "children": [{"type": "Face", "conclusion": conclusion, "score": round(score, 4),
                                       "certainty": face_c, "certainty (%)": face_pct}]})
    overall = max(s["score"] for s in segments)
    c, pct = _certainty(overall)
    label = "fake" if overall >= 0.5 else "real"
    metrics: dict[str, Any] = {"label": label, "score": overall, "certainty": c, "children": [
        {"type": "VideoResult", "conclusion": label.capitalize(), "score": overall, "certainty": c,
         "certainty (%)": pct, "children": segments}]}
    if visualize:
        metrics["treeview"] = f"VideoResult: {label.capitalize()} ({pct})\n" + "\n".join(
            f"  Segment @{s['timestamp']}s: {s['conclusion']} ({s['certainty (%)']})" for s in segments)
    return metrics


def _image_metrics(job: Job, result: dict[str, Any], heatmap_url: str) -> dict[str, Any]:
    p = result["p_fake"]
    label = "fake" if p >= 0.5 else "real"
    children = []
    if result["face_box"] is not None:
        x, y, w, h = result["face_box"]
        children.append({"type": "face", "label": label, "score": round(p, 4), "bbox": [x, y, w, h]})
    metrics: dict[str, Any] = {"type": "ImageAnalysis", "label": label, "image": heatmap_url,
                               "score": round(p, 4), "children": children}
    if heatmap_url:
        metrics["ifl"] = {"score": round(min(p * 1.05, 1.0), 4), "heatmap": heatmap_url}
    if job.meta["options"].get("use_reverse_search"):
        metrics["reverse_image_search_sources"] = []  # offline: no web search, so no matches
    return metrics


def render(job: Job, base_url: str) -> dict[str, Any]:
    """The ``item`` of one detection as ``GET /detect/{uuid}`` returns it right now."""
    meta, options = job.meta, job.meta["options"]
    status = "processing" if not job.finished else ("failed" if job.error else "completed")
    redacted = bool(options["zero_retention_mode"] and job.finished)
    item: dict[str, Any] = {
        "uuid": job.id, "created_at": iso(job.submitted), "updated_at": iso(job.finished_at or job.submitted),
        "duration": "0.0", "media_type": meta["media_type"], "status": status,
        "zero_retention_mode": options["zero_retention_mode"], "media_redacted": redacted,
        "media_deleted": redacted, "file_deleted_at": iso(job.finished_at) if redacted else None,
        "visualize": options["visualize"], "audio_source_tracing_enabled": options["audio_source_tracing"],
        "use_ood_detector": options["use_ood_detector"], "extra_params": meta["extra_params"],
        "intelligence": None, "audio_source_tracing": None,
    }
    if meta.get("url"):
        item["url"] = item["audio_url"] = "[redacted]" if redacted else meta["url"]
    if meta.get("filename"):
        item["filename"] = "[redacted]" if redacted else meta["filename"]
    if status == "processing":
        if meta["media_type"] != "image":
            item["metrics"] = {}
        return item
    if job.error:
        item["error_message"] = job.error
        return item
    result = job.result
    item["duration"] = f"{result['seconds']:.1f}"
    visual = options["visualize"] and not redacted
    if meta["media_type"] == "image":
        heatmap = f"{base_url}/_media/{job.id}/heatmap.png" if visual and result["heatmap"] else ""
        item["image_metrics"] = _image_metrics(job, result, heatmap)
    else:
        item["metrics"] = _audio_metrics(result)
        if meta["media_type"] == "video":
            item["video_metrics"] = _video_metrics(result, visual)
    return item
