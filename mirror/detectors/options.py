"""What a user can set on each detector adapter: one frozen dataclass per adapter, and its flags.

The light half of every adapter: it imports neither aiohttp nor PIL, so the CLI can build the
``score`` verb's flags from these classes for every verb at no cost. A field that is a flag says
so in its metadata (``flag(...)``); the adapter's flags are its own, and the CLI only asks the
registry (``registry.add_arguments``). Credentials come from the environment only
(``from_env``) or from a caller that builds the object itself; no flag takes a secret, and no
repr shows a token.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

from mirror.config import Retries, Timeouts
from mirror.detectors.base import MissingCredentials, Token, env_credentials
from mirror.errors import UsageError

__all__ = ["Pacing", "Flag", "flag", "DetectorOptions", "SignedUrls", "SynthetiqOptions",
           "DeepfakeDetectionOptions", "LocalOptions", "DFD_DEFAULT_URL"]

DFD_DEFAULT_URL = "https://app.resemble.ai/api/v2"


@dataclass(frozen=True)
class Pacing:
    """How hard one run pushes a detector; set by the run (``score``), the same for every adapter."""

    rate_limit: float = 60.0        # requests per minute, polls included
    concurrency: int = 8            # files in flight: HTTP connections, or a local pool's workers
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)


@dataclass(frozen=True)
class Flag:
    """One command-line flag of an adapter: ``parser.add_argument(*names, dest=dest, **kwargs)``."""

    names: tuple[str, ...]
    dest: str
    kwargs: dict[str, Any]


def flag(*names: str, **kwargs: Any) -> dict[str, Any]:
    """Field metadata: this field is set by the flag ``names`` (argparse keywords in ``kwargs``)."""
    return {"flag": (names, kwargs)}


def _poll_interval() -> Any:
    """The polling fields both detector services share: the same flag, so one flag on the command line."""
    return field(default=1.0, metadata=flag("--poll-interval", type=float, metavar="S",
                                            help="seconds between progress polls (default 1)"))


def _deadline() -> Any:
    return field(default=600.0, metadata=flag("--deadline", type=float, metavar="S",
                                              help="give up waiting for one verdict after S s (default 600; "
                                                   "the next run keeps polling)"))


class DetectorOptions:
    """The base of every adapter's options: flags from field metadata, credentials from the environment."""

    @classmethod
    def from_env(cls, **values: Any) -> Self:
        """The options with ``values`` set and credentials, if the adapter has any, from the environment."""
        return cls(**values)

    @classmethod
    def flags(cls) -> list[Flag]:
        """The adapter's flags, in field order."""
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "flag" in f.metadata:
                names, kwargs = f.metadata["flag"]
                out.append(Flag(tuple(names), f.name, dict(kwargs)))
        return out

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """The options from parsed flags: only flags that were given, so unset fields keep their defaults."""
        given = {f.dest: getattr(args, f.dest) for f in cls.flags() if getattr(args, f.dest, None) is not None}
        return cls.from_env(**given)

    def signed_urls(self) -> SignedUrls | None:
        """Where fresh Margen signed URLs come from, when the detector fetches the files itself."""
        return None


@dataclass(frozen=True)
class SignedUrls:
    """The Margen account that signs URLs for a detector in URL mode (the key: file or environment)."""

    base_url: str | None = None         # None: $MARGEN_BASE_URL or the default host
    api_key_file: str | None = None     # None: $MARGEN_API_KEY
    rate_limit: float = 60.0


def _token(value: Token | str, service: str) -> Token:
    token = value if isinstance(value, Token) else Token(value)
    if not token.reveal():
        raise MissingCredentials(f"{service}: the token is empty")
    return token


def _url(value: str, service: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise UsageError(f"{service}: the base URL must start with http:// or https://")
    return value.rstrip("/")


@dataclass(frozen=True, kw_only=True)
class SynthetiqOptions(DetectorOptions):
    """SYNTHETIQ VISION: base URL and ``Api-Token`` ($SYNTHETIQ_URL, $SYNTHETIQ_API_TOKEN)."""

    url: str
    token: Token = field(repr=False)
    deadline: float = _deadline()
    poll_interval: float = _poll_interval()
    pad: bool = field(default=False, metadata=flag(
        "--pad", action="store_true", help="synthetiq: centre images below 360x270 on a neutral grey border instead "
                                           "of rejecting them (scores stay keyed by the original file)"))
    processed_movie: bool = field(default=False, metadata=flag(
        "--processed-movie", action="store_true", help="synthetiq: also fetch the fake-detected video, saved beside "
                                                       "its source"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", _token(self.token, "synthetiq"))
        object.__setattr__(self, "url", _url(self.url, "synthetiq"))

    @classmethod
    def from_env(cls, **values: Any) -> Self:
        token, url = env_credentials("SYNTHETIQ_API_TOKEN", "SYNTHETIQ_URL")
        return cls(url=url, token=token, **values)


# The Deepfake Detection request options, sent as given: field -> flag, type, help.
_DFD_SWITCHES = {
    "zero_retention_mode": ("--zero-retention", "ask the service to delete the media after analysis"),
    "visualize": ("--visualize", "ask for heatmaps / visualizations"),
    "use_ood_detector": ("--use-ood-detector", "enable the out-of-distribution detector"),
    "intelligence": ("--intelligence", "ask for the intelligence description"),
    "use_reverse_search": ("--use-reverse-search", "reverse image search (images only)"),
    "audio_source_tracing": ("--audio-source-tracing", "audio source tracing (audio/video)"),
}


def _switch(name: str) -> Any:
    option, text = _DFD_SWITCHES[name]
    return field(default=None, metadata=flag(option, action="store_true", help=f"deepfake-detection: {text}"))


def _number(option: str, kind: type) -> Any:
    return field(default=None, metadata=flag(option, type=kind, metavar="N",
                                             help="deepfake-detection request option"))


@dataclass(frozen=True, kw_only=True)
class DeepfakeDetectionOptions(DetectorOptions):
    """Deepfake Detection: Bearer token, base URL ($DEEPFAKE_DETECTION_TOKEN, $DEEPFAKE_DETECTION_URL).

    The request options (``visualize`` ... ``zero_retention_mode``) are sent only when set, so an
    unset one keeps the service's default.
    """

    url: str = DFD_DEFAULT_URL
    token: Token = field(repr=False)
    deadline: float = _deadline()
    poll_interval: float = _poll_interval()
    zero_retention_mode: bool | None = _switch("zero_retention_mode")
    visualize: bool | None = _switch("visualize")
    use_ood_detector: bool | None = _switch("use_ood_detector")
    intelligence: bool | None = _switch("intelligence")
    use_reverse_search: bool | None = _switch("use_reverse_search")
    audio_source_tracing: bool | None = _switch("audio_source_tracing")
    frame_length: int | None = _number("--frame-length", int)
    start_region: float | None = _number("--start-region", float)
    end_region: float | None = _number("--end-region", float)
    max_video_fps: float | None = _number("--max-video-fps", float)
    max_video_secs: float | None = _number("--max-video-secs", float)
    url_mode: bool = field(default=False, metadata=flag(
        "--url-mode", action="store_true", help="deepfake-detection: send a fresh Margen signed URL instead of the "
                                                "file (needs MARGEN_API_KEY; free for items the account owns)"))
    margen_base_url: str | None = field(default=None, metadata=flag(
        "--base-url", metavar="BASE_URL", help="Margen API host for --url-mode (default: $MARGEN_BASE_URL)"))
    margen_api_key_file: str | None = field(default=None, metadata=flag(
        "--api-key-file", metavar="FILE", help="Margen key file for --url-mode"))
    margen_rate_limit: float = 60.0
    callback: bool = field(default=False, metadata=flag(
        "--callback", action="store_true", help="deepfake-detection: receive verdicts on a local callback listener "
                                                "(polling stays the fallback)"))
    callback_port: int = field(default=0, metadata=flag(
        "--callback-port", type=int, metavar="P", help="listener port (default: any)"))
    callback_public_url: str | None = field(default=None, metadata=flag(
        "--callback-public-url", metavar="URL", help="the listener's address as the service sees it"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", _token(self.token, "deepfake-detection"))
        object.__setattr__(self, "url", _url(self.url, "deepfake-detection"))
        if self.frame_length is not None and not 1 <= self.frame_length <= 4:
            raise UsageError("--frame-length must be 1 to 4")

    @classmethod
    def from_env(cls, **values: Any) -> Self:
        token, url = env_credentials("DEEPFAKE_DETECTION_TOKEN", "DEEPFAKE_DETECTION_URL", DFD_DEFAULT_URL)
        return cls(url=url, token=token, **values)

    def request(self) -> dict[str, Any]:
        """The request options to send with every submission: the ones that were set."""
        names = (*_DFD_SWITCHES, "frame_length", "start_region", "end_region", "max_video_fps", "max_video_secs")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def signed_urls(self) -> SignedUrls | None:
        if not self.url_mode:
            return None
        return SignedUrls(self.margen_base_url, self.margen_api_key_file, self.margen_rate_limit)


@dataclass(frozen=True, kw_only=True)
class LocalOptions(DetectorOptions):
    """A user's ``python:package.module:function``: which pool runs it and what it receives."""

    pool: str = field(default="thread", metadata=flag(
        "--pool", choices=("thread", "process"), help="local detector: worker pool"))
    input: str | None = field(default=None, metadata=flag(
        "--input", choices=("path", "bytes"), help="local detector: what the function receives (default: from its "
                                                   "annotation, else a path)"))

    def __post_init__(self) -> None:
        if self.pool not in ("thread", "process"):
            raise UsageError("--pool must be thread or process")
        if self.input not in (None, "path", "bytes"):
            raise UsageError("--input must be path or bytes")
