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

from mirror.report import build_report

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


EXPECTED: dict[str, Callable[[Doc], int]] = {
    "overall": lambda doc: 1,
    **{dim: (lambda doc, dim=dim: _union(doc, "groups", dim))
       for dim in ("perturbation", "layer", "generator", "skin_tone", "gender", "cell")},
    "collapse_fake": lambda doc: _union(doc, "collapse", "fake"),
    "collapse_real": lambda doc: _union(doc, "collapse", "real"),
    "fairness": lambda doc: sum(len(g) for g in next(iter(doc["results"].values()))["fairness"].values()),
    "counts": _counts_rows,
}


class _Tables(HTMLParser):
    """Data rows (rows with at least one <td>) of every <table>, keyed by the id of the heading before it."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self._heading: str | None = None
        self._key: str | None = None
        self._row_has_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h2", "h3", "h4"):
            self._heading = dict(attrs).get("id")
        elif tag == "table":
            assert self._heading, "a table without an anchored heading before it"
            assert self._heading not in self.rows, f"two tables under heading {self._heading}"
            self._key = self._heading
            self.rows[self._key] = 0
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
    """Data rows of every pipe table, keyed by the last ``<a id="key"></a>`` anchor above it."""
    rows: dict[str, int] = {}
    key: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r'<a id="([\w-]+)"></a>', line)
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
    unknown = set(found) - set(EXPECTED)
    assert not unknown, f"tables {sorted(unknown)} in {fmt} have no expected row count in this test"
    missing = set(EXPECTED) - set(found)
    assert not missing, f"tables {sorted(missing)} missing from {fmt}"
    for key, rows in found.items():
        expected = EXPECTED[key](doc)
        assert expected > 0, f"{key}: the synthetic DEST should give it entries"
        assert rows == expected, f"{fmt} table {key}: {rows} data rows, metrics.json has {expected} entries"
