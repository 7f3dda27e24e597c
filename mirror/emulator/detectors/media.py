"""What a submitted file is, read from its bytes: container sniffing and video header probing.

Both services decide format by content, never by the declared name or type alone (a real service
that trusted ``filename`` would be trivial to fool). Video headers are parsed far enough to enforce
SYNTHETIQ's limits (width, height, fps, duration) for MP4/MOV, WebM/Matroska and AVI. There is no
video decoder in the project's dependencies, so frames are never decoded: video verdicts are
derived from the container bytes (see ``synthetiq`` and ``deepfake_detection``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

IMAGE_KINDS = ("jpeg", "png", "gif", "webp")
VIDEO_KINDS = ("mp4", "mov", "webm", "mkv", "avi", "wmv")
AUDIO_KINDS = ("wav", "mp3", "ogg", "flac", "m4a", "aac", "amr", "3gp")


def sniff(data: bytes) -> str | None:
    """The format of ``data`` from its magic bytes, or None when unrecognised."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF":
        return {b"WEBP": "webp", b"AVI ": "avi", b"WAVE": "wav"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand.startswith(b"M4A"):
            return "m4a"
        if brand.startswith(b"3gp"):
            return "3gp"
        return "mov" if brand == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in data[:64] else "mkv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "wmv"
    for magic, kind in ((b"OggS", "ogg"), (b"fLaC", "flac"), (b"ID3", "mp3"), (b"#!AMR", "amr")):
        if head.startswith(magic):
            return kind
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"
    return None


def media_type(kind: str | None) -> str | None:
    """``image``, ``video`` or ``audio`` for a sniffed format."""
    if kind in IMAGE_KINDS:
        return "image"
    if kind in VIDEO_KINDS:
        return "video"
    if kind in AUDIO_KINDS:
        return "audio"
    return None


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says; any field may be unknown (None)."""

    kind: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration: float | None = None


class BadContainer(ValueError):
    """The bytes claim a container format but its header cannot be read."""


def _mp4_boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    boxes, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise BadContainer(f"truncated MP4 box {kind!r}")
        boxes.append((kind, pos + header, pos + size))
        pos += size
    return boxes


def _probe_mp4(data: bytes, kind: str) -> VideoInfo:
    moov = [b for b in _mp4_boxes(data, 0, len(data)) if b[0] == b"moov"]
    if not moov:
        raise BadContainer("MP4 without a moov box")
    width = height = None
    fps = duration = None
    for box, start, end in _mp4_boxes(data, moov[0][1], moov[0][2]):
        if box == b"mvhd":
            v1 = data[start] == 1
            timescale, length = struct.unpack_from(">IQ" if v1 else ">II", data, start + (20 if v1 else 12))
            duration = length / timescale if timescale else None
        if box != b"trak":
            continue
        track = {k: (s, e) for k, s, e in _mp4_boxes(data, start, end)}
        if b"tkhd" in track:
            s, e = track[b"tkhd"]
            w, h = struct.unpack_from(">II", data, e - 8)
            if w and h:
                width, height = w >> 16, h >> 16
                fps = _mp4_fps(data, *track.get(b"mdia", (s, s)))
    return VideoInfo(kind, width, height, fps, duration)


def _mp4_fps(data: bytes, start: int, end: int) -> float | None:
    """Frames per second of a video track: sample count over the stts total duration."""
    mdia = {k: (s, e) for k, s, e in _mp4_boxes(data, start, end)}
    if b"mdhd" not in mdia or b"minf" not in mdia:
        return None
    s = mdia[b"mdhd"][0]
    timescale = struct.unpack_from(">I", data, s + (20 if data[s] == 1 else 12))[0]
    minf = {k: (s, e) for k, s, e in _mp4_boxes(data, *mdia[b"minf"])}
    stbl = {k: (s, e) for k, s, e in _mp4_boxes(data, *minf.get(b"stbl", (0, 0)))}
    if b"stts" not in stbl or not timescale:
        return None
    s = stbl[b"stts"][0]
    entries = struct.unpack_from(">I", data, s + 4)[0]
    pairs = struct.unpack_from(f">{2 * entries}I", data, s + 8)
    frames, ticks = sum(pairs[0::2]), sum(c * d for c, d in zip(pairs[0::2], pairs[1::2], strict=True))
    return frames * timescale / ticks if ticks else None


def _ebml_vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    first = data[pos]
    length = 9 - first.bit_length()
    if not 1 <= length <= 8 or pos + length > len(data):
        raise BadContainer("bad EBML integer")
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[pos + 1:pos + length]:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        value = -1  # unknown size: runs to the end of the parent
    return value, pos + length


_EBML_MASTERS = {0x18538067, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0}


def _probe_webm(data: bytes, kind: str) -> VideoInfo:
    found: dict[int, bytes] = {}
    stack = [(0, len(data))]
    while stack:
        pos, end = stack.pop()
        while pos < end:
            element, pos = _ebml_vint(data, pos, keep_marker=True)
            size, pos = _ebml_vint(data, pos, keep_marker=False)
            stop = end if size < 0 else min(pos + size, end)
            if element in _EBML_MASTERS:
                stack.append((pos, stop))
            else:
                found.setdefault(element, data[pos:stop])
            pos = stop

    def uint(element: int) -> int | None:
        raw = found.get(element)
        return int.from_bytes(raw, "big") if raw else None

    scale = uint(0x2AD7B1) or 1_000_000
    raw_duration = found.get(0x4489)
    duration = None
    if raw_duration and len(raw_duration) in (4, 8):
        duration = struct.unpack(">f" if len(raw_duration) == 4 else ">d", raw_duration)[0] * scale / 1e9
    frame_ns = uint(0x23E383)
    return VideoInfo(kind, uint(0xB0), uint(0xBA), 1e9 / frame_ns if frame_ns else None, duration)


def _probe_avi(data: bytes, kind: str) -> VideoInfo:
    at = data.find(b"avih", 12, 4096)
    if at < 0 or at + 48 > len(data):
        raise BadContainer("AVI without a main header")
    micro, _, _, _, frames, _, _, _, width, height = struct.unpack_from("<10I", data, at + 8)
    fps = 1e6 / micro if micro else None
    return VideoInfo(kind, width, height, fps, frames / fps if fps else None)


def probe_video(data: bytes, kind: str) -> VideoInfo:
    """Read the header of a sniffed video container; raises ``BadContainer`` when unreadable."""
    probe = {"mp4": _probe_mp4, "mov": _probe_mp4, "webm": _probe_webm, "mkv": _probe_webm, "avi": _probe_avi}
    if kind not in probe:
        return VideoInfo(kind)
    try:
        return probe[kind](data, kind)
    except (struct.error, IndexError, ZeroDivisionError) as err:
        raise BadContainer(f"unreadable {kind} header: {err}") from err


def audio_seconds(data: bytes, kind: str) -> float:
    """Duration of an audio file: exact for WAV, a 128 kbit/s estimate for compressed formats."""
    if kind == "wav":
        at = data.find(b"fmt ", 12, 256)
        if at > 0:
            byte_rate = struct.unpack_from("<I", data, at + 16)[0]
            return max(len(data) - 44, 0) / byte_rate if byte_rate else 0.0
    return len(data) / 16_000
