"""Detector adapters behind one interface, and the ``score`` run that mirrors their verdicts.

    from mirror.detectors import SynthetiqOptions, run_score, open_scores
    report = await run_score("data/faces", "deepfake-detection", filters={"kind": ("fake",)})
    report = await run_score("data/faces", "synthetiq", options=SynthetiqOptions.from_env(pad=True))
    scores = open_scores("data/faces", "deepfake-detection").to_table()   # join on ``id``

The interface, the options and the registry load at once and cheaply; the run, the Parquet
readers and the HTTP clients load on first use, so the CLI can build every verb's flags from
``registry`` without pulling in aiohttp and pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirror.detectors.base import (
    Detector,
    DetectorFailed,
    Media,
    Prepared,
    Rejected,
    SubmissionUnknown,
    Token,
    Verdict,
)
from mirror.detectors.options import (
    DeepfakeDetectionOptions,
    DetectorOptions,
    LocalOptions,
    Pacing,
    SynthetiqOptions,
)
from mirror.detectors.registry import Adapter, load_detector, register
from mirror.lazy import lazy_exports

if TYPE_CHECKING:
    from mirror.detectors.history import import_history
    from mirror.detectors.scoring import ScoreReport, run_score
    from mirror.store.verdicts import open_scores

__all__ = ["Detector", "DetectorFailed", "Media", "Prepared", "Rejected", "SubmissionUnknown", "Token", "Verdict",
           "DetectorOptions", "SynthetiqOptions", "DeepfakeDetectionOptions", "LocalOptions", "Pacing",
           "Adapter", "register", "load_detector", "run_score", "ScoreReport", "open_scores", "import_history"]

_LAZY = {"run_score": "mirror.detectors.scoring", "ScoreReport": "mirror.detectors.scoring",
         "open_scores": "mirror.store.verdicts", "import_history": "mirror.detectors.history"}


__getattr__, __dir__ = lazy_exports("mirror.detectors", _LAZY, globals(), __all__)
