"""``verify``: re-hash every mirrored file against the manifest, and optionally repair.

Repair never pays. A damaged or missing file of an item the account owns is queued in the journal
as pending and the normal pipeline re-reserves it (free, with a fresh Idempotency-Key), re-fetches
it and writes a newer manifest row, which compaction keeps over the old one. Ownership is asked
first, per base image: a DEST filled by another account keeps its damaged files, reported as
not owned, because re-reserving them would buy them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.store import Layout, open_manifest

__all__ = ["RepairTarget", "VerifyReport", "verify_files"]

_READ = 1 << 20


@dataclass(frozen=True)
class RepairTarget:
    """What a repair needs of a damaged item: its benchmark, and its base image to ask ownership by."""

    benchmark: str | None
    base_id: str | None


@dataclass
class VerifyReport:
    dest: str
    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)      # item ids whose file is gone
    corrupt: list[str] = field(default_factory=list)      # size or sha256 differ from the manifest
    targets: dict[str, RepairTarget] = field(default_factory=dict)    # item id -> what a repair needs
    repaired: int = 0
    not_owned: int = 0         # damaged, but left as they are: repairing them would buy them

    @property
    def bad(self) -> list[str]:
        return self.missing + self.corrupt

    def line(self) -> str:
        text = (f"verify {self.dest}: {self.checked} checked, {self.ok} ok, {len(self.missing)} missing, "
                f"{len(self.corrupt)} corrupt")
        text += f", {self.repaired} repaired" if self.repaired else ""
        if self.not_owned:
            text += (f", {self.not_owned} not repaired: not owned by this account (a repair never buys; "
                     "sync their selection to buy them again)")
        return text

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("targets")
        return data


def verify_files(dest: str | Path) -> VerifyReport:
    layout = Layout(Path(dest))
    report = VerifyReport(dest=str(dest))
    table = open_manifest(layout.dest).to_table(columns=["id", "benchmark", "base_id", "path", "bytes", "sha256"])
    latest: dict[str, tuple[RepairTarget, str, int, str]] = {}
    for row in table.to_pylist():
        latest[row["id"]] = (RepairTarget(row["benchmark"], row["base_id"]), row["path"], row["bytes"], row["sha256"])
    for item_id, (target, relpath, size, sha) in latest.items():
        report.checked += 1
        path = layout.dest / relpath
        try:
            ok = path.stat().st_size == size and _sha256(path) == sha
        except FileNotFoundError:
            report.missing.append(item_id)
            report.targets[item_id] = target
            continue
        if ok:
            report.ok += 1
        else:
            report.corrupt.append(item_id)
            report.targets[item_id] = target
    return report


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ):
            digest.update(chunk)
    return digest.hexdigest()
