"""``margen-mirror report DEST [--detector NAME ...]``: turn DEST's detector scores into a report folder.

Prints the headline (one sentence per detector: the condition it loses most under) and where
the report was written; ``--json`` prints the same as one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import json

from mirror.cli.verbs import Subparsers
from mirror.errors import EXIT_OK
from mirror.store.destination import local_dest

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Register the ``report`` verb on the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser("report", help="metrics, robustness and fairness report from DEST's detector scores")
    p.add_argument("dest", help="a mirrored destination with scores under DEST/scores/<detector>/")
    p.add_argument("--detector", action="append", metavar="NAME",
                   help="report this detector (repeat for several side by side; default: every scored detector)")
    p.add_argument("--name", help="report folder name under DEST/reports (default: the detector names)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON result on stdout")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the report; errors (no scores, unknown detector) surface as UsageError for the CLI to print."""
    from mirror.cli.output import emit
    from mirror.evaluation import build_report  # matplotlib is imported only when a report is asked for

    folder = build_report(local_dest(args.dest), args.detector, args.name)
    doc = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    headlines = {name: r["headline"]["sentence"] for name, r in doc["results"].items()}
    lines = list(headlines.values()) + [f"report: {folder / 'report.html'} (also report.md, metrics.json)"]
    emit({"report": str(folder), "html": str(folder / "report.html"), "headlines": headlines},
         as_json=args.json, lines=lines)
    return EXIT_OK
