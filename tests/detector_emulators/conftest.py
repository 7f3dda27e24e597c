"""Builders of real media for the detector-emulator tests: corpus faces, padded PNGs, video containers.

Containers are built byte by byte (only their headers matter: the emulators never decode video), so
the tests need no encoder and every limit can be hit exactly.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import pytest
from PIL import Image

from mirror.emulator.images import GENERATORS, SCENES, SKIN_TONES, ImageSpec, render_jpeg


def face(i: int, kind: str, perturbation: str = "clean") -> bytes:
    """Corpus item ``i`` as the Margen emulator serves it (256x256 JPEG)."""
    fake = kind == "fake"
    return render_jpeg(ImageSpec(
        seed=11, base_key=f"det-{i}", identity_key=f"person-{i}", kind=kind, skin_tone=SKIN_TONES[i % 6],
        gender=("female", "male")[i % 2], generator=GENERATORS[i % 4] if fake else None,
        scene=SCENES[i % 3] if fake else None, perturbation=perturbation))


def padded(data: bytes, size: tuple[int, int] = (360, 270), fmt: str = "PNG") -> bytes:
    """A small corpus image centred on a black canvas of ``size`` (what a client does for SYNTHETIQ)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    canvas = Image.new("RGB", size)
    canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def blank(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 120, 120)).save(buf, fmt)
    return buf.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4(width: int = 640, height: int = 480, fps: float = 30.0, seconds: float = 3.0) -> bytes:
    """An MP4 whose moov says what we ask (mvhd duration, tkhd size, mdhd + stts frame rate)."""
    timescale, frames = 1000, max(1, round(fps * seconds))
    delta = round(timescale / fps)
    mvhd = struct.pack(">4xIIII", 0, 0, timescale, round(seconds * timescale)) + bytes(80)
    tkhd = struct.pack(">4xIIII4xI", 0, 0, 1, 0, round(seconds * timescale)) + bytes(52) + struct.pack(
        ">II", width << 16, height << 16)
    mdhd = struct.pack(">4xIIII", 0, 0, timescale, frames * delta) + bytes(4)
    stts = struct.pack(">4xIII", 1, frames, delta)
    stbl = _box(b"stbl", _box(b"stts", stts))
    trak = _box(b"trak", _box(b"tkhd", tkhd) + _box(b"mdia", _box(b"mdhd", mdhd) + _box(b"minf", stbl)))
    return (_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41") + _box(b"moov", _box(b"mvhd", mvhd) + trak)
            + _box(b"mdat", bytes(range(256)) * 16))


def avi(width: int = 640, height: int = 480, fps: float = 25.0, seconds: float = 2.0) -> bytes:
    avih = struct.pack("<10I", round(1e6 / fps), 0, 0, 0, round(fps * seconds), 0, 1, 0, width, height) + bytes(16)
    hdrl = b"hdrl" + b"avih" + struct.pack("<I", len(avih)) + avih
    body = b"AVI " + b"LIST" + struct.pack("<I", len(hdrl)) + hdrl + b"JUNK" + struct.pack("<I", 64) + bytes(64)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _ebml(element: int, payload: bytes) -> bytes:
    ident = element.to_bytes((element.bit_length() + 7) // 8, "big")
    return ident + b"\x01" + len(payload).to_bytes(7, "big") + payload


def webm(width: int = 640, height: int = 480, fps: float = 30.0, seconds: float = 2.0) -> bytes:
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm"))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big")) + _ebml(0x4489, struct.pack(
        ">d", seconds * 1000)))
    video = _ebml(0xE0, _ebml(0xB0, width.to_bytes(2, "big")) + _ebml(0xBA, height.to_bytes(2, "big")))
    track = _ebml(0xAE, _ebml(0x23E383, round(1e9 / fps).to_bytes(4, "big")) + video)
    return header + _ebml(0x18538067, info + _ebml(0x1654AE6B, track) + _ebml(0x1F43B675, bytes(512)))


def wav(seconds: float = 4.0, rate: int = 8000) -> bytes:
    samples = bytes(int(seconds * rate) * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture(scope="session")
def media() -> dict[str, Callable[..., bytes]]:
    """The builders, as a fixture so test modules need no import path tricks."""
    return {"face": face, "padded": padded, "blank": blank, "mp4": mp4, "avi": avi, "webm": webm, "wav": wav}
