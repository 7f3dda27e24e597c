"""Every table in report.md and report.html has one data row per entry of the metrics document.

The expected row count of each table is derived from metrics.json here, independently of the
renderer. A table that appears in the output without an entry in ``EXPECTED`` fails the test, so
a new table cannot be added (or silently emptied) without saying what it should hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mirror.evaluation import build_report

Doc = dict[str, Any]


def _union(doc: Doc, *path: str) -> int:
    """How many distinct keys ``results[<detector>][path...]`` has across detectors."""
    keys: set[str] = set()
    for result in doc["results"].values():
        node = result
        for step in path:
            node = node[step]
        keys |= set(node)
    return len(keys)


def _counts_rows(doc: Doc) -> int:
    excluded = {k for r in doc["results"].values() for k in r["counts"]["excluded"]}
    return len([k for k in next(iter(doc["results"].values()))["counts"] if k != "excluded"]) + len(excluded)


def _detector(doc: Doc, key: str) -> dict[str, Any]:
    """The result of detector k (1-based, report order) for a per-detector table ``name-k``."""
    return doc["results"][doc["detectors"][int(key.rsplit("-", 1)[1]) - 1]]


def _full_rows(result: dict[str, Any]) -> int:
    return 1 + sum(len(groups) for groups in result["groups"].values())


def _pairs_conditions(doc: Doc) -> int:
    return len({c for pair in doc["comparisons"] for c in pair["conditions"]})


EXPECTED: dict[str, Callable[[Doc, str], int]] = {
    "summary": lambda doc, key: len(doc["detectors"]),
    "overall": lambda doc, key: len(doc["detectors"]),
    "calibration": lambda doc, key: len(doc["detectors"]),
    "paired_auc": lambda doc, key: _pairs_conditions(doc),
    **{dim: (lambda doc, key, dim=dim: _union(doc, "groups", dim))
       for dim in ("perturbation", "layer", "generator", "skin_tone", "gender", "cell")},
    "collapse_fake": lambda doc, key: _union(doc, "collapse", "fake"),
    "collapse_real": lambda doc, key: _union(doc, "collapse", "real"),
    "drift": lambda doc, key: _union(doc, "calibration", "by_perturbation"),
    "heatmap": lambda doc, key: len({p for g in _detector(doc, key)["heatmap"].values() for p in g}),
    "full": lambda doc, key: _full_rows(_detector(doc, key)),
    "fairness": lambda doc, key: sum(len(g) for g in next(iter(doc["results"].values()))["fairness"].values()),
    "counts": lambda doc, key: _counts_rows(doc),
}


def expected_rows(doc: Doc, key: str) -> int | None:
    """Rows table ``key`` must have; None if this test does not know the table. A table split over
    several detectors (``key-2``, ...) has the same rows in every part; ``heatmap-k``/``full-k`` are per detector."""
    base = key.rsplit("-", 1)[0] if re.fullmatch(r"[\w]+-\d+", key) else key
    rule = EXPECTED.get(base)
    return None if rule is None else rule(doc, key)


class _Tables(HTMLParser):
    """Data rows (rows with at least one <td>) of every <table>, keyed by the table's id ``t-<key>``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self._key: str | None = None
        self._row_has_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            key = dict(attrs).get("id") or ""
            assert key.startswith("t-"), "a table without an id t-<key>"
            key = key[2:]
            assert key not in self.rows, f"two tables with id {key}"
            self._key = key
            self.rows[key] = 0
        elif tag == "tr":
            self._row_has_td = False
        elif tag == "td":
            self._row_has_td = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._key is not None and self._row_has_td:
            self.rows[self._key] += 1
        elif tag == "table":
            self._key = None


def html_rows(text: str) -> dict[str, int]:
    parser = _Tables()
    parser.feed(text)
    return parser.rows


def markdown_rows(text: str) -> dict[str, int]:
    """Data rows of every pipe table, keyed by the last ``<a id="t-key"></a>`` anchor above it."""
    rows: dict[str, int] = {}
    key: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r'<a id="t-([\w-]+)"></a>', line)
        if heading:
            key = heading.group(1)
        elif re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            assert key and lines[i - 1].startswith("|"), f"a table without an anchored heading at line {i}"
            assert key not in rows, f"two tables under heading {key}"
            n = 0
            while i + 1 + n < len(lines) and lines[i + 1 + n].startswith("|"):
                n += 1
            rows[key] = n
    return rows


@pytest.fixture(scope="module")
def built(synthetic_dest: Path) -> Path:
    return build_report(synthetic_dest, resamples=30, name="tables")


@pytest.mark.parametrize("fmt", ["report.md", "report.html"])
def test_every_table_has_a_row_per_metrics_entry(built: Path, fmt: str) -> None:
    doc = json.loads((built / "metrics.json").read_text())
    text = (built / fmt).read_text()
    found = markdown_rows(text) if fmt == "report.md" else html_rows(text)
    assert found, f"no tables found in {fmt}"
    unknown = {key for key in found if expected_rows(doc, key) is None}
    assert not unknown, f"tables {sorted(unknown)} in {fmt} have no expected row count in this test"
    bases = {key.rsplit("-", 1)[0] if re.fullmatch(r"\w+-\d+", key) else key for key in found}
    missing = set(EXPECTED) - bases
    assert not missing, f"tables {sorted(missing)} missing from {fmt}"
    for key, rows in found.items():
        expected = expected_rows(doc, key)
        assert expected, f"{key}: the synthetic DEST should give it entries"
        assert rows == expected, f"{fmt} table {key}: {rows} data rows, metrics.json has {expected} entries"


def test_markdown_and_html_have_the_same_tables(built: Path) -> None:
    assert markdown_rows((built / "report.md").read_text()) == html_rows((built / "report.html").read_text())
