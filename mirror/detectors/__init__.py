"""Detector adapters behind one interface, and the ``score`` run that mirrors their verdicts.

    from mirror.detectors import run_score, open_scores
    report = await run_score("data/faces", "deepfake-detection", filters={"kind": ("fake",)})
    scores = open_scores("data/faces", "deepfake-detection").to_table()   # join on ``id``
"""

from mirror.detectors.base import (
    Detector,
    DetectorFailed,
    Media,
    Prepared,
    Rejected,
    SubmissionUnknown,
    Verdict,
    load_detector,
)
from mirror.detectors.history import import_history
from mirror.detectors.score import ScoreReport, run_score
from mirror.detectors.scores import open_scores

__all__ = ["Detector", "DetectorFailed", "Media", "Prepared", "Rejected", "SubmissionUnknown", "Verdict",
           "load_detector", "run_score", "ScoreReport", "open_scores", "import_history"]
