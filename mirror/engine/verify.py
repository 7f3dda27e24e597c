"""``verify``: re-hash every mirrored file against the manifest, and optionally repair.

Repair never pays: a damaged or missing file belongs to an item the account already owns, so it
is queued in the journal as pending and the normal pipeline re-reserves it (free, with a fresh
Idempotency-Key), re-fetches it and writes a newer manifest row, which compaction keeps over the
old one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.store import Layout, open_manifest

__all__ = ["VerifyReport", "verify_files"]

_READ = 1 << 20


@dataclass
class VerifyReport:
    dest: str
    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)      # item ids whose file is gone
    corrupt: list[str] = field(default_factory=list)      # size or sha256 differ from the manifest
    benchmarks: dict[str, str | None] = field(default_factory=dict)   # item id -> benchmark, for repair
    repaired: int = 0

    @property
    def bad(self) -> list[str]:
        return self.missing + self.corrupt

    def line(self) -> str:
        text = (f"verify {self.dest}: {self.checked} checked, {self.ok} ok, {len(self.missing)} missing, "
                f"{len(self.corrupt)} corrupt")
        return text + (f", {self.repaired} repaired" if self.repaired else "")

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("benchmarks")
        return data


def verify_files(dest: str | Path) -> VerifyReport:
    layout = Layout(Path(dest))
    report = VerifyReport(dest=str(dest))
    table = open_manifest(layout.dest).to_table(columns=["id", "benchmark", "path", "bytes", "sha256"])
    latest: dict[str, tuple[str | None, str, int, str]] = {}
    for row in table.to_pylist():
        latest[row["id"]] = (row["benchmark"], row["path"], row["bytes"], row["sha256"])
    for item_id, (benchmark, relpath, size, sha) in latest.items():
        report.checked += 1
        path = layout.dest / relpath
        try:
            ok = path.stat().st_size == size and _sha256(path) == sha
        except FileNotFoundError:
            report.missing.append(item_id)
            report.benchmarks[item_id] = benchmark
            continue
        if ok:
            report.ok += 1
        else:
            report.corrupt.append(item_id)
            report.benchmarks[item_id] = benchmark
    return report


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ):
            digest.update(chunk)
    return digest.hexdigest()
