"""The detector registry and the adapters' options: flags declared by adapters, tokens never shown."""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mirror.cli.verbs.score import register as add_score_parser
from mirror.detectors import (
    Adapter,
    DeepfakeDetectionOptions,
    DetectorOptions,
    LocalOptions,
    SynthetiqOptions,
    Token,
    load_detector,
    registry,
)
from mirror.detectors.options import flag
from mirror.errors import UsageError

# Every adapter flag the score verb had before adapters declared their own: none may go missing.
ADAPTER_FLAGS = {"--deadline", "--poll-interval", "--pad", "--processed-movie", "--zero-retention", "--visualize",
                 "--use-ood-detector", "--intelligence", "--use-reverse-search", "--audio-source-tracing",
                 "--frame-length", "--start-region", "--end-region", "--max-video-fps", "--max-video-secs",
                 "--url-mode", "--base-url", "--api-key-file", "--callback", "--callback-port",
                 "--callback-public-url", "--pool", "--input"}


def _score_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    return add_score_parser(parser.add_subparsers(dest="verb"))


def test_options_never_show_a_token() -> None:
    secret = "stq_do_not_print_me"
    for options in (SynthetiqOptions(url="http://127.0.0.1:1", token=Token(secret), pad=True),
                    DeepfakeDetectionOptions(url="http://127.0.0.1:1", token=Token(secret), visualize=True)):
        assert secret not in repr(options) and secret not in str(options)
        assert "pad=True" in repr(options) or "visualize=True" in repr(options)
        assert options.token.reveal() == secret


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHETIQ_API_TOKEN", raising=False)
    monkeypatch.setenv("SYNTHETIQ_URL", "http://127.0.0.1:1")
    with pytest.raises(UsageError, match="export SYNTHETIQ_API_TOKEN") as caught:
        SynthetiqOptions.from_env(pad=True)
    assert caught.value.exit_code == 3
    monkeypatch.setenv("SYNTHETIQ_API_TOKEN", " stq_from_env \n")
    options = SynthetiqOptions.from_env(pad=True)
    assert options.token.reveal() == "stq_from_env" and options.url == "http://127.0.0.1:1" and options.pad
    monkeypatch.delenv("DEEPFAKE_DETECTION_URL", raising=False)
    monkeypatch.setenv("DEEPFAKE_DETECTION_TOKEN", "dfd_from_env")
    assert DeepfakeDetectionOptions.from_env().url == "https://app.resemble.ai/api/v2"


def test_options_check_their_values_when_built() -> None:
    token = Token("t")
    with pytest.raises(UsageError, match="--frame-length must be 1 to 4"):
        DeepfakeDetectionOptions(token=token, frame_length=9)
    with pytest.raises(UsageError, match="http:// or https://"):
        SynthetiqOptions(url="ftp://host", token=token)
    with pytest.raises(UsageError, match="--pool must be thread or process"):
        LocalOptions(pool="fiber")
    with pytest.raises(UsageError, match="token is empty"):
        SynthetiqOptions(url="http://127.0.0.1:1", token=Token("  "))
    with pytest.raises(UsageError, match="takes LocalOptions, not SynthetiqOptions"):
        load_detector("python:mirror.detectors.reference:spectral_peakiness",
                      SynthetiqOptions(url="http://127.0.0.1:1", token=token))
    unknown = re.escape("use synthetiq, deepfake-detection or python:package.module:function")
    with pytest.raises(UsageError, match=unknown):
        load_detector("nope")


def test_request_options_are_sent_only_when_set() -> None:
    options = DeepfakeDetectionOptions(token=Token("t"), zero_retention_mode=True, frame_length=2,
                                       visualize=False)
    assert options.request() == {"zero_retention_mode": True, "visualize": False, "frame_length": 2}
    assert options.signed_urls() is None
    signing = DeepfakeDetectionOptions(token=Token("t"), url_mode=True, margen_api_key_file="key.txt").signed_urls()
    assert signing is not None and signing.api_key_file == "key.txt" and signing.base_url is None


def test_the_score_verb_takes_its_adapter_flags_from_the_registry() -> None:
    parser = _score_parser()
    declared = {name for adapter in registry._ADAPTERS.values() for spec in adapter.options.flags()
                for name in spec.names}
    options = {s for action in parser._actions for s in action.option_strings}
    assert declared == ADAPTER_FLAGS and ADAPTER_FLAGS <= options
    args = parser.parse_args(["d", "--detector", "python:m:f", "--pool", "process", "--input", "bytes"])
    built = registry.options_from_args(args)
    assert built == LocalOptions(pool="process", input="bytes")
    assert registry.options_from_args(parser.parse_args(["d", "--detector", "python:m:f"])) == LocalOptions()


@dataclass(frozen=True, kw_only=True)
class _ToyOptions(DetectorOptions):
    level: int = field(default=1, metadata=flag("--toy-level", type=int, help="toy: how hard"))


def test_a_new_adapter_registers_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    opened = []

    def open_toy(name: str, options: _ToyOptions, pacing: object) -> object:
        opened.append((name, options.level))
        return load_detector("python:mirror.detectors.reference:spectral_peakiness")

    monkeypatch.setattr(registry, "_ADAPTERS", dict(registry._ADAPTERS))
    registry.register(Adapter("toy", _ToyOptions, open_toy))
    args = _score_parser().parse_args(["d", "--detector", "toy", "--toy-level", "3"])
    load_detector(args.detector, registry.options_from_args(args))
    assert opened == [("toy", 3)] and "toy" in registry.usage()

    @dataclass(frozen=True, kw_only=True)
    class Clash(DetectorOptions):
        other: bool = field(default=False, metadata=flag("--pad", action="store_true", help="clash"))

    registry.register(Adapter("clash", Clash, open_toy))
    with pytest.raises(ValueError, match="--pad already sets 'pad'"):
        _score_parser()


def test_demo_hands_credentials_to_the_options_not_the_environment(
        mirrored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the demo scores, the detector tokens are nowhere in the process environment."""
    from mirror.cli.verbs import demo

    names = ("SYNTHETIQ_URL", "SYNTHETIQ_API_TOKEN", "DEEPFAKE_DETECTION_URL", "DEEPFAKE_DETECTION_TOKEN")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    module = f"envspy_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "import os\nSEEN = set()\n\ndef spy(path):\n"
        f"    SEEN.update(k for k in {names!r} if k in os.environ)\n    return 0.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(demo, "REFERENCE_DETECTOR", f"python:{module}:spy")
    try:
        assert demo._score_and_report(mirrored) == 0
        assert sys.modules[module].SEEN == set()
    finally:
        sys.modules.pop(module, None)
    assert not set(names) & set(os.environ)
    assert (mirrored / "reports" / "demo" / "report.html").exists()
