"""The ``score`` verb's parser and handler, driven with a local python detector."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from mirror.cli.verbs.score import options_from_args
from mirror.cli.verbs.score import register as add_score_parser
from mirror.cli.verbs.score import run as run_score_verb
from mirror.detectors import DeepfakeDetectionOptions, open_scores


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_score_parser(parser.add_subparsers(dest="verb"))
    return parser.parse_args(["score", *argv])


def test_flags_become_adapter_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPFAKE_DETECTION_TOKEN", "dfd_cli_test_token")      # the options carry the account
    args = _parse("d", "kind=fake", "--detector", "deepfake-detection", "--zero-retention", "--visualize",
                  "--use-ood-detector", "--frame-length", "3", "--callback")
    options = options_from_args(args)
    assert isinstance(options, DeepfakeDetectionOptions)
    assert options.zero_retention_mode and options.visualize and options.use_ood_detector
    assert options.frame_length == 3 and options.callback and args.words == ["kind=fake"]
    assert "intelligence" not in options.request()


def test_score_verb_end_to_end(mirrored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "clidet.py").write_text("def f(path):\n    return 0.25\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code = run_score_verb(_parse(str(mirrored), "kind=fake", "--detector", "python:clidet:f", "--json"))
    finally:
        sys.modules.pop("clidet", None)
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["scored"] > 0 and report["exit_code"] == 0
    rows = open_scores(mirrored, "python:clidet:f").to_table().to_pylist()
    assert len(rows) == report["scored"] and {r["p_fake"] for r in rows} == {0.25}
