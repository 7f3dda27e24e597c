"""Detector evaluation reports: metrics with CIs per condition and group, paired collapse, fairness gaps.

``build_report(dest)`` reads ``DEST/scores/<detector>/*.parquet`` and the manifest and writes
``DEST/reports/<name>/`` (metrics.json, report.md, report.html).
"""

from mirror.evaluation.build import build_report

__all__ = ["build_report"]
