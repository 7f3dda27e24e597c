"""One interface for every detector: client-side checks, a submission, a verdict.

A submission is split in two on purpose. ``submit`` returns the remote job handle as soon as the
service acknowledges the file, so the scoring run can journal it before anything else can go
wrong; ``wait`` turns a handle into a verdict and can be called again by a later run after a
crash. That split is what lets a restarted run poll an existing job instead of paying (in quota,
money or a second data-retention event) for the same file twice.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mirror.errors import EXIT_AUTH, EXIT_USAGE, MirrorError, TransportError, UsageError

__all__ = ["Media", "Prepared", "Verdict", "Detector", "Token", "Rejected", "DetectorFailed",
           "SubmissionUnknown", "MissingCredentials", "env_credentials", "sniff_format", "as_float"]


class Rejected(MirrorError):
    """A file the detector's documented limits refuse; decided client-side, nothing was sent."""

    exit_code = EXIT_USAGE


class DetectorFailed(TransportError):
    """The service took the file but reported a failure, or no verdict came before the deadline."""


class SubmissionUnknown(TransportError):
    """The submit request may or may not have reached the service (lost answer, timeout)."""


class MissingCredentials(UsageError):
    """No token for a detector service: nothing was sent."""

    exit_code = EXIT_AUTH


@dataclass(frozen=True)
class Media:
    """One file to score. ``signed_url`` fetches a fresh Margen URL, for detectors that take a URL."""

    item_id: str
    sha256: str
    path: Path
    signed_url: Callable[[], Awaitable[str]] | None = None


@dataclass(frozen=True)
class Prepared:
    """What will actually be sent: possibly padded bytes, plus notes kept in the row's ``raw``."""

    media: Media
    data: bytes
    fmt: str                    # "jpeg", "png", "mp4", "webm", "avi"
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    label: str | None           # "fake" | "real", lower-cased, when the detector says
    p_fake: float | None        # 0..1, fake = positive class
    raw: str                    # the detector's result body as text (JSON when it was JSON)
    faces: int | None = None


class Detector(Protocol):
    """What ``score`` needs from an adapter. Remote detectors journal their job handles."""

    name: str
    remote: bool                # False: local, free and deterministic, so never journaled
    retry_rejected: bool        # True when options (``pad``) may now accept what was rejected

    async def __aenter__(self) -> Detector: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def prepare(self, media: Media) -> Prepared:
        """Read and check the file against the documented limits; raises Rejected."""

    async def submit(self, prepared: Prepared) -> str:
        """Send the file; returns the job handle (text). Raises SubmissionUnknown when unsure."""

    async def wait(self, job: str, media: Media) -> Verdict:
        """Poll (or await a callback) until the job has a verdict; raises DetectorFailed."""

    async def reconcile(self, media: Media) -> str | None:
        """Find the job of a submission whose answer was lost, or None when the service cannot tell."""


class Token:
    """A detector credential: kept out of every repr, message and file."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.strip()

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Token(***)"

    __str__ = __repr__


def env_credentials(token_var: str, url_var: str, default_url: str | None = None) -> tuple[Token, str]:
    """The token and base URL from the environment only: never a flag, never a file."""
    token = os.environ.get(token_var, "").strip()
    if not token:
        raise MissingCredentials(f"no detector token: export {token_var}=...")
    url = (os.environ.get(url_var) or default_url or "").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"set {url_var} to the detector's base URL (http:// or https://)")
    return Token(token), url


def sniff_format(head: bytes) -> str | None:
    """The container from its magic bytes: extensions and content types are not trusted."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    return None


def as_float(value: Any) -> float | None:
    """A number the service may send as a number or as text ("0.93", "93%"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        scale = 100.0 if text.endswith("%") else 1.0
        try:
            return float(text.rstrip("%")) / scale
        except ValueError:
            return None
    return None
